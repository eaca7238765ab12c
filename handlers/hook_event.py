"""What a user hook receives: one applied event, typed, with what it changed and what was before."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from handlers import snapshot
from handlers.events import AppointmentEvent
from handlers.events import identifiers
from handlers.snapshot import parse_instant

# Keys of the recorded changes whose old/new values are instants (RESCHEDULE's start and end).
_INSTANT_CHANGES = ("start", "end")


@dataclass(frozen=True)
class HookEvent:
    """One event after its effect is committed, as a hook sees it.

    Times are timezone-aware ``datetime`` objects. ``changes`` is exactly what the appointment's
    history records for this event, with instants parsed: ``{"start": {"old", "new"}, "end":
    ...}`` for RESCHEDULE, ``{"employees": {"old", "new"}}`` for REASSIGN, ``{"answers": [...],
    "status": {"old", "new"}}`` for CANCEL and COMPLETE. ``prior_state`` is the appointment as
    engagehook had stored it before this event (None for its first event);
    ``previous_appointment`` is what the sender said it was. ``raw`` is the whole delivered
    envelope, parsed. The attribute names of ``AppointmentEvent`` (``id``, ``event_type``,
    ``appointment``, ...) mean the same here.
    """

    id: str
    event_type: str
    appointment_id: str
    status: str
    updated_at: datetime
    start: datetime | None
    end: datetime | None
    changes: Mapping[str, Any]
    appointment: Mapping[str, Any]
    previous_appointment: Mapping[str, Any] | None
    prior_state: Mapping[str, Any] | None
    correlation_id: str | None = None
    webhook_configuration_id: str | None = None
    version: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_applied(
        cls,
        event: AppointmentEvent,
        *,
        changes: Mapping[str, Any],
        prior_state: Mapping[str, Any] | None,
        raw: Mapping[str, Any],
    ) -> HookEvent:
        """Build the hook's view of ``event`` from what the store kept when applying it."""
        return cls(
            id=event.id,
            event_type=event.event_type,
            appointment_id=event.appointment_id,
            status=event.status,
            updated_at=event.updated_at,
            start=parse_instant(event.appointment.get("start")),
            end=parse_instant(event.appointment.get("end")),
            changes=_parsed_changes(changes),
            appointment=event.appointment,
            previous_appointment=event.previous_appointment,
            prior_state=prior_state,
            correlation_id=event.correlation_id,
            webhook_configuration_id=event.webhook_configuration_id,
            version=event.version,
            raw=raw,
        )

    @property
    def employees(self) -> list[dict[str, Any]]:
        """The appointment's employees now, as ``{"id", "role"}``."""
        return snapshot.employees(self.appointment)

    @property
    def answers(self) -> list[dict[str, Any]]:
        """Answers given with this event (CANCEL/COMPLETE forms), else all the appointment's."""
        recorded = self.changes.get("answers")
        return list(recorded) if recorded is not None else snapshot.answers(self.appointment)

    def log_fields(self) -> dict[str, str | None]:
        """The identifiers that may appear in logs; never personal data."""
        return identifiers(self)


def _parsed_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(changes)
    for key in _INSTANT_CHANGES:
        change = out.get(key)
        if isinstance(change, Mapping):
            out[key] = {side: parse_instant(value) for side, value in change.items()}
    return out
