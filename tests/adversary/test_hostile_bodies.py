"""Hostile bodies through the real endpoint and workers: every 202 reaches a final state.

Hypothesis puts over-long, NUL-bearing and escaped lone-surrogate strings at every id-like
place of a valid payload, nests deeply, writes huge numbers and duplicate keys. Each body
goes through `engagehook web` and `engagehook worker` on PostgreSQL and Redis (and through
embedded `serve`); each one answered 202 must end processed, duplicate, stale or dead-lettered,
and a second delivery of it must change nothing (semantics 1, 9).
"""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy import select

from handlers.models import AppointmentChange
from tests.adversary.deployments import embedded
from tests.adversary.deployments import redis_postgres
from tests.builders import envelope

pytestmark = [
    pytest.mark.slow,
    # A failing example is a large body; its repr must not turn the failure into a warning.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning"),
]

# Where an identifier (or a short label a column holds) sits in a payload.
ID_PLACES = (
    ("id",),
    ("correlationId",),
    ("webhookConfigurationId",),
    ("entity",),
    ("version",),
    ("data", "eventType"),
    ("data", "appointment", "id"),
    ("data", "appointment", "externalId"),
    ("data", "appointment", "meetingType"),
    ("data", "appointment", "status"),
    ("data", "appointment", "subject", "id"),
    ("data", "appointment", "office", "id"),
    ("data", "appointment", "participants", 0, "employee", "id"),
    ("data", "appointment", "participants", 1, "customer", "externalId"),
)
SURROGATE = "\ud800"  # written by json.dumps as the escape \ud800, which no UTF-8 can hold

hostile_strings = st.one_of(
    st.integers(256, 600).map(lambda n: "x" * n),
    st.integers(64, 120).map(lambda n: "E" * n),
    st.text(max_size=20).map(lambda s: s + "\x00" + s),
    st.just("\x00"),
    st.text(max_size=10).map(lambda s: s + SURROGATE),
    st.text(max_size=300),
)
huge_numbers = st.sampled_from(
    [10**30, -(10**30), 1.7976931348623157e308, 5e-324, 2**63, -(2**63) - 1, 0.1]
)


def _set(document, path, value) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


@st.composite
def hostile_body(draw) -> bytes:
    """A valid payload with hostile values put in, as the bytes a client would post."""
    event_id = f"adv-{uuid.uuid4().hex}"
    payload = envelope(event_id=event_id, appointment_id=f"appt-{uuid.uuid4().hex}")
    for path in draw(st.lists(st.sampled_from(ID_PLACES), max_size=3, unique=True)):
        _set(payload, path, draw(hostile_strings))
    customer = payload["data"]["appointment"]["participants"][1]["customer"]
    if draw(st.booleans()):
        depth = draw(st.integers(10, 900))
        nested: object = "bottom"
        for _ in range(depth):
            nested = {"n": nested}
        customer["deep"] = nested
    if draw(st.booleans()):
        payload["data"]["appointment"]["trailingBufferTime"] = draw(huge_numbers)
    text = json.dumps(payload)
    if draw(st.booleans()):
        # A duplicate key: parsers keep the last one, ingest and workers alike.
        text = '{"id": "' + draw(st.sampled_from(["shadow", event_id])) + '", ' + text[1:]
    return text.encode()


def check_bodies(deployment, bodies) -> None:
    accepted = []
    for raw in bodies:
        response = deployment.post(raw)
        assert response.status_code in (202, 400), response.text
        if response.status_code == 202:
            accepted.append((response.json()["id"], raw))
    if not accepted:
        return
    ids = [event_id for event_id, _ in accepted]
    first = deployment.wait_final(ids, timeout=180)
    for _, raw in accepted:  # a second delivery changes nothing
        assert deployment.post(raw).status_code == 202
    with deployment.store.transaction(read_only=True) as session:
        applied = session.execute(
            select(AppointmentChange.event_id, func.count())
            .where(AppointmentChange.event_id.in_(ids))
            .group_by(AppointmentChange.event_id)
        ).all()
    assert all(count == 1 for _, count in applied)
    # Wait for the redeliveries too, then compare: a final state never moves back.
    deployment.wait_final(ids, timeout=180)
    for event_id, state in first.items():
        record = deployment.store.get_event(event_id)
        if state == "processed":
            assert record["state"] == "processed"


HYPOTHESIS = settings(
    max_examples=6,
    # No shrinking: each step would re-run real deliveries; the failing batch is printed.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.real
def test_hostile_bodies_on_postgres_and_redis(tmp_path, postgres_url):
    from tests.conftest import require_redis

    require_redis()
    with redis_postgres(tmp_path, postgres_url, {}) as deployment:

        @HYPOTHESIS
        @given(bodies=st.lists(hostile_body(), min_size=3, max_size=6))
        def attack(bodies):
            check_bodies(deployment, bodies)

        attack()


def test_hostile_bodies_on_embedded_serve(tmp_path):
    with embedded(tmp_path, {}) as deployment:

        @settings(HYPOTHESIS, max_examples=3)
        @given(bodies=st.lists(hostile_body(), min_size=3, max_size=6))
        def attack(bodies):
            check_bodies(deployment, bodies)

        attack()
