"""Plain helpers that build payloads and events for tests (fixtures live in conftest.py)."""

from __future__ import annotations

import copy
import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).with_name("payloads")
EXAMPLE_FILES = sorted(PAYLOADS.glob("*.json"))


def load_payload(name: str = "CREATE") -> dict[str, Any]:
    """A fresh copy of one of the sender's example payloads."""
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def envelope(
    event_type: str = "CREATE",
    *,
    event_id: str = "evt-1",
    appointment_id: str = "appt-1",
    updated_at: datetime | str = "2024-10-01T07:58:12+00:00",
    status: str | None = None,
    base: str = "CREATE",
    **appointment_overrides: Any,
) -> dict[str, Any]:
    """An example payload with the identifiers and ordering key a test cares about replaced."""
    payload = copy.deepcopy(load_payload(base))
    payload["id"] = event_id
    payload["data"]["eventType"] = event_type
    appointment = payload["data"]["appointment"]
    appointment["id"] = appointment_id
    appointment["updatedAt"] = (
        updated_at.isoformat() if isinstance(updated_at, datetime) else updated_at
    )
    if status is not None:
        appointment["status"] = status
    appointment.update(appointment_overrides)
    return payload


def body(payload: dict[str, Any]) -> str:
    """The raw body a sender would post."""
    return json.dumps(payload)


def instant(minutes: int) -> datetime:
    """A fixed base instant plus ``minutes``, for ordering tests."""
    return datetime(2024, 10, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes)


def dead_letter_after_an_outage(store: Any, event_id: str, appointment_id: str) -> None:
    """A CREATE dead-lettered as a store outage longer than the retry budget leaves it."""
    store.dead_letter(
        event_id=event_id,
        raw_body=body(envelope("CREATE", event_id=event_id, appointment_id=appointment_id)),
        reason="gave up after 6 retries: store unavailable: OperationalError",
        errors=[{"path": "", "message": "store unavailable: OperationalError"}],
        event_type="CREATE",
        appointment_id=appointment_id,
    )
