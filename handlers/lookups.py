"""Reading one record at a time: an appointment with its history, an event, a raw body.

Listings with filters and pages are handlers/queries.py; these are the by-id reads the CLI,
the workers and the admin API share. Every id goes through the same keying as the writers
(``event_key``), so an odd id reads the record its delivery wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from sqlalchemy import func
from sqlalchemy import select

from core.states import FINAL_STATES
from handlers.models import Appointment
from handlers.models import AppointmentChange
from handlers.models import EventRecord
from handlers.models import HookRun
from handlers.storable import event_key
from handlers.storable import fits
from handlers.views import event_view
from handlers.views import iso

if TYPE_CHECKING:
    from handlers.store import Store


def get_appointment(store: Store, appointment_id: str) -> dict[str, Any] | None:
    """The projected state of one appointment with its history, as JSON-ready values."""
    if not fits(appointment_id):
        return None  # no stored appointment has such an id (and PostgreSQL cannot look)
    with store.transaction(read_only=True) as session:
        row = session.get(Appointment, appointment_id)
        if row is None:
            return None
        history = session.scalars(
            select(AppointmentChange)
            .where(AppointmentChange.appointment_id == appointment_id)
            .order_by(AppointmentChange.updated_at, AppointmentChange.id)
        ).all()
        snapshot = row.snapshot or {}
        return {
            "id": row.id,
            "status": row.status,
            "start": iso(row.start),
            "end": iso(row.end),
            "meetingType": row.meeting_type,
            "externalId": row.external_id,
            "subject": snapshot.get("subject"),
            "office": snapshot.get("office"),
            "listing": snapshot.get("listing"),
            "leadSegment": snapshot.get("leadSegment"),
            "participants": snapshot.get("participants") or [],
            "answers": snapshot.get("answers") or [],
            "updatedAt": iso(row.updated_at),
            "lastEventId": row.last_event_id,
            "lastEventType": row.last_event_type,
            "firstSeenAt": iso(row.first_seen_at),
            "lastAppliedAt": iso(row.last_applied_at),
            "snapshot": row.snapshot,
            "history": [
                {
                    "eventId": change.event_id,
                    "eventType": change.event_type,
                    "updatedAt": iso(change.updated_at),
                    "appliedAt": iso(change.applied_at),
                    "changes": change.changes,
                }
                for change in history
            ],
        }


def snapshot(store: Store, appointment_id: str) -> Mapping[str, Any] | None:
    """Only the stored appointment object (what the newest event carried)."""
    if not fits(appointment_id):
        return None
    with store.transaction(read_only=True) as session:
        row = session.get(Appointment, appointment_id)
        return row.snapshot if row else None


def get_event(store: Store, event_id: str) -> dict[str, Any] | None:
    """The processing record of one event id, with its hook runs and raw body."""
    key = event_key(event_id)
    with store.transaction(read_only=True) as session:
        record = session.get(EventRecord, key)
        if record is None:
            return None
        hooks = session.scalars(select(HookRun).where(HookRun.event_id == key)).all()
        return event_view(record, hooks=hooks, with_body=True)


def raw_body(store: Store, event_id: str) -> str | None:
    """The exact body an event arrived with."""
    with store.transaction(read_only=True) as session:
        record = session.get(EventRecord, event_key(event_id))
        return record.raw_body if record else None


def dead_letters(store: Store, limit: int = 1000) -> list[dict[str, Any]]:
    """Dead-lettered events, oldest first, without their bodies."""
    with store.transaction(read_only=True) as session:
        records = session.scalars(
            select(EventRecord)
            .where(EventRecord.state == "dead_lettered")
            .order_by(EventRecord.received_at)
            .limit(limit)
        ).all()
        return [event_view(record, hooks=()) for record in records]


def count_events(store: Store, state: str | None = None) -> int:
    """How many event records there are (in ``state``, when given)."""
    with store.transaction(read_only=True) as session:
        query = select(func.count()).select_from(EventRecord)
        if state:
            query = query.where(EventRecord.state == state)
        return int(session.scalar(query) or 0)


def unfinished_event_ids(store: Store, ids: Sequence[str]) -> set[str]:
    """Of ``ids``, those whose event has no final outcome yet (unknown ids included)."""
    if not ids:
        return set()
    keys = {event_id: event_key(event_id) for event_id in ids}
    with store.transaction(read_only=True) as session:
        done = set(
            session.scalars(
                select(EventRecord.id).where(
                    EventRecord.id.in_(set(keys.values())), EventRecord.state.in_(FINAL_STATES)
                )
            ).all()
        )
        return {event_id for event_id, key in keys.items() if key not in done}
