"""Turn a raw webhook body into an AppointmentEvent, or a list of path-addressed errors."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import orjson
from marshmallow import ValidationError

from core.config import VALIDATION_MODES
from core.envelope import peek
from core.names import UNSUPPORTED_ENTITY
from handlers.events import AppointmentEvent
from workers.schemas import TOLERANT
from workers.schemas import UNSUPPORTED_EVENT_TYPE
from workers.schemas import UNSUPPORTED_STATUS
from workers.schemas import EnvelopeSchema
from workers.schemas.paths import flatten_errors

APPOINTMENT_ENTITY = "Appointment"

logger = logging.getLogger(__name__)

# Built once per mode: building the nested schema tree costs far more than one validation.
_SCHEMAS = {mode: EnvelopeSchema(mode=mode) for mode in VALIDATION_MODES}
# Where an unknown discriminator value means "newer than this receiver" rather than "broken".
# orjson reads integers up to 2**64 exactly; 19 digits or more might be beyond.
_LONG_DIGIT_RUN = re.compile(r"\d{19}")
_STATUS_PATHS = ("data.appointment.status", "data.previousAppointment.status")


class InvalidPayload(Exception):
    """The body breaks the contract; it is dead-lettered, never retried by itself."""

    def __init__(self, reason: str, errors: list[dict[str, str]], raw: Any = None) -> None:
        super().__init__(f"{reason}: {errors}")
        self.reason = reason
        self.errors = errors
        ids = peek(raw)
        self.event_id = ids.event_id
        self.event_type = ids.event_type
        self.appointment_id = ids.appointment_id


def parse_event(body: str | bytes, *, mode: str = TOLERANT) -> AppointmentEvent:
    """Validate ``body`` against the contract and build the event, or raise InvalidPayload."""
    try:
        raw = decode(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload("invalid", [{"path": "", "message": f"not JSON: {exc}"}]) from None
    return _load(raw, mode)


def decode(body: str | bytes) -> Any:
    """The JSON document of ``body``, every number with its exact value.

    orjson refuses what ingest refuses (invalid UTF-8, lone surrogates, absurd nesting), but
    it reads an integer beyond 64 bits as a float. A body with such a long digit run is read
    again by the standard library, whose integers have no bound.
    """
    raw = orjson.loads(body)
    text = body if isinstance(body, str) else body.decode("utf-8")
    if _LONG_DIGIT_RUN.search(text):
        try:
            raw = json.loads(text, parse_constant=_refuse_constant)
        except (RecursionError, ValueError):
            pass  # nesting past Python's recursion limit: keep orjson's reading
    return raw


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def validate_document(raw: Any, *, mode: str = TOLERANT) -> list[dict[str, str]]:
    """The contract errors of a decoded document, sorted by path; ``[]`` when it is valid."""
    try:
        _load(raw, mode)
    except InvalidPayload as exc:
        return exc.errors
    return []


def _load(raw: Any, mode: str) -> AppointmentEvent:
    """Run the schemas of ``mode`` on ``raw`` and log the unknown properties they kept."""
    schema = _SCHEMAS.get(mode)
    if schema is None:
        raise ValueError(f"VALIDATION_MODE must be one of {VALIDATION_MODES}, not {mode!r}")
    if not isinstance(raw, dict):
        raise InvalidPayload("invalid", [{"path": "", "message": "must be a JSON object"}], raw)
    entity = raw.get("entity")
    if isinstance(entity, str) and entity.strip() and entity != APPOINTMENT_ENTITY:
        # Another kind of event (Pexip also posts e.g. "Callback Request" updates): kept for
        # the day it is supported, and never judged by the Appointment contract.
        message = f"{UNSUPPORTED_ENTITY} {entity[:80]!r}: expected {APPOINTMENT_ENTITY!r}"
        raise InvalidPayload(UNSUPPORTED_ENTITY, [{"path": "entity", "message": message}], raw)
    try:
        event = schema.load(raw)
    except ValidationError as exc:
        errors = flatten_errors(exc.messages)
        raise InvalidPayload(_reason(errors), errors, raw) from None
    if event.unknown_fields:
        # Paths only: the values may be personal data.
        logger.info(
            "event %s: kept %d unknown properties: %s",
            event.id,
            len(event.unknown_fields),
            ", ".join(event.unknown_fields),
        )
    return event


def _reason(errors: list[dict[str, str]]) -> str:
    """Why the event is dead-lettered: a value newer than this receiver, or a broken payload."""
    for error in errors:
        message = error["message"]
        if error["path"] == "data.eventType" and message.startswith(UNSUPPORTED_EVENT_TYPE):
            return UNSUPPORTED_EVENT_TYPE
    for error in errors:
        if error["path"] in _STATUS_PATHS and error["message"].startswith(UNSUPPORTED_STATUS):
            return UNSUPPORTED_STATUS
    return "invalid"
