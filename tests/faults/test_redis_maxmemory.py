"""Fault: Redis at ``maxmemory`` with ``noeviction``; the worker survives it and drains.

Real processes: a private redis-server, `engagehook web` and `engagehook worker` on
PostgreSQL. Redis is filled with filler keys until it refuses writes (OOM), as a Redis sized
too small for a backlog does. Ingest spools what it cannot queue. A worker started on the
full Redis must stay up: it consumes at once when its queues were bound before (consuming
frees memory), or keeps retrying until an operator raises maxmemory when they never were.
Either way every acknowledged event reaches the store exactly once.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.builders import envelope
from tests.faults.deployment import Deployment
from tests.faults.harness import scale
from tests.processes import stop

pytestmark = pytest.mark.slow

ALIVE_FOR_SECONDS = scale(5, 15)  # what stock kombu did not: it exited within a second of starting
DRAINED_WITHIN_SECONDS = 120
UNLIMITED = 0  # maxmemory 0: no cap


@pytest.fixture
def deployment(tmp_path, postgres_url):
    with Deployment(tmp_path, postgres_url) as deployment:  # no worker yet: the tests start it
        deployment.start_web()
        yield deployment


def _post(url: str, prefix: str, count: int) -> tuple[list[str], set[str]]:
    """Post ``count`` events; the ids acknowledged and how ingest stored them."""
    acked, stored = [], set()
    for n in range(count):
        event_id = f"{prefix}-{n}"
        raw = json.dumps(envelope(event_id=event_id, appointment_id=f"{prefix}-appt-{n}"))
        response = httpx.post(
            url, content=raw, headers={"Content-Type": "application/json"}, timeout=10
        )
        assert response.status_code == 202, response.text
        acked.append(event_id)
        stored.add(response.json().get("stored"))
    return acked, stored


def test_a_worker_started_on_a_full_redis_never_bound_waits_and_drains_once_memory_is_freed(
    deployment,
):
    url, redis, ledger = deployment.webhooks, deployment.redis, deployment.ledger
    queued, how = _post(url, "oom-fresh-queued", 10)
    assert how == {"queued"}
    redis.fill_to_maxmemory()
    spooled, how = _post(url, "oom-fresh-spooled", 5)
    assert how == {"spooled"}

    worker = deployment.start_worker()
    time.sleep(ALIVE_FOR_SECONDS)
    assert worker.poll() is None, "engagehook worker exited on a full Redis"
    # Its queues were never bound and Redis takes no write: the worker waited, and did not
    # get around the full Redis by losing anything.
    assert redis.refuses_writes()
    assert ledger.outcomes(queued + spooled) == {}

    redis.set_maxmemory(UNLIMITED)
    ledger.assert_exactly_once(queued + spooled, timeout=DRAINED_WITHIN_SECONDS)
    assert worker.poll() is None


def test_a_worker_restarted_on_a_full_redis_drains_it_without_help(deployment):
    url, redis, ledger = deployment.webhooks, deployment.redis, deployment.ledger
    first = deployment.start_worker()
    warm, _ = _post(url, "oom-warm", 3)
    ledger.assert_exactly_once(warm, timeout=60)  # its queues are bound now
    stop(first)
    backlog, how = _post(url, "oom-backlog", 20)
    assert how == {"queued"}
    redis.fill_to_maxmemory()
    assert redis.refuses_writes()

    worker = deployment.start_worker()
    # Consuming needs no memory (BRPOP, and the in-flight copy's HDEL frees some): the
    # backlog drains with maxmemory unchanged, each event applied once.
    ledger.assert_exactly_once(backlog, timeout=DRAINED_WITHIN_SECONDS)
    log = deployment.log("worker.log").read_text()
    assert "processed without its unacked record" in log  # Redis refused the bookkeeping
    time.sleep(ALIVE_FOR_SECONDS)
    assert worker.poll() is None, "engagehook worker exited on a full Redis"

    # Memory back: what arrives now is queued and processed as usual.
    redis.set_maxmemory(UNLIMITED)
    later, _ = _post(url, "oom-later", 5)
    ledger.assert_exactly_once(warm + backlog + later, timeout=DRAINED_WITHIN_SECONDS)
    assert worker.poll() is None
