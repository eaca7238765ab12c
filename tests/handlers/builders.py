"""Builders of validated events for store and handler tests (no schema in the way)."""

from __future__ import annotations

import copy
import textwrap
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

from handlers.events import AppointmentEvent
from handlers.hooks import ENTRY_POINT_GROUP
from tests.builders import envelope
from tests.builders import instant

# The status each eventType plausibly carries (the seed does not tie them; see the spec, 11).
STATUS_OF = {
    "CREATE": "ACCEPTED",
    "CREATE_REQUEST": "INCOMING_REQUEST",
    "ACCEPT": "ACCEPTED",
    "CANCEL": "CANCELLED",
    "COMPLETE": "COMPLETED",
    "REOPEN": "ACCEPTED",
    "REQUEST_ALTERNATIVE_DATE": "ALTERNATIVE_DATE_REQUESTED",
    "RESCHEDULE": "ACCEPTED",
    "RESCHEDULE_REQUEST": "OUTGOING_INVITE",
    "REASSIGN": "ACCEPTED",
    "GENERIC_UPDATE": "ACCEPTED",
}


def from_payload(payload: dict[str, Any]) -> AppointmentEvent:
    """The event ``parse_event`` would build from ``payload`` (raw objects kept as sent)."""
    data = payload["data"]
    appointment = data["appointment"]
    return AppointmentEvent(
        id=payload["id"],
        event_type=data["eventType"],
        appointment_id=appointment["id"],
        updated_at=datetime.fromisoformat(appointment["updatedAt"]),
        status=appointment["status"],
        appointment=appointment,
        previous_appointment=data.get("previousAppointment"),
        correlation_id=payload.get("correlationId"),
    )


def payload(
    event_type: str = "CREATE",
    *,
    event_id: str = "evt-1",
    appointment_id: str = "appt-1",
    minutes: int = 0,
    previous: dict[str, Any] | None = None,
    **appointment_overrides: Any,
) -> dict[str, Any]:
    """A sender-shaped payload: ``minutes`` after a fixed instant, a plausible status."""
    appointment_overrides.setdefault("status", STATUS_OF[event_type])
    body = envelope(
        event_type,
        event_id=event_id,
        appointment_id=appointment_id,
        updated_at=instant(minutes),
        **appointment_overrides,
    )
    body["data"]["previousAppointment"] = copy.deepcopy(previous)
    return body


def event(event_type: str = "CREATE", **kwargs: Any) -> AppointmentEvent:
    """An AppointmentEvent built like :func:`payload`."""
    return from_payload(payload(event_type, **kwargs))


def employee_participant(employee_id: str, role: str = "PRIMARY") -> dict[str, Any]:
    """An EMPLOYEE participant as the full appointment object carries it."""
    return {"role": role, "type": "EMPLOYEE", "employee": {"id": employee_id, "status": "ACTIVE"}}


def reduced_employee(employee_id: str, role: str = "PRIMARY") -> dict[str, Any]:
    """An EMPLOYEE participant as the reduced previousAppointment carries it."""
    return {"role": role, "type": "EMPLOYEE", "employee": {"id": employee_id}}


def answer(answer_id: str, answer_type: str, value: str | None = None) -> dict[str, Any]:
    """One answer of a form (cancellation, completion, questionnaire)."""
    return {
        "id": answer_id,
        "form": {"id": f"form-{answer_type.lower()}"},
        "question": {"id": f"q-{answer_id}", "externalId": None, "order": 0},
        "answerType": answer_type,
        "value": value,
        "selectedAnswerOptions": None,
        "files": None,
    }


def install_package(
    root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """A package in ``root`` with a dist-info declaring ``entry_points`` (as pip leaves it)."""
    for module, source in modules.items():
        path = root / f"{module.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir()
    dist.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    dist.joinpath("entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")


def finish_hook_run(store: Any, run_id: int, state: str, error: str | None = None) -> None:
    """End a hook run as a worker would: claim an attempt, then finish it as ``state``."""
    from handlers import hook_outbox

    held = hook_outbox.claim(store, run_id, lease=timedelta(seconds=30), max_attempts=100)
    assert isinstance(held, hook_outbox.HookClaim), held
    assert hook_outbox.finish(store, held, state=state, error=error)


def dead_letter_hook_run(store: Any, run_id: int) -> None:
    """A hook run that gave up (its downstream kept failing), waiting for a replay."""
    finish_hook_run(store, run_id, "dead_lettered", "CRM said 500")
