"""The JSON bodies the HTTP side answers with, described for the OpenAPI document only."""

from __future__ import annotations

from marshmallow import Schema
from marshmallow import fields
from marshmallow.validate import OneOf

from core.states import EVENT_STATES


class QueuedSchema(Schema):
    """``202``: the raw payload is durably enqueued (or spooled while the broker is down)."""

    status = fields.String(required=True, validate=OneOf(["queued"]))
    id = fields.String(required=True, metadata={"description": "The envelope id."})


class DuplicateSchema(Schema):
    """``200``: this envelope id was already received; nothing new is enqueued."""

    status = fields.String(required=True, validate=OneOf(["duplicate"]))
    id = fields.String(required=True)


class ErrorSchema(Schema):
    """Every error answer: a machine code and a sentence saying what to fix."""

    error = fields.String(required=True)
    message = fields.String(required=True)


class ErrorItemSchema(Schema):
    """One contract violation at a path such as ``data.appointment.participants[0].id``."""

    path = fields.String(required=True)
    message = fields.String(required=True)


class EventRecordSchema(Schema):
    """The processing record of one event (``GET /admin/events/{id}``)."""

    id = fields.String(required=True)
    state = fields.String(required=True, validate=OneOf(EVENT_STATES))
    errors = fields.List(fields.Nested(ErrorItemSchema), required=True)
