"""Validators enforced in strict mode only: rules whose mapping to the field is uncertain."""

from __future__ import annotations

from typing import Any

from marshmallow import validate

from workers.schemas.base import current_context


class StrictLength(validate.Length):
    """A length cap that the seed does not state unambiguously for this field (spec §8.7, §8.16).

    Subclassing ``Length`` keeps the cap in the generated OpenAPI document, which describes the
    sender's promise; only the tolerant receiver lets a violation through.
    """

    def __call__(self, value: Any) -> Any:
        if not current_context().strict:
            return value
        return super().__call__(value)


class StrictRange(validate.Range):
    """A range known only from the sender's other pages (EXT), not from the webhook seed itself."""

    def __call__(self, value: Any) -> Any:
        if not current_context().strict:
            return value
        return super().__call__(value)
