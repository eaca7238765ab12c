"""The Redis transport on a full Redis (maxmemory, noeviction): what stock kombu does, and ours.

Each test runs against a redis-server of its own, filled until it refuses writes with OOM
(tests/faults/harness.py); the queue and its binding are made before, as a worker that ran
before leaves them, unless the test is about a queue never bound.
"""

from __future__ import annotations

import logging

import pytest
import redis
from kombu import Connection
from kombu import Exchange
from kombu import Queue
from kombu.transport import redis as kombu_redis

from core.names import INFLIGHT_BODIES
from core.names import INFLIGHT_SINCE
from handlers.hooks import HookRegistry
from tests.builders import body
from tests.builders import envelope
from tests.faults.harness import PrivateRedis
from workers import inflight
from workers import redis_transport
from workers.processing import process

pytestmark = pytest.mark.slow

# A direct exchange of its own, as Celery declares for each queue: consuming binds it.
QUEUE = Queue("oom-test", Exchange("oom-test"), routing_key="oom-test")


@pytest.fixture
def server(private_redis, monkeypatch):
    monkeypatch.setattr(redis_transport, "BINDING_RETRY_SECONDS", 0)
    return private_redis


@pytest.fixture
def client(server):
    client = server.client()
    yield client
    client.close()


def connect(server: PrivateRedis, transport: str = redis_transport.TRANSPORT) -> Connection:
    return Connection(server.url, transport=transport, transport_options={"visibility_timeout": 1})


def publish(server: PrivateRedis, *bodies: object) -> None:
    """Messages queued (and the queue bound) while Redis still had memory."""
    with connect(server) as connection:
        producer = connection.Producer()
        for payload in bodies:
            producer.publish(payload, routing_key=QUEUE.routing_key, declare=[QUEUE])


def consume(connection: Connection, received: list) -> None:
    consumer = connection.Consumer(
        [QUEUE], callbacks=[lambda body, message: received.append(message)], accept=["json"]
    )
    consumer.consume()
    connection.drain_events(timeout=10)


class TestStockKombuOnAFullRedis:
    """The defects worked around; each test fails once kombu no longer has its defect."""

    def test_the_unacked_restore_at_poll_start_raises_oom(self, server):
        with connect(server, transport="redis") as connection:
            channel = connection.default_channel
            server.fill_to_maxmemory()
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                channel.qos.restore_visible(num=10, interval=1)

    def test_a_fetched_message_whose_unacked_record_is_refused_raises_and_is_gone(
        self, server, client
    ):
        publish(server, {"n": 1})
        with connect(server, transport="redis") as connection:
            connection.Consumer([QUEUE], accept=["json"]).consume()
            server.fill_to_maxmemory()
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                connection.drain_events(timeout=10)
        # BRPOP took it and nothing recorded it: only the in-flight registry knows of it.
        assert client.llen(QUEUE.name) == 0 and client.hlen("unacked") == 0

    def test_a_queue_size_is_refused(self, server):
        publish(server, {"n": 1})
        server.fill_to_maxmemory()
        with connect(server, transport="redis") as connection:
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                connection.default_channel._size(QUEUE.name)


class TestOurTransportOnAFullRedis:
    def test_the_unacked_restore_skips_its_pass(self, server, caplog):
        with connect(server) as connection:
            channel = connection.default_channel
            server.fill_to_maxmemory()
            with caplog.at_level(logging.WARNING, logger=redis_transport.__name__):
                channel.qos.restore_visible(num=10, interval=1)
        assert "restored later" in caplog.text

    def test_a_message_fetched_while_full_is_delivered_and_its_ack_leaves_nothing(
        self, server, client
    ):
        publish(server, {"n": 1})
        server.fill_to_maxmemory()
        received: list = []
        with connect(server) as connection:
            consume(connection, received)
            assert [m.payload for m in received] == [{"n": 1}]
            assert client.hlen("unacked") == 0  # refused: the registries cover it
            received[0].ack()
            assert received[0].channel.qos._unrecorded == set()
        assert client.llen(QUEUE.name) == 0 and client.zcard("unacked_index") == 0

    def test_a_requeued_message_without_a_record_goes_back_to_the_queue(self, server, client):
        publish(server, {"n": 1})
        limit = server.fill_to_maxmemory()
        received: list = []
        with connect(server) as connection:
            consume(connection, received)
            server.set_maxmemory(0)  # memory back before the requeue (a worker lost)
            received[0].requeue()
            assert limit > 0 and client.llen(QUEUE.name) == 1
            connection.drain_events(timeout=10)  # the same consumer gets it again
            assert [m.payload for m in received[1:]] == [{"n": 1}]

    def test_a_requeue_refused_too_is_logged_for_the_registry(self, server, client, caplog):
        publish(server, {"n": 1})
        server.fill_to_maxmemory()
        received: list = []
        with connect(server) as connection:
            consume(connection, received)
            with caplog.at_level(logging.WARNING, logger=redis_transport.__name__):
                received[0].requeue()
            assert "in-flight registry brings it back" in caplog.text
            assert received[0].channel.qos._unrecorded == set()

    def test_a_message_recorded_before_redis_filled_is_acked_while_full(self, server, client):
        publish(server, {"n": 1})
        received: list = []
        with connect(server) as connection:
            consume(connection, received)
            assert client.hlen("unacked") == 1
            server.fill_to_maxmemory()
            received[0].ack()  # its MULTI is refused; the plain deletes are not
        assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0

    def test_a_queue_never_bound_fails_as_a_connection_error_and_binds_once_memory_is_back(
        self, server, client
    ):
        server.fill_to_maxmemory()
        with connect(server) as connection:
            with pytest.raises(connection.connection_errors) as refused:
                connection.Consumer([QUEUE], accept=["json"]).consume()
            assert isinstance(refused.value, redis_transport.BindingNotWritten)
            server.set_maxmemory(0)
            connection.Consumer([QUEUE], accept=["json"]).consume()  # the retried start
        assert client.scard(f"_kombu.binding.{QUEUE.exchange.name}") == 1

    def test_queue_sizes_and_reply_queue_deletes_are_served_while_full(self, server, client):
        publish(server, {"n": 1}, {"n": 2})
        server.fill_to_maxmemory()
        with connect(server) as connection:
            channel = connection.default_channel
            assert channel._size(QUEUE.name) == 2
            # What deleting a reply queue runs (mingle's, at every start).
            channel._delete(QUEUE.name, QUEUE.exchange.name, QUEUE.routing_key, None)
        assert client.llen(QUEUE.name) == 0

    def test_other_redis_errors_are_not_swallowed(self):
        assert redis_transport.is_out_of_memory(redis.exceptions.OutOfMemoryError("OOM ..."))
        script = redis.exceptions.ResponseError(
            "OOM command not allowed when used memory > 'maxmemory'. script: abc"
        )
        assert redis_transport.is_out_of_memory(script)
        assert not redis_transport.is_out_of_memory(redis.exceptions.ResponseError("WRONGTYPE"))
        assert not redis_transport.is_out_of_memory(redis.exceptions.ConnectionError("OOM"))


def test_the_sweeper_settles_the_in_flight_registry_of_a_full_redis(server, client, sqlite_store):
    raw = body(envelope(event_id="done", appointment_id="a-done"))
    client.hset(INFLIGHT_BODIES, "done", raw)
    client.zadd(INFLIGHT_SINCE, {"done": 1.0})
    process(raw, sqlite_store, HookRegistry())
    server.fill_to_maxmemory()
    counts = inflight.recover(client, sqlite_store, lambda *_: None, older_than=300, now=1000.0)
    assert counts == {"settled": 1, "republished": 0}
    assert client.hget(INFLIGHT_BODIES, "done") is None  # freed memory, at maxmemory


def test_our_transport_is_kombus_redis_transport_with_our_channel():
    assert issubclass(redis_transport.Transport, kombu_redis.Transport)
    assert redis_transport.Transport.Channel.QoS is redis_transport.QoS
    assert redis_transport.Transport.driver_type == "redis"  # Celery's Redis-only paths
