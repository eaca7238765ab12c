"""Fault (a): Redis goes away while events keep arriving; every 2xx is processed exactly once.

Real processes: a private durable redis-server, `engagehook web` (gunicorn, 2 workers) and
`engagehook worker` (Celery, 2 processes) on PostgreSQL. The broker is killed (connections
refused) or frozen with SIGSTOP (connections hang) for OUTAGE seconds (longer than the
sender's ~50 s window under `make soak`), then brought back.
"""

from __future__ import annotations

import time

import pytest

from tests import services
from tests.conftest import require_postgres
from tests.faults.deployment import Deployment
from tests.faults.harness import Stream
from tests.faults.harness import scale

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = scale(5, 65)
RATE = scale(25, 40)  # events per second, before, during and after the outage
BEFORE_SECONDS = scale(2, 10)
AFTER_SECONDS = scale(3, 10)
# A message the worker held when Redis was killed comes back after this: it bounds the drain.
VISIBILITY_TIMEOUT = int(scale(20, 60))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """One deployment for both faults: each test ends with the broker back and all drained."""
    require_postgres()
    with (
        services.fresh_postgres_schema() as postgres_url,
        Deployment(
            tmp_path_factory.mktemp("outage"),
            postgres_url,
            visibility_timeout=VISIBILITY_TIMEOUT,
        ) as deployment,
    ):
        deployment.start_worker(concurrency=2)
        deployment.start_web()
        yield deployment


@pytest.mark.parametrize("fault", ["killed", "frozen"])
def test_events_acknowledged_during_a_broker_outage_are_processed_exactly_once(deployment, fault):
    redis, ledger = deployment.redis, deployment.ledger
    count = int(RATE * (BEFORE_SECONDS + OUTAGE_SECONDS + AFTER_SECONDS))
    stream = Stream(deployment.webhooks, prefix=f"outage-{fault}", rate=RATE).start(count)
    time.sleep(BEFORE_SECONDS)
    if fault == "killed":
        redis.kill()
        time.sleep(OUTAGE_SECONDS)
        redis.start()
    else:
        redis.freeze()
        time.sleep(OUTAGE_SECONDS)
        redis.thaw()
    stream.wait()

    # The spool took what the broker could not: the sender saw no failure at all.
    assert dict(stream.refused) == {}
    assert len(stream.acked) == count
    assert stream.stored["spooled"] > 0 and stream.stored["queued"] > 0
    ledger.assert_exactly_once(stream.acked, timeout=scale(90, 300))
    assert list(deployment.spool.glob("*.json")) == []
