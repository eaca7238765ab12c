"""The in-flight registry: a webhook lost between the broker and a worker is found again."""

from __future__ import annotations

import time

import fakeredis
import orjson
import pytest

from core.config import Settings
from core.names import EVENTS_QUEUE
from core.names import INFLIGHT_BODIES
from core.names import INFLIGHT_SINCE
from core.names import PROCESS_WEBHOOK
from core.names import unpack_inflight_body
from handlers.hooks import HookRegistry
from ingest.publisher import RedisPublisher
from tests.builders import body
from tests.builders import envelope
from workers import inflight
from workers.celery_app import create_celery_app
from workers.processing import process

NOW = 1_000_000.0


@pytest.fixture
def client():
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def publisher(client, monkeypatch):
    app = create_celery_app(Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0"}))
    publisher = RedisPublisher(app, "redis://127.0.0.1:1/0", PROCESS_WEBHOOK, timeout=0.5)
    publisher.client = client
    return publisher


class Republished(list):
    def __call__(self, event_id: str, raw: str) -> None:
        self.append((event_id, raw))


def lose_oldest_message(client) -> None:
    """What a worker SIGKILLed right after BRPOP leaves behind: nothing in the queue."""
    client.rpop(EVENTS_QUEUE)


class TestPublisherRegistersInFlight:
    def test_publish_writes_message_body_and_time_together(self, publisher, client):
        raw = body(envelope(event_id="e-1"))
        publisher.publish(raw, "(e-1)", "e-1")
        message = orjson.loads(client.lindex(EVENTS_QUEUE, -1))
        assert message["headers"][inflight.EVENT_ID_HEADER] == "e-1"
        assert unpack_inflight_body(client.hget(INFLIGHT_BODIES, "e-1")) == raw
        assert client.zscore(INFLIGHT_SINCE, "e-1") is not None

    def test_first_publish_time_is_kept_for_a_repeated_id(self, publisher, client):
        publisher.publish(body(envelope(event_id="e-1")), "(e-1)", "e-1")
        first = client.zscore(INFLIGHT_SINCE, "e-1")
        publisher.publish(body(envelope(event_id="e-1")), "(e-1)", "e-1")
        assert client.zscore(INFLIGHT_SINCE, "e-1") == first


class TestRecover:
    def register(self, client, event_id: str, since: float, queued: bool = False) -> str:
        raw = body(envelope(event_id=event_id, appointment_id=f"a-{event_id}"))
        client.hset(INFLIGHT_BODIES, event_id, raw)
        client.zadd(INFLIGHT_SINCE, {event_id: since})
        if queued:
            message = {"headers": {inflight.EVENT_ID_HEADER: event_id}}
            client.lpush(EVENTS_QUEUE, orjson.dumps(message))
        return raw

    def test_lost_unprocessed_event_is_republished_once(self, client, sqlite_store):
        raw = self.register(client, "lost", since=NOW - 400)
        republished = Republished()
        counts = inflight.recover(client, sqlite_store, republished, older_than=300, now=NOW)
        assert counts == {"settled": 0, "republished": 1}
        assert republished == [("lost", raw)]
        # Watched again from now: the next pass leaves it alone.
        again = Republished()
        inflight.recover(client, sqlite_store, again, older_than=300, now=NOW)
        assert again == []

    def test_processed_event_is_forgotten_not_republished(self, client, sqlite_store):
        raw = self.register(client, "done", since=NOW - 400)
        process(raw, sqlite_store, HookRegistry())
        republished = Republished()
        counts = inflight.recover(client, sqlite_store, republished, older_than=300, now=NOW)
        assert counts == {"settled": 1, "republished": 0}
        assert republished == []
        assert client.hget(INFLIGHT_BODIES, "done") is None

    def test_young_event_is_left_alone(self, client, sqlite_store):
        self.register(client, "young", since=NOW - 10)
        republished = Republished()
        inflight.recover(client, sqlite_store, republished, older_than=300, now=NOW)
        assert republished == []

    def test_event_behind_older_queued_messages_is_not_republished(self, client, sqlite_store):
        # A backlog: the oldest queued message is older than the in-flight one, so the
        # in-flight one cannot have left the queue yet.
        self.register(client, "backlog-head", since=NOW - 900, queued=True)
        self.register(client, "waiting", since=NOW - 800, queued=True)
        republished = Republished()
        inflight.recover(client, sqlite_store, republished, older_than=300, now=NOW)
        assert republished == []

    def test_only_ids_older_than_the_oldest_queued_message_are_lost(self, client, sqlite_store):
        self.register(client, "popped", since=NOW - 900)
        self.register(client, "queued", since=NOW - 800, queued=True)
        republished = Republished()
        inflight.recover(client, sqlite_store, republished, older_than=300, now=NOW)
        assert [event_id for event_id, _ in republished] == ["popped"]

    @pytest.mark.parametrize(
        "odd_message",
        [
            b"not json",
            orjson.dumps({"headers": {}}),
            orjson.dumps({"headers": {inflight.EVENT_ID_HEADER: 7}}),
            orjson.dumps({"headers": {inflight.EVENT_ID_HEADER: ["x"]}}),
            orjson.dumps({"headers": {inflight.EVENT_ID_HEADER: "replayed-untracked"}}),
            orjson.dumps([1, 2]),
        ],
    )
    def test_an_untracked_oldest_message_does_not_stop_recovery(
        self, client, sqlite_store, odd_message
    ):
        client.lpush(EVENTS_QUEUE, odd_message)  # the oldest message in the queue
        self.register(client, "popped", since=NOW - 900)
        self.register(client, "queued", since=NOW - 800, queued=True)
        republished = Republished()
        inflight.recover(client, sqlite_store, republished, older_than=300, now=NOW)
        assert [event_id for event_id, _ in republished] == ["popped"]

    def test_a_queue_of_only_untracked_messages_hides_nothing(self, client, sqlite_store):
        for _ in range(inflight.SCAN_BATCH + 5):
            client.lpush(EVENTS_QUEUE, b"{}")
        self.register(client, "popped", since=NOW - 900)
        republished = Republished()
        inflight.recover(client, sqlite_store, republished, older_than=300, now=NOW)
        assert [event_id for event_id, _ in republished] == ["popped"]

    def test_an_odd_event_id_settled_in_the_store_is_forgotten(self, client, sqlite_store):
        odd = "a\x00b" + "x" * 300
        sqlite_store.dead_letter(event_id=odd, raw_body="{}", reason="invalid", errors=[])
        self.register(client, odd, since=NOW - 900)
        counts = inflight.recover(client, sqlite_store, Republished(), older_than=300, now=NOW)
        assert counts == {"settled": 1, "republished": 0}

    def test_message_lost_after_brpop_is_recovered(self, publisher, client, sqlite_store):
        raw = body(envelope(event_id="e-kill"))
        publisher.publish(raw, "(e-kill)", "e-kill")
        lose_oldest_message(client)
        republished = Republished()
        inflight.recover(client, sqlite_store, republished, older_than=0, now=time.time() + 1)
        assert republished == [("e-kill", raw)]
