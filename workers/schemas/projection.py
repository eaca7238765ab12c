"""The part of a validated document that its schemas declare, with the sender's own values.

Handlers and the store see only this: an unknown key (say ``data.event_type`` beside
``data.eventType``) is counted and kept in the raw body, but it never reaches an event.
Values are the sender's JSON values, not marshmallow's loaded ones, so a date-time keeps its
spelling and a number its exact value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema
from marshmallow import fields

from workers.schemas.fields import OneOfNested


def declared_only(schema: Schema, raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` (already valid under ``schema``) restricted to the keys ``schema`` declares."""
    out: dict[str, Any] = {}
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        if key in raw:
            out[key] = _value(field, raw[key])
    return out


def _value(field: fields.Field, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(field, OneOfNested):
        return declared_only(field.schemas[value[field.discriminator]], value)
    if isinstance(field, fields.Nested):
        return declared_only(field.schema, value)
    if isinstance(field, fields.List):
        return [_value(field.inner, item) for item in value]
    # Leaves, and free-form objects (``metadata``) whose every key is the sender's data.
    return value
