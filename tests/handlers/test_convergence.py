"""Convergence (contract semantics 1-3): any delivery order, any duplicates, one final picture."""

from __future__ import annotations

import json
import uuid
from datetime import UTC
from datetime import timedelta
from datetime import timezone

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from handlers.events import EVENT_TYPES
from handlers.hooks import HookRegistry
from tests.builders import instant
from tests.handlers.builders import payload
from workers.processing import process

# The same instant may be written with any offset; ordering must compare instants, not text.
OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]


@st.composite
def histories(draw):
    """Several appointments, each with a few events (ties in updatedAt included)."""
    events = []
    for appointment in range(draw(st.integers(1, 4))):
        for n in range(draw(st.integers(1, 6))):
            events.append(
                {
                    "appointment": appointment,
                    "n": n,
                    "type": draw(st.sampled_from(EVENT_TYPES)),
                    "minutes": draw(st.integers(0, 8)),  # few values: equal updatedAt happens
                    "offset": draw(st.sampled_from(OFFSETS)),
                }
            )
    extra = draw(st.lists(st.sampled_from(range(len(events))), max_size=len(events)))
    deliveries = draw(st.permutations(list(range(len(events))) + extra))
    return events, deliveries


def render(spec, prefix):
    """The raw body one drawn event is delivered as."""
    event_id = f"{prefix}-a{spec['appointment']}-e{spec['n']}"
    body = payload(
        spec["type"],
        event_id=event_id,
        appointment_id=f"{prefix}-appt-{spec['appointment']}",
        minutes=spec["minutes"],
        internalNotes=f"version {spec['n']}",
    )
    updated = instant(spec["minutes"]).astimezone(spec["offset"])
    body["data"]["appointment"]["updatedAt"] = updated.isoformat()
    return event_id, body


def sequential_model(keys, order):
    """What one-at-a-time processing must answer for each delivery, and the winners."""
    seen, newest, outcomes = set(), {}, []
    for index in order:
        appointment, key = keys[index]
        if key[1] in seen:
            outcomes.append("duplicate")
            continue
        seen.add(key[1])
        if appointment in newest and key < newest[appointment]:
            outcomes.append("stale")
        else:
            newest[appointment] = key
            outcomes.append("processed")
    return outcomes, newest


class TestConvergence:
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(history=histories())
    def test_any_order_with_duplicates_converges_to_the_newest_snapshot(self, store, history):
        specs, order = history
        prefix = uuid.uuid4().hex[:8]  # every example gets its own appointments in one store
        rendered = [render(spec, prefix) for spec in specs]
        registry = HookRegistry()

        labels = [process(json.dumps(rendered[i][1]), store, registry).label for i in order]

        keys = [
            (body["data"]["appointment"]["id"], (instant(spec["minutes"]), event_id))
            for spec, (event_id, body) in zip(specs, rendered, strict=True)
        ]
        expected, newest = sequential_model(keys, order)
        assert [label.split(":")[0] for label in labels] == expected
        for appointment_id, (_, winner_id) in newest.items():
            winner = next(body for event_id, body in rendered if event_id == winner_id)
            stored = store.get_appointment(appointment_id)
            assert stored["snapshot"] == winner["data"]["appointment"]
            assert stored["lastEventId"] == winner_id
        for index, (event_id, _) in enumerate(rendered):
            record = store.get_event(event_id)
            deliveries = order.count(index)
            assert record["state"] in ("processed", "stale")
            assert record["duplicates"] == deliveries - 1
