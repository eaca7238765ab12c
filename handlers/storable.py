"""What the store's columns can hold, and how a failure record is made to fit them.

A failure record (a dead letter, a retry note) must be writable whatever the body held, or
the event it stands for is lost: so every value it records passes through here first. Ids
become keys the ``events.id`` column can take, labels are escaped and bounded, and the raw
body is kept losslessly by ``LosslessText``. PostgreSQL text and JSONB cannot hold a NUL
character; the same rules apply on SQLite, so an event meets one fate on every backend.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Text
from sqlalchemy import TypeDecorator

# The width of the id columns (events.id, appointments.id, ...) and of the bounded labels.
MAX_ID_LENGTH = 255
MAX_EVENT_TYPE_LENGTH = 64
MAX_REASON_LENGTH = 255
MAX_MEETING_TYPE_LENGTH = 32
# Error lists are for people: a few hundred entries of a few hundred characters say it all.
MAX_ERRORS = 200
MAX_ERROR_TEXT_LENGTH = 1000
# Deeper than this, a snapshot is refused before the JSON encoder's recursion limit is hit.
MAX_NESTING = 64
UNSTORABLE = "unstorable value"
KEY_PREFIX = "sha256:"
_ELLIPSIS = "…"


def fits(value: str, limit: int = MAX_ID_LENGTH) -> bool:
    """True when ``value`` can be stored as it is in a column of ``limit`` characters."""
    return len(value) <= limit and clean(value)


def clean(value: str) -> bool:
    """True when any text column can hold ``value``: no NUL, nothing UTF-8 cannot encode."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def event_key(event_id: str) -> str:
    """The ``events.id`` under which an event id is recorded: itself, or a digest when unfit.

    Deterministic, so every delivery, retry and lookup of one odd id meets the same record.
    """
    if fits(event_id):
        return event_id
    return KEY_PREFIX + hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()


def label(value: object, limit: int) -> str | None:
    """A readable, storable rendering of ``value``: NULs and surrogates escaped, bounded."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if not fits(text, limit):
        text = text.replace("\x00", "\\u0000")
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(text) > limit:
            text = text[: limit - len(_ELLIPSIS)] + _ELLIPSIS
    return text


def bounded_errors(errors: object) -> list[dict[str, str]]:
    """An error list that any JSON column takes: strings only, escaped, bounded in number."""
    if not isinstance(errors, list | tuple):
        errors = [{"path": "", "message": str(errors)}]
    out = []
    for error in list(errors)[:MAX_ERRORS]:
        entry = error if isinstance(error, Mapping) else {"path": "", "message": error}
        out.append(
            {
                "path": label(entry.get("path", ""), MAX_ERROR_TEXT_LENGTH) or "",
                "message": label(entry.get("message", ""), MAX_ERROR_TEXT_LENGTH) or "",
            }
        )
    if len(errors) > MAX_ERRORS:
        out.append({"path": "", "message": f"... and {len(errors) - MAX_ERRORS} more errors"})
    return out


def unstorable_fields(event: Any) -> list[dict[str, str]]:
    """Why a valid event cannot be stored as it is, as ``{"path", "message"}`` errors.

    ``event`` is an ``AppointmentEvent``; the checks follow the columns it is written to.
    """
    errors = []
    for path, value, limit in (
        ("id", event.id, MAX_ID_LENGTH),
        ("data.appointment.id", event.appointment_id, MAX_ID_LENGTH),
        ("data.eventType", event.event_type, MAX_EVENT_TYPE_LENGTH),
        ("data.appointment.status", event.status, MAX_EVENT_TYPE_LENGTH),
        (
            "data.appointment.meetingType",
            event.appointment.get("meetingType"),
            MAX_MEETING_TYPE_LENGTH,
        ),
        ("data.appointment.externalId", event.appointment.get("externalId"), MAX_ID_LENGTH),
    ):
        if isinstance(value, str) and not fits(value, limit):
            errors.append({"path": path, "message": _why(value, limit)})
    for name in ("appointment", "previousAppointment"):
        value = getattr(event, "appointment" if name == "appointment" else "previous_appointment")
        errors.extend(_json_problems(value, f"data.{name}"))
    return errors


def _why(value: str, limit: int) -> str:
    if "\x00" in value:
        return "contains a NUL character, which the store cannot hold"
    if len(value) > limit:
        return f"longer than the {limit} characters the store keeps"
    return "not encodable as UTF-8"


def _json_problems(document: object, root: str) -> list[dict[str, str]]:
    """NULs (in keys or strings) and excessive depth in a JSON document; iterative on purpose."""
    problems: list[dict[str, str]] = []
    stack: list[tuple[object, str, int]] = [(document, root, 0)]
    while stack and len(problems) < MAX_ERRORS:
        value, path, depth = stack.pop()
        if depth > MAX_NESTING:
            problems.append({"path": path, "message": f"nested deeper than {MAX_NESTING} levels"})
            continue
        if isinstance(value, str):
            if not clean(value):
                problems.append({"path": path, "message": _why(value, len(value))})
        elif isinstance(value, Mapping):
            for key, item in value.items():
                child = f"{path}.{label(key, 100)}"
                if isinstance(key, str) and not clean(key):
                    problems.append({"path": child, "message": "key " + _why(key, len(key))})
                stack.append((item, child, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))
    return problems


class LosslessText(TypeDecorator):
    """Text that gives back exactly the string it was given, NULs and lone surrogates included.

    A string a text column can hold is stored as it is (raw bodies are JSON objects, so they
    never start with the marker); any other string, and any string that itself starts with the
    marker, is stored as the marker plus the base64 of its UTF-8 (surrogatepass) bytes.
    """

    impl = Text
    cache_ok = True
    MARKER = "engagehook:base64:"

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None or (clean(value) and not value.startswith(self.MARKER)):
            return value
        encoded = base64.b64encode(value.encode("utf-8", "surrogatepass")).decode("ascii")
        return self.MARKER + encoded

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None or not value.startswith(self.MARKER):
            return value
        raw = base64.b64decode(value[len(self.MARKER) :])
        return raw.decode("utf-8", "surrogatepass")
