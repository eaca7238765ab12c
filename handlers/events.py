"""The validated event that workers hand to handlers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any
from typing import Protocol

# Pexip's eventType strings, verbatim. Kept as plain strings rather than an enum because the
# sender may add new types; an unknown one is dead-lettered and replayed once a handler exists.
EVENT_TYPES: tuple[str, ...] = (
    "ACCEPT",
    "REASSIGN",
    "CANCEL",
    "COMPLETE",
    "CREATE",
    "RESCHEDULE",
    "REQUEST_ALTERNATIVE_DATE",
    "CREATE_REQUEST",
    "RESCHEDULE_REQUEST",
    "REOPEN",
    "GENERIC_UPDATE",
)


@dataclass(frozen=True)
class AppointmentEvent:
    """One webhook delivery after validation: typed keys for ordering, JSON for storage.

    ``appointment`` and ``previous_appointment`` hold the properties the contract declares,
    with the values exactly as the sender wrote them (JSON types, exact numbers); unknown
    properties stay in the raw body only, so they can never change what a handler sees.
    """

    id: str
    event_type: str
    appointment_id: str
    updated_at: datetime  # timezone-aware; the ordering key per appointment
    status: str
    appointment: Mapping[str, Any]
    previous_appointment: Mapping[str, Any] | None
    correlation_id: str | None = None
    webhook_configuration_id: str | None = None
    version: str | None = None
    unknown_fields: tuple[str, ...] = field(default_factory=tuple)

    def log_fields(self) -> dict[str, str | None]:
        """The identifiers that may appear in logs and Flower; never personal data."""
        return identifiers(self)


class Identified(Protocol):
    """An event as logs know it: by its identifiers only."""

    @property
    def id(self) -> str: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def event_type(self) -> str: ...
    @property
    def appointment_id(self) -> str: ...


def identifiers(event: Identified) -> dict[str, str | None]:
    """The log fields of any event, applied or as a hook sees it: ids, never payload values."""
    return {
        "event_id": event.id,
        "correlation_id": event.correlation_id,
        "event_type": event.event_type,
        "appointment_id": event.appointment_id,
    }
