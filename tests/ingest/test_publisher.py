"""RedisPublisher: the message Celery's send_task would send, consumable by a real worker."""

from __future__ import annotations

import base64
import json
import threading

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from core.config import Settings
from core.names import EVENT_ID_HEADER
from core.names import EVENTS_QUEUE
from core.names import INFLIGHT_BODIES
from core.names import INFLIGHT_SINCE
from core.names import PROCESS_WEBHOOK
from core.names import unpack_inflight_body
from ingest.publisher import RedisPublisher
from tests.builders import body
from tests.builders import load_payload
from workers.celery_app import celery_config

pytestmark = pytest.mark.real

ARGSREPR = "(event_id='e-1', eventType='CREATE', appointment_id='a-1')"


def celery_for(redis_url: str) -> Celery:
    """A Celery app with engagehook's settings on ``redis_url`` (no tasks of its own)."""
    app = Celery("test-publisher")
    app.conf.update(celery_config(Settings.from_env({"REDIS_URL": redis_url})))
    return app


def decoded(raw: bytes) -> tuple[dict, object]:
    """A kombu Redis envelope and its decoded body."""
    envelope = json.loads(raw)
    return envelope, json.loads(base64.b64decode(envelope["body"]))


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class TestRedisPublisher:
    def test_message_has_the_shape_send_task_gives_it(self, redis_url, client):
        app = celery_for(redis_url)
        raw = body(load_payload("CREATE"))
        app.send_task(PROCESS_WEBHOOK, args=[raw], argsrepr=ARGSREPR, kwargsrepr="{}")
        RedisPublisher(app, redis_url, PROCESS_WEBHOOK, timeout=1).publish(raw, ARGSREPR)
        ours, theirs = (decoded(client.rpop(EVENTS_QUEUE)) for _ in range(2))
        assert set(ours[0]) == set(theirs[0])
        assert set(ours[0]["headers"]) == set(theirs[0]["headers"])
        assert ours[0]["properties"]["delivery_info"] == theirs[0]["properties"]["delivery_info"]
        assert ours[1] == theirs[1]
        assert ours[0]["headers"]["argsrepr"] == ARGSREPR

    def test_task_sent_event_names_identifiers_only(self, redis_url, client):
        app = celery_for(redis_url)
        publisher = RedisPublisher(app, redis_url, PROCESS_WEBHOOK, timeout=1)
        subscription = client.pubsub()
        subscription.subscribe(publisher.event_channel)
        subscription.get_message(timeout=1)  # the subscribe confirmation
        task_id = publisher.publish(body(load_payload("CREATE")), ARGSREPR)
        message = subscription.get_message(timeout=2)
        subscription.close()
        envelope, event = decoded(message["data"])
        assert event["type"] == "task-sent" and event["uuid"] == task_id
        assert event["args"] == ARGSREPR
        assert "Klant" not in message["data"].decode()  # no payload text in what Flower sees

    def test_real_worker_runs_the_published_task_with_the_raw_body(self, redis_url):
        app = celery_for(redis_url)
        received: list[str] = []
        done = threading.Event()
        # Once any test imported workers.tasks, its tasks are shared with every app that
        # finalizes: drop that one so this recording task is the one the worker runs.
        app.finalize()
        app.tasks.pop(PROCESS_WEBHOOK, None)

        @app.task(name=PROCESS_WEBHOOK)
        def record(payload: str) -> str:
            received.append(payload)
            done.set()
            return "recorded"

        raw = body(load_payload("CREATE"))
        with start_worker(app, perform_ping_check=False, queues=[EVENTS_QUEUE], loglevel="WARNING"):
            RedisPublisher(app, redis_url, PROCESS_WEBHOOK, timeout=1).publish(raw, ARGSREPR)
            assert done.wait(timeout=20)
        assert received == [raw]

    def test_unreachable_redis_fails_the_publish(self):
        app = celery_for("redis://127.0.0.1:1/0")
        publisher = RedisPublisher(app, "redis://127.0.0.1:1/0", PROCESS_WEBHOOK, timeout=0.2)
        with pytest.raises(redis.ConnectionError):
            publisher.publish("{}", ARGSREPR)

    def test_message_and_in_flight_entry_land_together(self, redis_url, client):
        publisher = RedisPublisher(celery_for(redis_url), redis_url, PROCESS_WEBHOOK, timeout=1)
        raw = body(load_payload("CREATE"))
        publisher.publish(raw, ARGSREPR, "e-1")
        envelope, task = decoded(client.rpop(EVENTS_QUEUE))
        assert envelope["headers"][EVENT_ID_HEADER] == "e-1"
        assert task[0] == [raw]
        assert unpack_inflight_body(client.hget(INFLIGHT_BODIES, "e-1")) == raw
        assert client.zscore(INFLIGHT_SINCE, "e-1") is not None

    def test_connection_closed_by_redis_is_replaced_and_the_publish_succeeds(
        self, redis_url, client
    ):
        publisher = RedisPublisher(celery_for(redis_url), redis_url, PROCESS_WEBHOOK, timeout=1)
        publisher.publish("{}", ARGSREPR, "e-1")
        pooled = publisher.client.client_id()  # the one idle connection of its pool
        client.client_kill_filter(_id=pooled)
        publisher.publish("{}", ARGSREPR, "e-2")
        assert publisher.client.client_id() != pooled
        assert client.llen(EVENTS_QUEUE) == 2

    def test_refused_command_fails_the_publish_and_the_next_one_works(self, redis_url, client):
        publisher = RedisPublisher(celery_for(redis_url), redis_url, PROCESS_WEBHOOK, timeout=1)
        client.set(INFLIGHT_BODIES, "not a hash")
        with pytest.raises(redis.ResponseError):
            publisher.publish("{}", ARGSREPR, "e-1")
        client.delete(INFLIGHT_BODIES, EVENTS_QUEUE)
        publisher.publish("{}", ARGSREPR, "e-2")
        assert client.hkeys(INFLIGHT_BODIES) == [b"e-2"]
        assert client.llen(EVENTS_QUEUE) == 1
