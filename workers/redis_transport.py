"""kombu's Redis transport, made to survive a Redis at ``maxmemory`` (policy ``noeviction``).

Such a Redis refuses every command that may grow memory (SET, SADD, HSET, LPUSH, scripts)
with an OOM error, but still serves reads, deletes, BRPOP and PUBLISH. Stock kombu treats the
OOM error as fatal at the first refused write (the unacked-restore mutex at poll start): the
worker exits and nothing drains until someone frees memory. Here each refused write is
either safe to skip or waits for memory, and consuming, which frees memory, goes on:

- the periodic restore of unacknowledged messages skips its pass (the next one runs it);
- a queue binding that is already in Redis, or that belongs to a fanout exchange or to a
  transient (auto-deleting or expiring) reply queue, needs no write; a missing binding of a
  durable queue is needed to route publishes, so the consumer start fails as a connection
  error and Celery retries it until Redis takes the write;
- a message fetched whose unacked bookkeeping is refused is processed all the same. It is
  not lost if the worker dies meanwhile: ingest put every webhook in the in-flight registry
  when it published it (workers/inflight.py), the hook outbox holds every hook run, and the
  sweeper republishes both. A requeue or warm shutdown puts such a message back itself.

Celery selects this transport by class path (``broker_transport`` in workers/celery_app.py).
tests/test_celery_coupling.py pins the kombu internals overridden here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

TRANSPORT = "workers.redis_transport:Transport"
# How long a consumer start waits before it tries again to write a queue binding Redis refused.
BINDING_RETRY_SECONDS = 2.0

logger = logging.getLogger(__name__)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether Redis refused a command because it is at maxmemory (a plain reply or a script's)."""
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return True
    # A write refused inside a script comes back as the script's error, quoting the OOM reply.
    return isinstance(exc, redis.exceptions.ResponseError) and "OOM command not allowed" in str(exc)


class BindingNotWritten(redis.exceptions.ConnectionError):
    """A durable queue's binding could not be written: Celery retries the consumer start."""


class QoS(kombu_redis.QoS):
    """Unacked bookkeeping that tolerates a full Redis where the registries cover the gap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Delivery tags of messages held without an unacked record (Redis refused the HSET).
        self._unrecorded: set[str] = set()

    def append(self, message: Any, delivery_tag: str) -> None:
        try:
            super().append(message, delivery_tag)
        except redis.exceptions.ResponseError as exc:
            if not is_out_of_memory(exc):
                raise
            # The message left the queue with BRPOP already, and Redis takes no write to
            # put it back: process it, as a SIGKILL between BRPOP and this HSET would leave
            # it, covered by the in-flight registry and the hook outbox.
            logger.warning(
                "Redis is at maxmemory: a message is processed without its unacked record "
                "(the in-flight registry covers it)"
            )
            virtual.QoS.append(self, message, delivery_tag)
            self._unrecorded.add(delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        self._unrecorded.discard(delivery_tag)
        try:
            super().ack(delivery_tag)
        except redis.exceptions.ResponseError as exc:
            if not is_out_of_memory(exc):
                raise
            # Redis 7 refuses every command queued in a MULTI when full, even deletes; the
            # same deletes outside one are served. Hash first: an index entry left alone by
            # a dropped connection only makes the next restore pass drop it too.
            with self.channel.conn_or_acquire() as client:
                with client.pipeline(transaction=False) as pipe:
                    pipe.hdel(self.unacked_key, delivery_tag)
                    pipe.zrem(self.unacked_index_key, delivery_tag)
                    pipe.execute()
            virtual.QoS.ack(self, delivery_tag)

    def restore_by_tag(self, tag: str, client: Any = None, leftmost: bool = False) -> None:
        if tag not in self._unrecorded:
            return super().restore_by_tag(tag, client=client, leftmost=leftmost)
        # Redis has no copy to restore from: push back the one this process holds.
        self._unrecorded.discard(tag)
        message = self._delivered.get(tag)
        if message is None:
            return None
        delivery = message.delivery_info
        try:
            with self.channel.conn_or_acquire(client) as conn:
                with conn.pipeline() as pipe:
                    self.channel._do_restore_message(
                        message._raw, delivery["exchange"], delivery["routing_key"], pipe, leftmost
                    )
                    pipe.execute()
        except redis.exceptions.RedisError as exc:
            logger.warning(
                "a message without an unacked record was not requeued (%s); "
                "the in-flight registry brings it back",
                exc.__class__.__name__,
            )
        return None

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().restore_visible(*args, **kwargs)
        except redis.exceptions.ResponseError as exc:
            if not is_out_of_memory(exc):
                raise
            # Its mutex (a SET) or a restore was refused; the messages stay in the unacked
            # hash and the next pass, a few seconds later, restores them.
            logger.warning("Redis is at maxmemory: unacked messages are restored later")


class Channel(kombu_redis.Channel):
    """Queue bindings that tolerate a full Redis when nothing depends on writing them."""

    QoS = QoS

    def queue_bind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str = "",
        arguments: Any = None,
        **kwargs: Any,
    ) -> None:
        try:
            super().queue_bind(queue, exchange, routing_key, arguments, **kwargs)
        except BindingNotWritten:
            # kombu noted the binding as declared before writing it: forget it, so that the
            # retried start writes it then.
            exchange = exchange or "amq.direct"
            self.state.binding_delete(queue, exchange, routing_key)
            meta = self.typeof(exchange).prepare_bind(queue, exchange, routing_key, arguments)
            table = self.state.exchanges.get(exchange, {}).get("table", [])
            if meta in table:
                table.remove(meta)
            raise

    def _size(self, queue: str) -> int:
        try:
            return super()._size(queue)
        except redis.exceptions.ResponseError as exc:
            if not is_out_of_memory(exc):
                raise
            # Its LLENs go in a MULTI, which a full Redis 7 refuses; alone they are served.
            with self.conn_or_acquire() as client:
                with client.pipeline(transaction=False) as pipe:
                    for priority in self.priority_steps:
                        pipe.llen(self._q_for_pri(queue, priority))
                    return sum(pipe.execute())

    def _delete(self, queue: str, exchange: str, routing_key: str, pattern: str, *args, **kwargs):
        try:
            return super()._delete(queue, exchange, routing_key, pattern, *args, **kwargs)
        except redis.exceptions.ResponseError as exc:
            if not is_out_of_memory(exc):
                raise
            # As in _size: the DELs of a reply queue (mingle's, at start) went in a MULTI.
            with self.conn_or_acquire(client=kwargs.get("client")) as client:
                with client.pipeline(transaction=False) as pipe:
                    for priority in self.priority_steps:
                        pipe.delete(self._q_for_pri(queue, priority))
                    pipe.execute()
            return None

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        try:
            super()._queue_bind(exchange, routing_key, pattern, queue)
        except redis.exceptions.ResponseError as exc:
            if not is_out_of_memory(exc):
                raise
            if self._binding_needs_no_write(exchange, routing_key, pattern, queue):
                return
            logger.warning(
                "Redis is at maxmemory: the binding of queue %s cannot be written yet", queue
            )
            # Celery restarts the consumer at once: a pause keeps the retries (and their log
            # lines) to one every few seconds.
            time.sleep(BINDING_RETRY_SECONDS)
            raise BindingNotWritten(f"Redis is at maxmemory; queue {queue} is not bound") from exc

    def _binding_needs_no_write(
        self, exchange: str, routing_key: str, pattern: str, queue: str
    ) -> bool:
        # Redis delivers fanout messages by PUBLISH, never through the binding table.
        if self.typeof(exchange).type == "fanout":
            return True
        # A reply queue of this process only (mingle, remote control) lives with it.
        if queue in self.auto_delete_queues or queue in self._expires:
            return True
        member = self.sep.join([routing_key or "", pattern or "", queue or ""])
        with self.conn_or_acquire() as client:
            return bool(client.sismember(self.keyprefix_queue % (exchange,), member))


class Transport(kombu_redis.Transport):
    Channel = Channel
