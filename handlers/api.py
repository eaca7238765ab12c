"""The handler API: all an eventType handler may use, and nothing of the database.

A handler is ``handle(event, tx)``: it reads ``event`` (``handlers.events``), the stored
``tx.current`` state, and the snapshot helpers below, then calls ``tx.apply_snapshot()`` and
``tx.record(changes)``. The store (``handlers.store``) runs it inside the transaction that
takes the event id and writes what it recorded; handlers never see SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

from handlers.clock import utcnow
from handlers.events import AppointmentEvent
from handlers.snapshot import answers
from handlers.snapshot import employees
from handlers.snapshot import field_change
from handlers.snapshot import parse_instant
from handlers.snapshot import prior

__all__ = [
    "AppointmentTransaction",
    "Handler",
    "answers",
    "employees",
    "field_change",
    "prior",
]


class AppointmentTransaction:
    """The view a handler gets of the store while its event is being applied."""

    def __init__(self, event: AppointmentEvent, current: Mapping[str, Any] | None) -> None:
        self._event = event
        self.current: Mapping[str, Any] | None = current
        self.changes: dict[str, Any] = {}
        # The appointment row to write at commit; None while the handler has not stored it.
        self.row: dict[str, Any] | None = None

    def apply_snapshot(self) -> None:
        """Make the event's appointment object the stored state of the appointment."""
        event, snapshot = self._event, dict(self._event.appointment)
        self.row = {
            "status": event.status,
            "start": parse_instant(snapshot.get("start")),
            "end": parse_instant(snapshot.get("end")),
            "meeting_type": snapshot.get("meetingType"),
            "external_id": snapshot.get("externalId"),
            "subject_id": _reference_id(snapshot.get("subject")),
            "office_id": _reference_id(snapshot.get("office")),
            "listing_id": _reference_id(snapshot.get("listing")),
            "lead_segment_id": _reference_id(snapshot.get("leadSegment")),
            "updated_at": event.updated_at,
            "snapshot": snapshot,
            "last_event_id": event.id,
            "last_event_type": event.event_type,
            "last_applied_at": utcnow(),
        }

    def record(self, changes: Mapping[str, Any]) -> None:
        """Add to what this event changed; written to the appointment's history."""
        self.changes.update(changes)


Handler = Callable[[AppointmentEvent, AppointmentTransaction], None]


def _reference_id(value: Any) -> str | None:
    """The ``id`` of a referenced object (subject, office, ...), as a string; ids may be ints."""
    if isinstance(value, Mapping) and value.get("id") is not None:
        return str(value["id"])[:255]
    return None
