"""Marshmallow schemas for the whole Appointment webhook contract, field by field."""

from workers.schemas.appointment import UNSUPPORTED_STATUS
from workers.schemas.base import STRICT
from workers.schemas.base import TOLERANT
from workers.schemas.base import BaseSchema
from workers.schemas.base import ClosedSchema
from workers.schemas.envelope import UNSUPPORTED_EVENT_TYPE
from workers.schemas.envelope import AppointmentDataSchema
from workers.schemas.envelope import EnvelopeSchema

__all__ = [
    "STRICT",
    "TOLERANT",
    "UNSUPPORTED_EVENT_TYPE",
    "UNSUPPORTED_STATUS",
    "AppointmentDataSchema",
    "BaseSchema",
    "ClosedSchema",
    "EnvelopeSchema",
]
