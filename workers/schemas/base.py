"""Base schemas, and the per-load context carrying VALIDATION_MODE and the unknown-field tally."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import ClassVar

from marshmallow import EXCLUDE
from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import validates_schema
from marshmallow.experimental.context import Context

TOLERANT = "tolerant"
STRICT = "strict"
UNKNOWN_FIELD = "Unknown field."


@dataclass
class LoadContext:
    """What one ``load`` needs beyond the data: the mode, and where unknown properties were met.

    ``unknown`` holds ``(raw object, its unknown keys)`` pairs; the raw objects are kept (not their
    ids) so they stay alive until ``workers.schemas.paths.unknown_paths`` turns them into paths.
    """

    mode: str = TOLERANT
    unknown: list[tuple[Mapping[str, Any], frozenset[str]]] = field(default_factory=list)

    @property
    def strict(self) -> bool:
        """Whether closed objects reject unknown properties in this load."""
        return self.mode == STRICT


LoadContextVar = Context[LoadContext]


def current_context() -> LoadContext:
    """The context of the load in progress; a schema loaded on its own gets a tolerant one."""
    return LoadContextVar.get(default=None) or LoadContext()


def camelcase(name: str) -> str:
    """``created_by_id`` -> ``createdById``: the sender's spelling of a snake_case attribute."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class BaseSchema(Schema):
    """An object whose extra properties the seed does not forbid: unknown ones are kept and counted.

    Pexip may add properties at any time, so marshmallow's default (RAISE) would dead-letter whole
    events for a harmless change. Unknown keys are recorded by ``_police_unknown`` and left out
    of the loaded data (EXCLUDE): INCLUDE would put them beside the loaded attributes, where a
    key spelled like one (``event_type``, ``updated_at``) overrides the validated value.
    ``closed`` subclasses additionally reject them when the load runs in ``strict`` mode.
    """

    closed: ClassVar[bool] = False

    class Meta:
        unknown = EXCLUDE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The sender's key for every declared field, computed once per instance, not per load.
        self.known_keys = frozenset(f.data_key or name for name, f in self.load_fields.items())

    def on_bind_field(self, field_name: str, field_obj: Any) -> None:
        """Attributes are snake_case; wire keys are the sender's camelCase (style guide item 8)."""
        if field_obj.data_key is None:
            field_obj.data_key = camelcase(field_name)

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _police_unknown(self, data: Any, original_data: Any, **kwargs: Any) -> None:
        """Record this object's unknown keys for the tally, or reject them if closed and strict."""
        if not isinstance(original_data, Mapping):
            return  # the type error is already reported for this object
        unknown = original_data.keys() - self.known_keys
        if not unknown:
            return
        context = current_context()
        if self.closed and context.strict:
            raise ValidationError({key: [UNKNOWN_FIELD] for key in sorted(unknown)})
        context.unknown.append((original_data, frozenset(unknown)))


class ClosedSchema(BaseSchema):
    """An object the seed marks "Additional properties are NOT allowed": strict rejects extras."""

    closed = True
