"""A replay during a broker outage leaves the dead letter in place and exits 1 (issue 11, 2).

Real processes on a private redis-server: `engagehook dead-letters replay` while the broker
is down, then again once it is back, with `engagehook worker` processing the replayed event.
A replayed message is registered in flight like a webhook, so the sweeper could find it.
"""

from __future__ import annotations

import pytest
import redis

from core.config import Settings
from core.names import INFLIGHT_BODIES
from handlers.store import Store
from tests.builders import dead_letter_after_an_outage
from tests.processes import cli_json
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def deployment(tmp_path, private_redis):
    broker = private_redis
    env = {
        "REDIS_URL": broker.url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"),
    }
    store = Store(Settings.from_env(env).store_url)
    store.migrate()
    dead_letter_after_an_outage(store, "replay-me", "ap-replay")
    yield broker, env, store
    store.engine.dispose()


def test_replay_while_the_broker_is_down_keeps_the_dead_letter_then_succeeds(deployment, tmp_path):
    broker, env, store = deployment
    broker.kill()
    code, _ = cli_json(["dead-letters", "replay", "replay-me"], env)
    assert code == 1
    assert store.get_event("replay-me")["state"] == "dead_lettered"
    code, listed = cli_json(["dead-letters", "list", "--reason", "gave up"], env)
    assert (code, [d["id"] for d in listed]) == (0, ["replay-me"])

    broker.start()
    code, _ = cli_json(["dead-letters", "replay", "--all", "--type", "CREATE"], env)
    assert code == 0
    assert store.get_event("replay-me")["state"] == "queued"
    client = redis.Redis.from_url(broker.url)
    assert client.hexists(INFLIGHT_BODIES, "replay-me")  # tracked like any delivery

    worker = start(["worker", "--concurrency", "1"], env, tmp_path / "worker.log")
    try:
        wait_until(lambda: store.get_event("replay-me")["state"] == "processed", timeout=90)
        assert store.get_appointment("ap-replay")["lastEventId"] == "replay-me"
        wait_until(lambda: not client.hexists(INFLIGHT_BODIES, "replay-me"), timeout=30)
    finally:
        stop(worker)
        client.close()
