"""Fault (f): Redis restarts while tasks are unacknowledged; the worker carries on by itself.

Real processes: a private durable redis-server, `engagehook web` and `engagehook worker`
(Celery, 3 processes) on PostgreSQL. The test holds the store's advisory locks of two
appointments, so their events sit in the worker unacknowledged (blocked, then waiting for
their retry). Redis is restarted on the same append-only file meanwhile. The worker must
stay up (or come back by itself) and every acknowledged event, those posted before, during
and after the restart, must reach its one outcome: within 30 s of Redis being back, or, for
the messages the worker held when the connection dropped, after VISIBILITY_TIMEOUT.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy import text

from handlers.store import appointment_lock_key
from tests.builders import envelope
from tests.faults.deployment import Deployment
from tests.faults.harness import Stream
from tests.faults.harness import scale

pytestmark = pytest.mark.slow

RESTARTS = int(scale(1, 5))
RATE = 10  # events per second, throughout
BLOCKED = 2  # two of the three worker processes hold a message unacknowledged; one works
RESUME_WITHIN_SECONDS = 30  # the contract's bound, from Redis being back
VISIBILITY_TIMEOUT = int(scale(20, 60))  # the lock is held 6 s at most: far less than this
# A message held when the connection dropped comes back after the visibility timeout, found
# by kombu's restore pass (every few seconds here); then it is processed like any other.
REDELIVERED_WITHIN_SECONDS = VISIBILITY_TIMEOUT + 40


def _post(url: str, event_id: str, appointment_id: str) -> None:
    raw = json.dumps(envelope(event_id=event_id, appointment_id=appointment_id))
    response = httpx.post(
        url, content=raw, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 202, response.text


@pytest.fixture
def deployment(tmp_path, postgres_url):
    with Deployment(tmp_path, postgres_url, visibility_timeout=VISIBILITY_TIMEOUT) as deployment:
        deployment.start_worker(concurrency=3)
        deployment.start_web()
        yield deployment


def test_processing_resumes_by_itself_after_redis_restarts_with_tasks_unacknowledged(
    deployment, postgres_url
):
    url, redis, ledger = deployment.webhooks, deployment.redis, deployment.ledger
    (worker,) = deployment.workers
    ledger.assert_exactly_once(_warm_up(url), timeout=60)
    stream = Stream(url, prefix="redis-restart", rate=RATE)
    holder = create_engine(postgres_url)
    blocked: list[str] = []
    try:
        for restart in range(RESTARTS):
            lock = holder.connect()
            appointments = [f"blocked-{restart}-{n}" for n in range(BLOCKED)]
            for appointment in appointments:
                # Session-level: held across statements until unlocked or disconnected.
                lock.execute(
                    text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"),
                    {"key": appointment_lock_key(appointment)},
                )
                blocked.append(f"{appointment}-event")
                _post(url, f"{appointment}-event", appointment)
            if restart == 0:
                stream.start(int(RATE * RESTARTS * 12 + RATE * 5))
            time.sleep(3)  # two processes sit on a blocked event, unacknowledged
            redis.kill()
            time.sleep(1)
            redis.start()
            back = time.monotonic()
            time.sleep(2)
            lock.close()  # the blocked events can be applied now
            # Processing resumes by itself: every event acknowledged so far and not blocked
            # reaches the store within the bound.
            ledger.assert_exactly_once(list(stream.acked), timeout=RESUME_WITHIN_SECONDS)
            assert time.monotonic() - back < RESUME_WITHIN_SECONDS + 10
            assert worker.poll() is None, "engagehook worker exited"
        stream.wait()
    finally:
        stream.stop()
        holder.dispose()

    # The blocked events were cancelled at the connection loss, unacknowledged: Redis delivers
    # them again after VISIBILITY_TIMEOUT, and each is applied once.
    ledger.assert_exactly_once([*blocked, *stream.acked], timeout=REDELIVERED_WITHIN_SECONDS)
    assert worker.poll() is None, "engagehook worker exited"


def _warm_up(url: str) -> list[str]:
    """A few events first: the worker is consuming before anything is blocked."""
    ids = [f"warm-{n}" for n in range(3)]
    for n, event_id in enumerate(ids):
        _post(url, event_id, f"warm-appt-{n}")
    return ids
