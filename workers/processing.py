"""One delivery from raw body to stored outcome, free of Celery so it can be called directly."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from core import logs
from core.envelope import EnvelopeIds
from core.envelope import peek
from handlers.errors import PermanentError
from handlers.errors import TransientError
from handlers.events import AppointmentEvent
from handlers.hooks import HookRegistry
from handlers.registry import HANDLERS
from handlers.storable import UNSTORABLE
from handlers.storable import unstorable_fields
from handlers.store import Store
from workers.validation import InvalidPayload
from workers.validation import decode
from workers.validation import parse_event

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery; ``label`` is the short string Flower shows."""

    label: str
    event_id: str
    event_type: str | None = None
    appointment_id: str | None = None
    hook_run_ids: tuple[int, ...] = ()


def body_fingerprint(body: str) -> str:
    """A stable stand-in id for a body that carries none of its own."""
    return "sha256:" + hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def failure_identifiers(body: str) -> tuple[str, str | None, str | None]:
    """Event id, eventType and appointment id a failure record of ``body`` is kept under.

    What the envelope names, read without validating it (the failure may have come before or
    after validation, and must not depend on it); a body naming no id gets its fingerprint.
    """
    try:
        ids = peek(decode(body))
    except Exception:  # noqa: BLE001 - not JSON, or too deep: it names nothing
        ids = EnvelopeIds()
    return ids.event_id or body_fingerprint(body), ids.event_type, ids.appointment_id


def process(body: str, store: Store, registry: HookRegistry, mode: str = "tolerant") -> Outcome:
    """Validate, deduplicate, order and apply one delivery; invalid ones are dead-lettered.

    Raises TransientError when the store cannot be reached: the caller retries.
    """
    try:
        event = parse_event(body, mode=mode)
    except InvalidPayload as err:
        event_id = err.event_id or body_fingerprint(body)
        logs.bind(event_id=event_id, event_type=err.event_type, appointment_id=err.appointment_id)
        state = store.dead_letter(
            event_id=event_id,
            raw_body=body,
            reason=err.reason,
            errors=err.errors,
            event_type=err.event_type,
            appointment_id=err.appointment_id,
        )
        logger.warning(
            "event dead-lettered",
            extra={
                "event_id": event_id,
                "event_type": err.event_type,
                "reason": err.reason,
                "error_paths": [e["path"] for e in err.errors],
            },
        )
        label = (
            "duplicate" if state == "duplicate" else f"dead_lettered:{err.reason.replace(' ', '-')}"
        )
        return Outcome(label, event_id, err.event_type, err.appointment_id)

    logs.bind(**event.log_fields())  # every later log line of this task carries the ids
    unstorable = unstorable_fields(event)
    if unstorable:
        # Valid, but a column cannot take it (an id past 255 characters, a NUL): keep it as a
        # dead letter rather than let the database refuse the apply.
        return _dead_letter_valid(store, event, body, UNSTORABLE, unstorable, "unstorable-value")
    handler = HANDLERS[event.event_type]  # validation admits only the eleven known types
    try:
        result = store.apply(event, body, handler, registry.names_for(event.event_type))
    except TransientError:
        raise
    except Exception as exc:  # a handler bug or PermanentError: keep the event, say why
        reason = f"handler failed: {exc.__class__.__name__}: {exc}"
        if not isinstance(exc, PermanentError):
            # The class and the ids only: an exception's text may quote payload values.
            logger.error("handler failed: %s", exc.__class__.__name__, extra=event.log_fields())
        errors = [{"path": "", "message": reason}]
        return _dead_letter_valid(store, event, body, reason, errors, "handler-failed")

    label = (
        result.outcome if result.outcome == "duplicate" else f"{result.outcome}:{event.event_type}"
    )
    return Outcome(label, event.id, event.event_type, event.appointment_id, result.hook_run_ids)


def _dead_letter_valid(
    store: Store,
    event: AppointmentEvent,
    body: str,
    reason: str,
    errors: list[dict[str, str]],
    label_suffix: str,
) -> Outcome:
    """Dead-letter a valid event that could not be applied; 'duplicate' if its id is taken."""
    state = store.dead_letter(
        event_id=event.id,
        raw_body=body,
        reason=reason,
        errors=errors,
        event_type=event.event_type,
        appointment_id=event.appointment_id,
    )
    logger.warning(
        "event dead-lettered",
        extra={
            **event.log_fields(),
            "reason": reason if reason == UNSTORABLE else label_suffix,
            "error_paths": [e["path"] for e in errors],
        },
    )
    label = "duplicate" if state == "duplicate" else f"dead_lettered:{label_suffix}"
    return Outcome(label, event.id, event.event_type, event.appointment_id)
