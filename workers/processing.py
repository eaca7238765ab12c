"""One delivery from raw body to stored outcome, free of Celery so it can be called directly."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from engagehook import logs
from handlers import HANDLERS
from handlers.errors import PermanentError
from handlers.errors import TransientError
from handlers.hooks import HookRegistry
from handlers.store import Store
from workers.validation import InvalidPayload
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
    handler = HANDLERS[event.event_type]  # validation admits only the eleven known types
    try:
        result = store.apply(event, body, handler, registry.names_for(event.event_type))
    except TransientError:
        raise
    except Exception as exc:  # a handler bug or PermanentError: keep the event, say why
        reason = f"handler failed: {exc.__class__.__name__}: {exc}"
        if not isinstance(exc, PermanentError):
            logger.exception("handler failed", extra=event.log_fields())
        state = store.dead_letter(
            event_id=event.id,
            raw_body=body,
            reason=reason,
            errors=[{"path": "", "message": reason}],
            event_type=event.event_type,
            appointment_id=event.appointment_id,
        )
        label = "duplicate" if state == "duplicate" else "dead_lettered:handler-failed"
        return Outcome(label, event.id, event.event_type, event.appointment_id)

    label = (
        result.outcome if result.outcome == "duplicate" else f"{result.outcome}:{event.event_type}"
    )
    return Outcome(label, event.id, event.event_type, event.appointment_id, result.hook_run_ids)
