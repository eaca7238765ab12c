"""The Celery and kombu internals engagehook relies on, pinned for the installed versions.

``ingest/publisher.py`` writes Celery's protocol-2 message, kombu's Redis envelope and the
task-sent event by hand; ``workers/inflight.py`` and ``ingest/metrics.py`` read kombu's Redis
keys; ``workers/embedded_broker.py`` subclasses kombu's SQLAlchemy transport and runs SQL on
its tables. None of that is public API, so an upgrade of celery or kombu that changes any of it
must fail here, in CI, rather than in production. Written against celery 5.7.0, kombu 5.7.0,
redis 8.1.0 and billiard 4.3.2.
"""

from __future__ import annotations

import base64
import datetime
import inspect
import json
import time
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
import redis
from celery import Celery
from kombu import Connection
from kombu.transport import redis as kombu_redis
from kombu.transport import sqlalchemy as kombu_sqla
from kombu.transport import virtual
from kombu.transport.sqlalchemy import models as kombu_models

from core.config import Settings
from core.names import EVENT_ID_HEADER
from core.names import EVENTS_QUEUE
from core.names import INFLIGHT_SINCE
from core.names import PROCESS_WEBHOOK
from ingest.publisher import EMBED
from ingest.publisher import RedisPublisher
from tests.builders import body
from tests.builders import load_payload
from workers import broker_reads
from workers import embedded_broker
from workers import inflight
from workers.celery_app import celery_config

ARGSREPR = "(event_id='e-1', eventType='CREATE', appointment_id='a-1')"
# What differs between any two messages, whoever builds them: fresh ids, clocks and times.
VOLATILE_HEADERS = ("id", "root_id")
VOLATILE_PROPERTIES = ("correlation_id", "delivery_tag")
VOLATILE_EVENT_FIELDS = ("uuid", "root_id", "clock", "timestamp")
# send_task also copies its argsrepr/kwargsrepr options into the message properties; the
# worker builds its request (and Flower's events) from the headers, so the publisher leaves
# them out. Listed here so that any other difference fails.
SEND_TASK_ONLY_PROPERTIES = {"argsrepr": ARGSREPR, "kwargsrepr": "{}"}


def celery_for(redis_url: str) -> Celery:
    """A Celery app with engagehook's settings on ``redis_url`` (no tasks of its own)."""
    app = Celery("test-coupling")
    app.conf.update(celery_config(Settings.from_env({"REDIS_URL": redis_url})))
    return app


def opened(raw: bytes) -> dict[str, Any]:
    """A kombu Redis envelope with its base64 body decoded, and the volatile values dropped."""
    envelope = json.loads(raw)
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    for key in VOLATILE_HEADERS:
        envelope["headers"].pop(key)
    for key in VOLATILE_PROPERTIES:
        envelope["properties"].pop(key)
    return envelope


def opened_event(raw: bytes) -> dict[str, Any]:
    """A task-sent event envelope, opened like a task message."""
    envelope = json.loads(raw)
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    envelope["properties"].pop("delivery_tag")
    for key in VOLATILE_EVENT_FIELDS:
        envelope["body"].pop(key)
    return envelope


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def app(redis_url):
    app = celery_for(redis_url)
    yield app
    app.close()


def sent_events(client: redis.Redis, db: int):
    """A subscription to every task event kombu publishes for Redis DB ``db``."""
    subscription = client.pubsub()
    subscription.psubscribe(f"/{db}.celeryev/*")
    assert subscription.get_message(timeout=2)["type"] == "psubscribe"
    return subscription


def next_event(subscription) -> dict[str, Any]:
    """The next published event message (channel and data), waiting up to 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = subscription.get_message(timeout=1)
        if message is not None and message["type"] == "pmessage":
            return message
    raise AssertionError("no task event was published")


@pytest.mark.real
class TestPublisherWritesWhatSendTaskWrites:
    """The hand-built message, byte for byte where it matters, against Celery's own."""

    def test_the_task_message_equals_send_tasks_but_for_ids(self, app, redis_url, client):
        raw = body(load_payload("CREATE"))
        app.send_task(PROCESS_WEBHOOK, args=[raw], argsrepr=ARGSREPR, kwargsrepr="{}")
        # Celery's message is the only one in the queue's list: priority 0 is the bare key.
        assert client.llen(EVENTS_QUEUE) == 1
        theirs = opened(client.rpop(EVENTS_QUEUE))
        RedisPublisher(app, redis_url, PROCESS_WEBHOOK, timeout=1).publish(raw, ARGSREPR)
        ours = opened(client.rpop(EVENTS_QUEUE))
        for key, value in SEND_TASK_ONLY_PROPERTIES.items():
            assert theirs["properties"].pop(key) == value
        assert ours == theirs
        # The comparison above is not vacuous: these are the values the worker reads.
        assert theirs["headers"]["task"] == PROCESS_WEBHOOK
        assert theirs["body"] == [[raw], {}, EMBED]
        assert theirs["properties"]["body_encoding"] == "base64"

    def test_the_ids_are_where_send_task_puts_them(self, app, redis_url, client):
        app.send_task(PROCESS_WEBHOOK, args=["{}"], argsrepr=ARGSREPR, kwargsrepr="{}")
        theirs = json.loads(client.rpop(EVENTS_QUEUE))
        task_id = RedisPublisher(app, redis_url, PROCESS_WEBHOOK, timeout=1).publish("{}", ARGSREPR)
        ours = json.loads(client.rpop(EVENTS_QUEUE))
        for envelope, expected in ((theirs, theirs["headers"]["id"]), (ours, task_id)):
            assert envelope["headers"]["id"] == envelope["headers"]["root_id"] == expected
            assert envelope["properties"]["correlation_id"] == expected
            assert isinstance(envelope["properties"]["delivery_tag"], str)

    def test_the_event_id_header_is_the_only_addition(self, app, redis_url, client):
        publisher = RedisPublisher(app, redis_url, PROCESS_WEBHOOK, timeout=1)
        publisher.publish("{}", ARGSREPR)
        publisher.publish("{}", ARGSREPR, "e-1")
        plain, tagged = (opened(client.rpop(EVENTS_QUEUE)) for _ in range(2))
        assert tagged["headers"].pop(EVENT_ID_HEADER) == "e-1"
        assert tagged == plain

    def test_the_task_sent_event_equals_celerys_but_for_ids_and_times(self, app, redis_url, client):
        db = client.connection_pool.connection_kwargs["db"]
        publisher = RedisPublisher(app, redis_url, PROCESS_WEBHOOK, timeout=1)
        subscription = sent_events(client, db)
        try:
            app.send_task(PROCESS_WEBHOOK, args=["{}"], argsrepr=ARGSREPR, kwargsrepr="{}")
            theirs = next_event(subscription)
            publisher.publish("{}", ARGSREPR)
            ours = next_event(subscription)
        finally:
            subscription.close()
        assert ours["channel"] == theirs["channel"] == publisher.event_channel.encode()
        assert opened_event(ours["data"]) == opened_event(theirs["data"])
        assert opened_event(theirs["data"])["body"]["type"] == "task-sent"

    def test_the_queue_is_a_list_pushed_at_the_head(self, app, client):
        # inflight._oldest_queued_since reads the tail as the oldest message: LPUSH + (B)RPOP.
        for n in range(2):
            app.send_task(PROCESS_WEBHOOK, args=[str(n)], argsrepr=ARGSREPR, kwargsrepr="{}")
        assert client.type(EVENTS_QUEUE) == b"list"
        oldest = json.loads(client.lindex(EVENTS_QUEUE, -1))
        assert json.loads(base64.b64decode(oldest["body"]))[0] == ["0"]


def parameters(function: Any) -> list[str]:
    """The parameter names of ``function``, as the code that overrides or calls it relies on."""
    return list(inspect.signature(function).parameters)


class TestKombuRedisInternals:
    """Names of kombu's Redis transport that the publisher, in-flight registry and metrics use."""

    def test_unacked_bookkeeping_keys_are_the_ones_metrics_reads(self):
        assert kombu_redis.Channel.unacked_key == "unacked"
        assert kombu_redis.Channel.unacked_index_key == "unacked_index"

    def test_priority_queues_are_named_as_metrics_counts_them(self):
        # The key helpers read class attributes only: no connection needed to call them.
        channel = object.__new__(kombu_redis.Channel)
        assert list(channel.priority_steps) == [0, *broker_reads.PRIORITY_STEPS]
        assert channel._q_for_pri(EVENTS_QUEUE, 0) == EVENTS_QUEUE
        assert [channel._q_for_pri(EVENTS_QUEUE, step) for step in (3, 6, 9)] == [
            f"{EVENTS_QUEUE}{broker_reads.PRIORITY_SEPARATOR}{step}" for step in (3, 6, 9)
        ]

    def test_fanout_channels_carry_the_db_prefix_the_publisher_builds(self):
        assert kombu_redis.Channel.fanout_prefix is True
        assert kombu_redis.Channel.keyprefix_fanout == "/{db}."

    def test_messages_are_pushed_left_and_fetched_right(self):
        put = inspect.getsource(kombu_redis.Channel._put)
        get = inspect.getsource(kombu_redis.Channel._get)
        assert "lpush(" in put and "rpop(" in get
        assert "'BRPOP'" in inspect.getsource(kombu_redis.Channel._brpop_start)

    def test_a_fetched_message_is_recorded_unacked_only_after_the_fetch(self):
        # The gap workers/inflight.py covers: BRPOP takes the message and hands it on; only
        # the QoS, later, records it as unacked. A kombu that closes the gap (e.g. BLMOVE into
        # the unacked hash) fails here, and the registry may then be retired.
        read = inspect.getsource(kombu_redis.Channel._brpop_read)
        assert "'BRPOP'" in read and "_deliver(" in read and "unacked" not in read
        assert ".hset(self.unacked_key" in inspect.getsource(kombu_redis.QoS.append)

    def test_the_in_flight_registry_reads_the_header_the_publisher_writes(self):
        raw = json.dumps({"headers": {EVENT_ID_HEADER: "e-1"}}).encode()
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        client.lpush(EVENTS_QUEUE, raw)
        client.zadd(INFLIGHT_SINCE, {"e-1": 12.5})
        assert inflight._oldest_queued_since(client) == 12.5


class TestKombuSqlalchemyInternals:
    """What workers/embedded_broker.py overrides, calls and queries in kombu's SQL transport."""

    OVERRIDDEN = {
        # name: the parameters kombu's method takes, which ours must keep accepting
        "_put": ["self", "queue", "payload", "kwargs"],
        "_get": ["self", "queue"],
        "_size": ["self", "queue"],
        "_purge": ["self", "queue"],
        "_open": ["self"],
        "_engine_from_config": ["self"],
        "_restore": ["self", "message"],
        "_restore_at_beginning": ["self", "message"],
    }

    @pytest.mark.parametrize("name", sorted(OVERRIDDEN))
    def test_overridden_channel_methods_keep_their_signature(self, name):
        assert parameters(getattr(kombu_sqla.Channel, name)) == self.OVERRIDDEN[name]
        assert parameters(getattr(embedded_broker.Channel, name)) == self.OVERRIDDEN[name]

    def test_channel_helpers_the_broker_calls_exist(self):
        channel = kombu_sqla.Channel
        assert parameters(channel._get_or_create) == ["self", "queue"]
        assert isinstance(channel.__dict__["session"], property)
        assert isinstance(channel._engines, dict)
        assert "message_cls" in channel.__dict__ and "queue_cls" in channel.__dict__
        assert hasattr(kombu_sqla._MUTEX, "acquire")
        assert kombu_sqla.metadata is kombu_models.metadata
        assert kombu_sqla.Transport.Channel is kombu_sqla.Channel

    def test_qos_internals_the_acks_use_exist(self):
        assert parameters(virtual.QoS.ack) == ["self", "delivery_tag"]
        assert parameters(virtual.QoS.reject) == ["self", "delivery_tag", "requeue"]
        # do_restore off: the QoS's exit finalizer must not try to restore on a stand-in.
        qos = virtual.QoS(channel=SimpleNamespace(do_restore=False))
        assert isinstance(qos._delivered, dict)
        assert callable(qos._quick_ack)
        assert issubclass(virtual.Empty, Exception)

    def test_the_tables_have_the_columns_the_broker_and_metrics_query(self, tmp_path):
        url = f"sqlite:///{tmp_path / 'broker.sqlite3'}"
        connection = Connection(url, transport=embedded_broker.TRANSPORT)
        try:
            connection.SimpleQueue("coupling").put({"n": 1})
        finally:
            connection.release()
        tables = kombu_models.metadata.tables
        assert {"id", "name"} <= set(tables["kombu_queue"].c.keys())
        assert {"id", "queue_id", "visible", "timestamp", "payload"} <= set(
            tables["kombu_message"].c.keys()
        )
        assert embedded_broker.pending_messages(url) == 1

    def test_a_fetch_stamps_the_row_with_naive_local_time(self, tmp_path):
        # restore_orphans compares kombu's timestamp with datetime.now(): both must be naive.
        url = f"sqlite:///{tmp_path / 'broker.sqlite3'}"
        connection = Connection(url, transport=embedded_broker.TRANSPORT)
        try:
            queue = connection.SimpleQueue("coupling")
            queue.put({"n": 1})
            before = datetime.datetime.now().replace(microsecond=0)
            queue.get(timeout=2)
            stamped = _row_timestamp(url)
        finally:
            connection.release()
        assert stamped.tzinfo is None
        assert before <= stamped <= datetime.datetime.now()
        timestamp = kombu_models.metadata.tables["kombu_message"].c.timestamp
        assert timestamp.onupdate.arg.__name__ == "now"


def _row_timestamp(url: str) -> datetime.datetime:
    """The kombu_message timestamp of the single row in the broker at ``url``."""
    from sqlalchemy import create_engine
    from sqlalchemy import text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(text("SELECT timestamp FROM kombu_message")).scalar_one()
    finally:
        engine.dispose()
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
