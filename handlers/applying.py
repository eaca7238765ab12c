"""Applying one delivery: once per event id, in `updatedAt` order, effect and outbox together.

The transaction (1) serialises on the event id, then the appointment, (2) reads the id's state
and the stored appointment in one round trip, (3) records a duplicate or a stale event and
stops, or (4) runs the eventType's handler and writes the appointment, its history row, the
event record and the hook outbox together. See docs/store.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

from sqlalchemy import Table
from sqlalchemy import bindparam
from sqlalchemy import exists
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from core.states import TAKEN_STATES
from handlers import hook_outbox
from handlers.api import AppointmentTransaction
from handlers.api import Handler
from handlers.engine import appointment_lock_key
from handlers.engine import event_lock_key
from handlers.events import AppointmentEvent
from handlers.models import Appointment
from handlers.models import AppointmentChange
from handlers.models import EventRecord
from handlers.models import utcnow

if TYPE_CHECKING:
    from handlers.store import Store


@dataclass(frozen=True)
class ApplyResult:
    """What applying one delivery did: its outcome and the hook runs it queued."""

    outcome: str  # processed | stale | duplicate
    hook_run_ids: tuple[int, ...] = ()


def apply(
    store: Store,
    event: AppointmentEvent,
    raw_body: str,
    handler: Handler,
    hook_names: Sequence[str] = (),
) -> ApplyResult:
    """Apply one delivery exactly once, in order, and queue its hooks in the same commit."""
    try:
        return _apply_once(store, event, raw_body, handler, hook_names)
    except IntegrityError:
        # Should not happen (the locks serialise every writer of an event id), but if a
        # database lets two writers race, the committed one is the outcome, ours a duplicate.
        with store.transaction() as session:
            record = session.get(EventRecord, event.id)
            if record is None or record.state not in TAKEN_STATES:
                raise
            record.duplicates += 1
        return ApplyResult("duplicate")


def _apply_once(
    store: Store,
    event: AppointmentEvent,
    raw_body: str,
    handler: Handler,
    hook_names: Sequence[str],
) -> ApplyResult:
    # SQLAlchemy Core, not the ORM: this is the hot path of every worker, and the same
    # transaction through the unit of work cost about twice the CPU and more round trips.
    ids = {"event_id": event.id, "appointment_id": event.appointment_id}
    with store.connection() as conn:
        if store.dialect == "postgresql":
            # Always event first, then appointment: one order everywhere, so no deadlock.
            # A statement of its own: the reads below must see what the lock waited for.
            conn.execute(
                _LOCK_EVENT_THEN_APPOINTMENT,
                {
                    "event_key": event_lock_key(event.id),
                    "appointment_key": appointment_lock_key(event.appointment_id),
                },
            )
        known = conn.execute(_READ_BEFORE_APPLY, ids).one()
        if known.state in TAKEN_STATES:
            conn.execute(_COUNT_DUPLICATE, ids)
            return ApplyResult("duplicate")
        if known.state is None and known.applied:
            # Its record was pruned, but the history shows the effect is committed.
            return ApplyResult("duplicate")
        now = utcnow()
        record = {
            "event_type": event.event_type,
            "appointment_id": event.appointment_id,
            "appointment_updated_at": event.updated_at,
            "raw_body": raw_body,
            "reason": None,
            "errors": None,
            "processed_at": now,
        }
        stored = known.updated_at is not None
        if stored and is_older(event, known.updated_at, known.last_event_id):
            _write_record(conn, event.id, known.state, {**record, "state": "stale"}, now)
            return ApplyResult("stale")
        tx = AppointmentTransaction(event, known.snapshot if stored else None)
        handler(event, tx)
        _write_record(conn, event.id, known.state, {**record, "state": "processed"}, now)
        return ApplyResult("processed", _write_effect(conn, event, tx, stored, hook_names, now))


def is_older(event: AppointmentEvent, stored_updated_at: datetime, stored_event_id: str) -> bool:
    """True when the stored state is newer; equal instants break ties on the event id.

    The tie-break makes two events with the same ``updatedAt`` converge to the same winner
    whatever their delivery order (the larger id), instead of to whichever came last.
    """
    return (event.updated_at, event.id) < (stored_updated_at, stored_event_id)


# Declarative classes type __table__ as a FromClause; these are the mapped Tables.
_EVENTS = cast(Table, EventRecord.__table__)
_APPOINTMENTS = cast(Table, Appointment.__table__)
_HISTORY = cast(Table, AppointmentChange.__table__)

_LOCK_EVENT_THEN_APPOINTMENT = text(
    # A 64-bit hash of each key: a collision only serialises two unrelated writers.
    "SELECT pg_advisory_xact_lock(hashtextextended(:event_key, 0)),"
    " pg_advisory_xact_lock(hashtextextended(:appointment_key, 0))"
)


def _by_appointment(column: Any) -> Any:
    return select(column).where(_APPOINTMENTS.c.id == bindparam("appointment_id")).scalar_subquery()


# Everything applying an event needs to know, in one round trip: the event id's state, whether
# the history holds its effect (its record may have been pruned) and the stored appointment.
_READ_BEFORE_APPLY = select(
    select(_EVENTS.c.state)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .scalar_subquery()
    .label("state"),
    exists().where(_HISTORY.c.event_id == bindparam("event_id")).label("applied"),
    _by_appointment(_APPOINTMENTS.c.updated_at).label("updated_at"),
    _by_appointment(_APPOINTMENTS.c.last_event_id).label("last_event_id"),
    _by_appointment(_APPOINTMENTS.c.snapshot).label("snapshot"),
)

_COUNT_DUPLICATE = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(duplicates=_EVENTS.c.duplicates + 1)
)

_ANOTHER_ATTEMPT = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("record_id"))
    .values(attempts=_EVENTS.c.attempts + 1)
)


def _write_effect(
    conn: Connection,
    event: AppointmentEvent,
    tx: AppointmentTransaction,
    stored: bool,
    hook_names: Sequence[str],
    now: datetime,
) -> tuple[int, ...]:
    """Write what an applied event did: the appointment, its history row and the hook runs."""
    if tx.row is not None:
        if stored:
            conn.execute(
                update(_APPOINTMENTS).where(_APPOINTMENTS.c.id == event.appointment_id), tx.row
            )
        else:
            conn.execute(
                insert(_APPOINTMENTS), {**tx.row, "id": event.appointment_id, "first_seen_at": now}
            )
    conn.execute(
        insert(_HISTORY),
        {
            "appointment_id": event.appointment_id,
            "event_id": event.id,
            "event_type": event.event_type,
            "updated_at": event.updated_at,
            "changes": _jsonable(tx.changes),
            "applied_at": now,
        },
    )
    return hook_outbox.queue_runs(
        conn,
        event_id=event.id,
        event_type=event.event_type,
        appointment_id=event.appointment_id,
        hook_names=hook_names,
        prior_state=tx.current,
        now=now,
    )


def _write_record(
    conn: Connection, event_id: str, state: str | None, values: dict[str, Any], now: datetime
) -> None:
    """Insert the event's record, or update the one an earlier failed attempt left."""
    if state is None:
        conn.execute(
            insert(_EVENTS),
            {**values, "id": event_id, "received_at": now, "attempts": 1, "duplicates": 0},
        )
    else:
        conn.execute(_ANOTHER_ATTEMPT, {**values, "record_id": event_id})


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
