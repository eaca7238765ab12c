"""The envelope and ``data``: the top of the contract, loaded into an ``AppointmentEvent``."""

from __future__ import annotations

from typing import Any

from marshmallow import fields
from marshmallow import post_load
from marshmallow.validate import OneOf

from handlers.events import EVENT_TYPES
from handlers.events import AppointmentEvent
from workers.schemas.appointment import appointment_field
from workers.schemas.appointment import previous_appointment_field
from workers.schemas.base import TOLERANT
from workers.schemas.base import BaseSchema
from workers.schemas.base import LoadContext
from workers.schemas.base import LoadContextVar
from workers.schemas.base import current_context
from workers.schemas.paths import unknown_paths
from workers.schemas.projection import declared_only

UNSUPPORTED_EVENT_TYPE = "unsupported eventType"


class AppointmentDataSchema(BaseSchema):
    """``data``: additional properties allowed (L8), so it is open in both modes."""

    event_type = fields.String(
        required=True,
        validate=OneOf(
            EVENT_TYPES,
            error=f"{UNSUPPORTED_EVENT_TYPE} {{input!r}}: expected one of {{choices}}",
        ),
    )
    message = fields.String(allow_none=True)  # deprecated (EXT), meaning unknown: stored only
    appointment = appointment_field(required=True)
    previous_appointment = previous_appointment_field(required=True, allow_none=True)


class EnvelopeSchema(BaseSchema):
    """The request body; ``load`` returns the ``AppointmentEvent`` the handlers receive.

    ``data`` is required although the seed lost its marker: without it there is no
    ``appointment.id`` to key the store on.
    """

    id = fields.String(required=True)
    correlation_id = fields.String(allow_none=True)
    webhook_configuration_id = fields.String(allow_none=True)
    version = fields.String(allow_none=True)
    entity = fields.String(required=True, validate=OneOf(["Appointment"]))
    data = fields.Nested(AppointmentDataSchema, required=True)

    def __init__(self, *args: Any, mode: str = TOLERANT, **kwargs: Any) -> None:
        """:param mode: the VALIDATION_MODE every ``load`` of this instance runs in."""
        super().__init__(*args, **kwargs)
        self.mode = mode

    def load(self, data: Any, **kwargs: Any) -> Any:
        """Validate ``data`` in this instance's mode; see ``make_event`` for the result."""
        with LoadContextVar(LoadContext(mode=self.mode)):
            return super().load(data, **kwargs)

    @post_load(pass_original=True)
    def make_event(
        self, loaded: dict[str, Any], original: dict[str, Any], **kwargs: Any
    ) -> AppointmentEvent:
        """Typed keys for ordering; for storage, the declared parts of the objects as sent."""
        data, declared = loaded["data"], declared_only(self, original)["data"]
        appointment = data["appointment"]
        return AppointmentEvent(
            id=loaded["id"],
            event_type=data["event_type"],
            appointment_id=appointment["id"],
            updated_at=appointment["updated_at"],
            status=appointment["status"],
            appointment=declared["appointment"],
            previous_appointment=declared["previousAppointment"],
            correlation_id=loaded.get("correlation_id"),
            webhook_configuration_id=loaded.get("webhook_configuration_id"),
            version=loaded.get("version"),
            unknown_fields=unknown_paths(original, current_context().unknown),
        )
