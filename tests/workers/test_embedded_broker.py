"""The embedded SQLite broker: acked messages disappear, held ones come back."""

from __future__ import annotations

import pytest
from kombu import Connection

from workers.celery_app import EMBEDDED_TRANSPORT
from workers.embedded_broker import pending_messages
from workers.embedded_broker import restore_orphans


@pytest.fixture
def broker_url(tmp_path):
    return f"sqlite:///{tmp_path / 'broker.sqlite3'}"


@pytest.fixture
def queue(broker_url):
    connection = Connection(broker_url, transport=EMBEDDED_TRANSPORT)
    simple = connection.SimpleQueue("tests")
    yield simple
    simple.close()
    connection.release()


class TestEmbeddedBroker:
    def test_acked_message_is_deleted(self, queue, broker_url):
        queue.put({"n": 1})
        message = queue.get(timeout=2)
        assert pending_messages(broker_url) == 1
        message.ack()
        assert pending_messages(broker_url) == 0

    def test_message_held_by_a_dead_consumer_is_delivered_again(self, queue, broker_url):
        queue.put({"n": 2})
        queue.get(timeout=2)  # fetched, never acked: its consumer "died"
        assert restore_orphans(broker_url, held_longer_than=0) == 1
        assert queue.get(timeout=2).payload == {"n": 2}

    def test_recently_fetched_message_is_left_alone(self, queue, broker_url):
        queue.put({"n": 3})
        queue.get(timeout=2)
        assert restore_orphans(broker_url, held_longer_than=300) == 0

    def test_requeued_message_comes_back_once(self, queue, broker_url):
        queue.put({"n": 4})
        queue.get(timeout=2).requeue()
        again = queue.get(timeout=2)
        assert again.payload == {"n": 4}
        again.ack()
        assert pending_messages(broker_url) == 0

    def test_order_of_publication_is_kept(self, queue):
        for n in range(5):
            queue.put({"n": n})
        received = []
        for _ in range(5):
            message = queue.get(timeout=2)
            received.append(message.payload["n"])
            message.ack()
        assert received == [0, 1, 2, 3, 4]
