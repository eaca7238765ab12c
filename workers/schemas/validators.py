"""Validators enforced in strict mode only.

A rule is strict-only when the seed does not state it for this field (a cap on a field it never
names, a cap known only from Pexip's other pages, a cap whose field is ambiguous), or when the
sender's own documented example breaks it (tolerant mode accepts what that example does).
"""

from __future__ import annotations

from typing import Any

from marshmallow import validate

from workers.schemas.base import current_context


class StrictLength(validate.Length):
    """A length cap the seed does not state for this field, or that its own example breaks.

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
