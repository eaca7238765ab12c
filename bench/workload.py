"""Realistic deliveries: many appointments, each changed several times, duplicated and shuffled."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import orjson

from bench.support import example_body

# The first event of an appointment creates it; the others cycle through the rest.
LATER_TYPES = (
    "GENERIC_UPDATE",
    "RESCHEDULE",
    "ACCEPT",
    "REASSIGN",
    "GENERIC_UPDATE",
    "RESCHEDULE_REQUEST",
    "REOPEN",
    "COMPLETE",
    "CANCEL",
    "REQUEST_ALTERNATIVE_DATE",
)
BASE_INSTANT = datetime(2024, 10, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Delivery:
    """One POST the sender makes: the event's identifiers and the exact body."""

    event_id: str
    appointment_id: str
    updated_at: str
    body: str


@dataclass(frozen=True)
class Workload:
    """Deliveries in sending order, and what the store must hold once they are processed."""

    deliveries: list[Delivery]
    unique_events: int
    duplicates: int
    newest: dict[str, dict[str, Any]]  # appointment id -> snapshot of its newest event

    @property
    def appointments(self) -> int:
        """How many distinct appointments the deliveries touch."""
        return len(self.newest)


def _event(base: bytes, appointment: int, sequence: int, tag: str) -> tuple[Delivery, dict]:
    payload = orjson.loads(base)
    appointment_id = f"{tag}-appt-{appointment:05d}"
    event_type = "CREATE" if sequence == 0 else LATER_TYPES[(sequence - 1) % len(LATER_TYPES)]
    updated = BASE_INSTANT + timedelta(minutes=sequence, seconds=appointment % 60)
    start = BASE_INSTANT + timedelta(days=7, hours=sequence)
    snapshot = payload["data"]["appointment"]
    snapshot.update(
        id=appointment_id,
        updatedAt=updated.isoformat(),
        start=start.isoformat(),
        end=(start + timedelta(hours=1)).isoformat(),
        internalNotes=f"revision {sequence}",
    )
    payload["id"] = f"{tag}-evt-{appointment:05d}-{sequence:02d}"
    payload["correlationId"] = f"{tag}-corr-{appointment:05d}-{sequence:02d}"
    payload["data"]["eventType"] = event_type
    body = orjson.dumps(payload).decode()
    return Delivery(payload["id"], appointment_id, snapshot["updatedAt"], body), snapshot


def generate(
    *,
    events: int,
    appointments: int,
    duplicate_share: float = 0.0,
    seed: int = 7,
    tag: str = "bench",
) -> Workload:
    """``events`` deliveries for ``appointments``; ``duplicate_share`` of them re-deliveries.

    Unique events are spread evenly over the appointments with rising ``updatedAt``; the
    duplicates repeat randomly chosen events byte for byte; the whole list is shuffled.
    """
    duplicates = round(events * duplicate_share)
    unique = events - duplicates
    if unique < appointments:
        raise ValueError("every appointment needs at least one event")
    base = example_body("CREATE").encode()
    rng = random.Random(seed)
    originals: list[Delivery] = []
    newest: dict[str, dict[str, Any]] = {}
    for appointment in range(appointments):
        count = unique // appointments + (1 if appointment < unique % appointments else 0)
        for sequence in range(count):
            delivery, snapshot = _event(base, appointment, sequence, tag)
            originals.append(delivery)
            newest[delivery.appointment_id] = snapshot  # sequences rise, so the last wins
    deliveries = originals + rng.sample(originals, duplicates)
    rng.shuffle(deliveries)
    return Workload(deliveries, unique, duplicates, newest)
