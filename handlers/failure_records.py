"""What a delivery that could not be applied leaves behind: a dead letter or a retry note.

Every value is bounded and escaped first (handlers/storable.py), so no body can make recording
fail; an id that is already taken (processed or stale) is never overwritten by a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from sqlalchemy.exc import DBAPIError

from core.states import TAKEN_STATES
from handlers.engine import event_lock_key
from handlers.engine import lock
from handlers.errors import TransientError
from handlers.models import EventRecord
from handlers.models import utcnow
from handlers.storable import MAX_EVENT_TYPE_LENGTH
from handlers.storable import MAX_ID_LENGTH
from handlers.storable import MAX_REASON_LENGTH
from handlers.storable import bounded_errors
from handlers.storable import event_key
from handlers.storable import label

if TYPE_CHECKING:
    from handlers.store import Store


def dead_letter(
    store: Store,
    *,
    event_id: str,
    raw_body: str,
    reason: str,
    errors: list[dict[str, str]],
    event_type: str | None = None,
    appointment_id: str | None = None,
) -> str:
    """Keep a payload that cannot be applied, with why; 'duplicate' if the id is taken.

    Should the database refuse the record anyway, a bare one (id, body, the refusal's class)
    is written instead; only when that fails too does the error surface, and the caller
    retries rather than acknowledge an unrecorded event.
    """
    failure = _failure(reason, errors, event_type, appointment_id)
    try:
        return _record(store, event_id, raw_body, "dead_lettered", failure)
    except TransientError:
        raise
    except DBAPIError as refused:
        bare_reason = f"unrecordable failure: {refused.__class__.__name__}"
        bare = _failure(bare_reason, [{"path": "", "message": bare_reason}], None, None)
        return _record(store, event_id, raw_body, "dead_lettered", bare)


def mark_retrying(
    store: Store,
    *,
    event_id: str,
    raw_body: str,
    reason: str,
    event_type: str | None = None,
    appointment_id: str | None = None,
) -> None:
    """Note that a delivery failed transiently and will be retried."""
    failure = _failure(reason, [{"path": "", "message": reason}], event_type, appointment_id)
    _record(store, event_id, raw_body, "retrying", failure)


def requeue(store: Store, event_id: str) -> str | None:
    """Mark a dead-lettered event queued again and return its raw body for replay."""
    key = event_key(event_id)
    with store.transaction() as session:
        lock(session, event_lock_key(key))
        record = session.get(EventRecord, key)
        if record is None or record.state != "dead_lettered":
            return None
        record.state = "queued"
        return record.raw_body


def _failure(
    reason: str,
    errors: list[dict[str, str]],
    event_type: str | None,
    appointment_id: str | None,
) -> dict[str, Any]:
    return {
        "reason": reason,
        "errors": errors,
        "event_type": event_type,
        "appointment_id": appointment_id,
    }


def _record(
    store: Store, event_id: str, raw_body: str, state: str, failure: Mapping[str, Any]
) -> str:
    """Write a dead letter or a retry note, unless the id is taken; values made to fit."""
    key = event_key(event_id)
    with store.transaction() as session:
        lock(session, event_lock_key(key))
        record = session.get(EventRecord, key)
        if record is not None and record.state in TAKEN_STATES:
            if state == "dead_lettered":
                record.duplicates += 1
            return "duplicate"
        if record is None:
            record = EventRecord(
                id=key, state="queued", received_at=utcnow(), attempts=0, duplicates=0
            )
            session.add(record)
        record.state = state
        record.reason = label(failure["reason"], MAX_REASON_LENGTH)
        record.errors = bounded_errors(failure["errors"])
        record.raw_body = raw_body
        record.event_type = label(failure.get("event_type"), MAX_EVENT_TYPE_LENGTH)
        record.appointment_id = label(failure.get("appointment_id"), MAX_ID_LENGTH)
        record.attempts = (record.attempts or 0) + 1
        if state == "dead_lettered":
            record.processed_at = utcnow()
        return state
