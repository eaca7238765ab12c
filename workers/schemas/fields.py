"""Custom fields: JSON types without marshmallow's coercions, aware date-times, int-or-str ids."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate
from marshmallow.utils import missing

from workers.schemas.base import current_context

# RFC 3339 date-time (JSON Schema "date-time"): seconds and offset required, fraction optional.
_LOCAL = r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?"
_DATE_TIME = re.compile(_LOCAL + r"(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII)
_NAIVE_DATE_TIME = re.compile(_LOCAL, re.ASCII)


class AwareDateTime(fields.DateTime):
    """An RFC 3339 date-time with an offset (``+00:00`` or ``Z``), loaded as an aware ``datetime``.

    Naive values are rejected: ``appointment.updatedAt`` orders events, and a naive instant
    cannot be compared with the stored one.
    """

    default_error_messages = {
        "invalid": "Not a valid date-time: expected e.g. 2024-05-04T09:42:00+00:00.",
        "naive": "Not a valid date-time: the offset (+00:00 or Z) is missing.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if _DATE_TIME.fullmatch(value) is None:
            naive = _NAIVE_DATE_TIME.fullmatch(value) is not None
            raise self.make_error("naive" if naive else "invalid")
        # Python >= 3.11 parses "Z" and truncates fractions beyond microseconds by itself.
        try:
            return dt.datetime.fromisoformat(value.upper())
        except ValueError:  # e.g. month 13 or offset +24:00
            raise self.make_error("invalid") from None


class StrictInteger(fields.Integer):
    """A JSON integer: ``42``, never ``42.5``, ``"42"`` or ``true``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class StrictNumber(fields.Float):
    """A JSON number (integer or fraction), never a numeric string or a boolean."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class StrictBoolean(fields.Boolean):
    """A JSON ``true`` or ``false``; marshmallow's Boolean would also take ``"yes"`` or ``1``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class StrictlyRequiredNested(fields.Nested):
    """A nested object the seed marks Required but its own example omits (``callbackRequest``).

    Strict mode follows the schema and requires it; tolerant mode accepts what the sender's
    documented example does and lets it be absent. ``required`` stays set, so the OpenAPI
    document still states the sender's promise.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, required=True, **kwargs)

    def _validate_missing(self, value: Any) -> None:
        if value is missing and not current_context().strict:
            return
        super()._validate_missing(value)


class StrOrInt(fields.Field):
    """An id the sender writes as a string or an integer (``leadSegment.id``), loaded as a string.

    ``minimum`` applies to the integer form only, and in strict mode only: the one it serves,
    the customer id's "Minimum value is 0", sits on a field whose name the seed never shows.
    """

    default_error_messages = {
        "invalid": "Not a valid string or integer.",
        "too_small": "Must be greater than or equal to {min}.",
    }

    def __init__(self, *, minimum: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            strict = current_context().strict
            if self.minimum is not None and strict and value < self.minimum:
                raise self.make_error("too_small", min=self.minimum)
            return str(value)
        raise self.make_error("invalid")


class OneOfNested(fields.Field):
    """An object loaded by the schema that its discriminator selects: the seed's ``oneOf``.

    Each variant declares the discriminator field itself with a ``OneOf`` validator, so the
    values that select a variant are written once, on the variant.
    """

    default_error_messages = {
        "type": "Invalid input type.",
        "missing_tag": "Missing data for required field.",
        "null_tag": "Field may not be null.",
        "tag_type": "Not a valid string.",
        "unsupported": "Must be one of: {choices}.",
    }

    def __init__(
        self,
        discriminator: str,
        variants: Iterable[type[Schema]],
        *,
        unsupported: str | None = None,
        **kwargs: Any,
    ) -> None:
        """:param unsupported: message for a discriminator value that selects no variant."""
        if unsupported is not None:
            messages = kwargs.get("error_messages") or {}
            kwargs["error_messages"] = {**messages, "unsupported": unsupported}
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.variants = tuple(variants)
        self.schemas: dict[str, Schema] = {}
        for variant in self.variants:
            schema = variant()
            for choice in _choices(schema, discriminator):
                self.schemas[choice] = schema

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, Mapping):
            raise self.make_error("type")
        tag = value.get(self.discriminator)
        if tag is None:
            key = "null_tag" if self.discriminator in value else "missing_tag"
            raise ValidationError({self.discriminator: [self.error_messages[key]]})
        if not isinstance(tag, str):
            raise ValidationError({self.discriminator: [self.error_messages["tag_type"]]})
        schema = self.schemas.get(tag)
        if schema is None:
            message = str(self.error_messages["unsupported"]).format(
                input=tag, choices=", ".join(self.schemas)
            )
            raise ValidationError({self.discriminator: [message]})
        return schema.load(value)


def _choices(schema: Schema, discriminator: str) -> tuple[str, ...]:
    """The values of ``discriminator`` that select ``schema``, read from its OneOf validator."""
    for name, field_obj in schema.fields.items():
        if (field_obj.data_key or name) == discriminator:
            for validator in field_obj.validators:
                if isinstance(validator, validate.OneOf):
                    return tuple(validator.choices)
    raise TypeError(f"{type(schema).__name__} needs a OneOf validator on {discriminator!r}")
