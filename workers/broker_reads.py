"""How much work waits in the broker, read without disturbing it (for /metrics).

The queue layouts are kombu's (its Redis lists and hash, its SQLAlchemy tables), so reading
them belongs with the workers that own the Celery and kombu coupling, not with ingest.
"""

from __future__ import annotations

from typing import Any

from core.names import EVENTS_QUEUE
from core.names import HOOKS_QUEUE

QUEUES = (EVENTS_QUEUE, HOOKS_QUEUE)
# kombu's Redis transport keeps one list per priority step: "<queue>", "<queue>\x06\x163", ...
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)


class BrokerReader:
    """Queue depths and the oldest pending webhook of one broker, each read bounded in time."""

    def __init__(
        self, *, embedded: bool, broker_url: str, redis_url: str | None, timeout: float
    ) -> None:
        self.embedded = embedded
        self.broker_url = broker_url
        self.redis_url = redis_url
        self.timeout = timeout
        self._redis: Any = None  # redis.Redis, imported on first use

    def queue_depths(self) -> tuple[dict[str, int], int]:
        """Messages waiting per queue, and messages held unacknowledged."""
        return self._embedded_depths() if self.embedded else self._redis_depths()

    def oldest_since(self) -> float | None:
        """Epoch seconds of the oldest webhook published and not yet processed, if any."""
        if self.embedded:
            from workers.embedded_broker import oldest_message_at

            oldest = oldest_message_at(self.broker_url, timeout=self.timeout)
            return oldest.timestamp() if oldest is not None else None  # naive local time
        from workers.inflight import oldest_since

        return oldest_since(self._client())

    def _client(self) -> Any:
        if self._redis is None:
            import redis

            assert self.redis_url is not None  # not embedded: Redis is configured
            self._redis = redis.Redis.from_url(
                self.redis_url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        return self._redis

    def _redis_depths(self) -> tuple[dict[str, int], int]:
        pipe = self._client().pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(queue)
            for step in PRIORITY_STEPS:
                pipe.llen(f"{queue}{PRIORITY_SEPARATOR}{step}")
        pipe.hlen("unacked")  # kombu's hash of delivered, unacknowledged messages
        results = pipe.execute()
        per_queue = 1 + len(PRIORITY_STEPS)
        waiting = {
            queue: sum(results[i * per_queue : (i + 1) * per_queue])
            for i, queue in enumerate(QUEUES)
        }
        return waiting, int(results[-1])

    def _embedded_depths(self) -> tuple[dict[str, int], int]:
        from workers.embedded_broker import queue_depths

        return queue_depths(self.broker_url, timeout=self.timeout)
