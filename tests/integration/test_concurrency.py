"""Contract semantics 4: many real workers on the same appointments lose no update.

Three `engagehook worker --concurrency 2` processes (six consumers) on the real Redis and
PostgreSQL take a few hundred shuffled, duplicated events for four appointments. The final
store must equal the newest snapshot per appointment and what a single worker produces.
"""

from __future__ import annotations

import json
import random

import pytest
import redis
from sqlalchemy import select

from handlers.events import EVENT_TYPES
from handlers.models import AppointmentChange
from tests import services
from tests.builders import instant
from tests.handlers.builders import payload
from tests.integration.celery_workers import Workers
from tests.integration.celery_workers import worker_env

pytestmark = [pytest.mark.slow, pytest.mark.real]

APPOINTMENTS = 2
EVENTS_PER_APPOINTMENT = 90
DUPLICATES = 120


def build_deliveries(seed: int = 20241001):
    """Events with ties in updatedAt, then duplicates, all shuffled; plus the expected winners."""
    rng = random.Random(seed)
    events = []
    for a in range(APPOINTMENTS):
        for n in range(EVENTS_PER_APPOINTMENT):
            minutes = rng.randrange(0, 30)
            body = payload(
                rng.choice(EVENT_TYPES),
                event_id=f"conc-a{a}-e{n:03d}",
                appointment_id=f"conc-appt-{a}",
                minutes=minutes,
                internalNotes=f"appointment {a}, version {n}",
            )
            events.append((body["id"], (f"conc-appt-{a}", instant(minutes)), body))
    deliveries = events + [rng.choice(events) for _ in range(DUPLICATES)]
    rng.shuffle(deliveries)
    newest = {}
    for event_id, (appointment_id, updated_at), body in events:
        key = (updated_at, event_id)
        if appointment_id not in newest or key > newest[appointment_id][0]:
            newest[appointment_id] = (key, body)
    return events, deliveries, {a: body for a, (_, body) in newest.items()}


@pytest.fixture
def second_postgres_url():
    """Another fresh PostgreSQL schema, for the single-worker run."""
    with services.fresh_postgres_schema() as url:
        yield url


def run(tmp_path, redis_url, database_url, *, workers, concurrency, deliveries, events):
    """Feed every delivery to fresh workers; return the final picture of the store."""
    logs = tmp_path / f"logs-{workers}x{concurrency}"
    logs.mkdir()
    group = Workers(worker_env(tmp_path, redis_url, database_url), logs)
    try:
        group.start(workers, concurrency)
        group.publish((event_id, json.dumps(body)) for event_id, _, body in deliveries)
        group.wait_drained(len(events), len(deliveries))
        appointments = {
            f"conc-appt-{a}": group.store.get_appointment(f"conc-appt-{a}")
            for a in range(APPOINTMENTS)
        }
        records = {event_id: group.store.get_event(event_id) for event_id, _, _ in events}
        with group.store.transaction(read_only=True) as session:
            commit_order = session.execute(
                select(
                    AppointmentChange.appointment_id,
                    AppointmentChange.updated_at,
                    AppointmentChange.event_id,
                ).order_by(AppointmentChange.id)
            ).all()
    finally:
        group.stop()
    return appointments, records, commit_order


def check_picture(appointments, records, commit_order, newest, deliveries):
    """Newest snapshot per appointment, one outcome per id, no older write after a newer."""
    for appointment_id, body in newest.items():
        stored = appointments[appointment_id]
        assert stored["snapshot"] == body["data"]["appointment"]
        assert stored["lastEventId"] == body["id"]
    delivered = {}
    for event_id, _, _ in deliveries:
        delivered[event_id] = delivered.get(event_id, 0) + 1
    for event_id, record in records.items():
        assert record["state"] in ("processed", "stale"), record
        assert record["duplicates"] == delivered[event_id] - 1
    last = {}
    for appointment_id, updated_at, event_id in commit_order:
        if appointment_id in last:
            assert (updated_at, event_id) > last[appointment_id]
        last[appointment_id] = (updated_at, event_id)


class TestConcurrentWorkers:
    def test_many_workers_converge_on_the_same_state_as_one(
        self, tmp_path, redis_url, postgres_url, second_postgres_url
    ):
        events, deliveries, newest = build_deliveries()

        many = run(
            tmp_path,
            redis_url,
            postgres_url,
            workers=3,
            concurrency=2,
            deliveries=deliveries,
            events=events,
        )
        check_picture(*many, newest, deliveries)

        redis.Redis.from_url(redis_url).flushdb()  # our own test DB: start the second run clean
        one = run(
            tmp_path,
            redis_url,
            second_postgres_url,
            workers=1,
            concurrency=1,
            deliveries=deliveries,
            events=events,
        )
        check_picture(*one, newest, deliveries)

        def final(appointments):
            return {
                a: (s["snapshot"], s["lastEventId"], s["status"], s["start"], s["end"])
                for a, s in appointments.items()
            }

        assert final(many[0]) == final(one[0])
