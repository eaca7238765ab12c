"""Pure readers of an appointment object: the pieces handlers compare between old and new."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

Snapshot = Mapping[str, Any]


def employees(appointment: Snapshot | None) -> list[dict[str, Any]]:
    """The employee participants as ``{"id", "role"}``, in the sender's order."""
    if not appointment:
        return []
    out = []
    for participant in appointment.get("participants") or []:
        if not isinstance(participant, Mapping) or participant.get("type") != "EMPLOYEE":
            continue
        employee = participant.get("employee") or {}
        out.append({"id": employee.get("id"), "role": participant.get("role")})
    return out


def answers(appointment: Snapshot | None, *answer_types: str) -> list[dict[str, Any]]:
    """Answers of the given types (all answers when none is named), without question texts."""
    if not appointment:
        return []
    out = []
    for answer in appointment.get("answers") or []:
        if not isinstance(answer, Mapping):
            continue
        if answer_types and answer.get("answerType") not in answer_types:
            continue
        out.append(
            {
                "id": answer.get("id"),
                "answerType": answer.get("answerType"),
                "questionId": (answer.get("question") or {}).get("id"),
                "value": answer.get("value"),
                "selectedAnswerOptions": [
                    option.get("externalId") or option.get("id")
                    for option in answer.get("selectedAnswerOptions") or []
                    if isinstance(option, Mapping)
                ],
                "files": [f.get("id") for f in answer.get("files") or [] if isinstance(f, Mapping)],
            }
        )
    return out


def field_change(name: str, old: Snapshot | None, new: Snapshot) -> dict[str, Any]:
    """``{name: {"old", "new"}}`` when the field differs between the two objects, else {}."""
    before = old.get(name) if old else None
    after = new.get(name)
    return {name: {"old": before, "new": after}} if before != after else {}


def prior(event_previous: Snapshot | None, stored: Snapshot | None) -> Snapshot | None:
    """The state before this event: the sender's previousAppointment, else what we stored."""
    return event_previous if event_previous else stored


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 instant with an offset as an aware datetime; anything else is None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
