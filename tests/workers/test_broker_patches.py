"""A late ack on a channel of a connection Celery dropped: kombu's defect and our fix, real Redis.

The state is the one Celery's consumer leaves after a Redis restart: the consumer channel was
in BRPOP, the connection was collected and closed (kombu sets the transport's client to None,
and the channel's close stops half-way on the dead socket), Redis came back, and a task that
finished meanwhile acks its message on that old channel, which has no redis-py pool yet.
"""

from __future__ import annotations

import logging

import pytest
import redis
from kombu import Connection
from kombu import Queue
from kombu.common import ignore_errors
from kombu.transport import redis as kombu_redis

from tests.faults.harness import PrivateRedis
from workers import broker_patches

pytestmark = pytest.mark.slow


@pytest.fixture
def server(private_redis):
    return private_redis


def _message_of_a_dropped_connection(server: PrivateRedis, name: str):
    queue = Queue(name, routing_key=name)
    with Connection(server.url) as publisher:
        publisher.Producer().publish({"n": 1}, routing_key=name, declare=[queue])
    connection = Connection(server.url)
    received = []
    consumer = connection.Consumer(
        [queue], callbacks=[lambda body, message: received.append(message)], accept=["json"]
    )
    consumer.consume()
    connection.drain_events(timeout=10)
    message = received[0]
    message.channel._brpop_start()  # waiting for the next message when Redis goes away
    server.kill()
    # What celery.worker.consumer.Consumer.on_connection_error_after_connected does.
    ignore_errors(connection, lambda: connection.collect(socket_timeout=5))
    ignore_errors(connection, connection.close)
    server.start()  # same append-only file: the unacked message is still there
    message.channel._disconnect_pools()  # a channel that has not built its sync pool yet
    return message, connection.connection_errors


def _unacked(server: PrivateRedis) -> int:
    return redis.Redis.from_url(server.url).hlen("unacked")


def test_unpatched_kombu_ends_the_event_loop_with_attribute_error(server, monkeypatch):
    # Fails once kombu no longer has the defect: then workers/broker_patches.py can go.
    original = getattr(kombu_redis.Channel._connparams, "__wrapped__", None)
    if original is not None:
        monkeypatch.setattr(kombu_redis.Channel, "_connparams", original)
    message, errors = _message_of_a_dropped_connection(server, "patch-unpatched")
    assert message.channel.connection.client is None
    with pytest.raises(AttributeError, match="hostname"):
        message.ack_log_error(logging.getLogger("test"), errors)


def test_patched_late_ack_fails_as_a_connection_error_and_the_message_stays(server, caplog):
    broker_patches.install()
    broker_patches.install()  # idempotent: one wrapper, not two
    assert not hasattr(kombu_redis.Channel._connparams.__wrapped__, "__wrapped__")
    message, errors = _message_of_a_dropped_connection(server, "patch-patched")
    with caplog.at_level(logging.CRITICAL):
        message.ack_log_error(logging.getLogger("test"), errors)  # logged, not raised
    assert "Couldn't ack" in caplog.text
    # Not acknowledged: Redis keeps it and delivers it again after the visibility timeout.
    assert _unacked(server) == 1
