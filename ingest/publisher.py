"""Publish a webhook task straight to Redis: the bytes Celery would send, in one round trip.

``send_task`` on kombu's Redis transport builds a new redis-py client per command, looks the
exchange up with SMEMBERS and publishes the task-sent event separately: about a millisecond
and three round trips per webhook. This publisher keeps one client per process and sends
the same message (Celery protocol 2 inside kombu's Redis envelope) plus the same task-sent
event in one pipeline. LPUSH returns once Redis holds the message, so a 202 still means
the broker has it. Only the Redis broker takes this path; the embedded one uses send_task.
"""

from __future__ import annotations

import base64
import os
import socket
import time
import uuid

import orjson
import redis
from celery import Celery
from celery.utils.time import utcoffset
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.names import EVENT_ID_HEADER
from core.names import INFLIGHT_BODIES
from core.names import INFLIGHT_SINCE
from core.names import pack_inflight_body

# The worker decodes task and event bodies the way kombu encoded them (kombu's default).
BODY_ENCODING = "base64"
# Celery's "callbacks/errbacks/chain/chord" part of a protocol-2 body: none for webhooks.
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
PERSISTENT = 2  # delivery_mode: the message outlives a broker restart (AOF/RDB permitting)
TRANSIENT = 1  # delivery_mode of events, as Celery sends them
# A pooled connection that a Redis restart closed fails once; the retry gets a new one.
RECONNECT_RETRIES = 1


class RedisPublisher:
    """Sends ``task_name(body)`` to the queue Celery routes it to, over one long-lived client."""

    def __init__(
        self, celery_app: Celery, redis_url: str, task_name: str, *, timeout: float
    ) -> None:
        self.task_name = task_name
        route = celery_app.amqp.router.route({}, task_name, (), {})
        self.queue = route["queue"].name
        self.send_sent_event = bool(celery_app.conf.task_send_sent_event)
        self.clock = celery_app.clock
        self.hostname = f"gen{os.getpid()}@{socket.gethostname()}"  # Celery's anonymous origin
        self.reply_to = celery_app.thread_oid
        # The socket timeouts bound each attempt; ``publish`` retries once, without backoff,
        # to cover a pooled connection that a Redis restart closed: about twice ``timeout``.
        self.client = redis.Redis.from_url(
            redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        # kombu's Redis fanout channel for the celeryev exchange (fanout_prefix is on).
        self.event_channel = f"/{db}.celeryev/task.sent"
        self._headers = _static_headers(task_name, self.hostname)
        self._properties = {
            "reply_to": self.reply_to,
            "delivery_mode": PERSISTENT,
            "delivery_info": {"exchange": "", "routing_key": self.queue},
            "priority": 0,
            "body_encoding": BODY_ENCODING,
        }

    def publish(self, body: str, argsrepr: str, event_id: str | None = None) -> str:
        """Put one task message in the queue (and announce it to Flower); return its task id.

        With ``event_id`` the body is also registered as in flight in the same MULTI, so a
        message a worker loses between BRPOP and its unacked bookkeeping is found again.
        """
        task_id = str(uuid.uuid4())
        commands: list[tuple[object, ...]] = [
            (b"LPUSH", self.queue, self.task_message(task_id, body, argsrepr, event_id))
        ]
        if event_id is not None:
            commands.append((b"HSET", INFLIGHT_BODIES, event_id, pack_inflight_body(body)))
            commands.append((b"ZADD", INFLIGHT_SINCE, b"NX", repr(time.time()), event_id))
        if self.send_sent_event:
            commands.append((b"PUBLISH", self.event_channel, self._sent_event(task_id, argsrepr)))
        replies = self._execute(commands, transaction=event_id is not None)
        failed = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if failed is not None:
            raise failed
        queued = replies[0]
        if not isinstance(queued, int) or queued < 1:
            raise redis.RedisError(f"LPUSH answered {queued!r}")
        return task_id

    def ping(self) -> None:
        """Raise when Redis cannot be reached."""
        self.client.ping()

    def close(self) -> None:
        """Drop the pooled connections."""
        self.client.close()

    def task_message(
        self, task_id: str, body: str, argsrepr: str, event_id: str | None = None
    ) -> bytes:
        """The serialised message (kombu's Redis envelope around Celery's protocol 2)."""
        headers = {**self._headers, "id": task_id, "root_id": task_id, "argsrepr": argsrepr}
        if event_id is not None:
            headers[EVENT_ID_HEADER] = event_id
        payload = orjson.dumps([[body], {}, EMBED])
        return orjson.dumps(
            {
                "body": base64.b64encode(payload).decode("ascii"),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": headers,
                "properties": {
                    **self._properties,
                    "correlation_id": task_id,
                    "delivery_tag": str(uuid.uuid4()),
                },
            }
        )

    def _sent_event(self, task_id: str, argsrepr: str) -> bytes:
        event = {
            "hostname": self.hostname,
            "utcoffset": utcoffset(),
            "pid": os.getpid(),
            "clock": self.clock.forward(),
            "uuid": task_id,
            "root_id": task_id,
            "parent_id": None,
            "name": self.task_name,
            "args": argsrepr,
            "kwargs": "{}",
            "retries": 0,
            "eta": None,
            "expires": None,
            "queue": self.queue,
            "exchange": "",
            "routing_key": self.queue,
            "timestamp": time.time(),
            "type": "task-sent",
        }
        return orjson.dumps(
            {
                "body": base64.b64encode(orjson.dumps(event)).decode("ascii"),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {"hostname": self.hostname},
                "properties": {
                    "delivery_mode": TRANSIENT,
                    "delivery_info": {"exchange": "celeryev", "routing_key": "task.sent"},
                    "priority": 0,
                    "body_encoding": BODY_ENCODING,
                    "delivery_tag": str(uuid.uuid4()),
                },
            }
        )

    def _execute(self, commands: list[tuple], *, transaction: bool) -> list:
        """Run ``commands`` (in one MULTI/EXEC when ``transaction``) in one write and one read.

        redis-py's pipeline writes a large value as a separate send and parses a reply per
        queued command through several layers; both cost more than the message itself.
        """
        if transaction:
            replies = self._round_trip([(b"MULTI",), *commands, (b"EXEC",)])
            # MULTI's OK and one QUEUED per command precede EXEC's list of results.
            return replies[-1]
        return self._round_trip(commands)

    def _round_trip(self, commands: list[tuple]) -> list:
        """Send ``commands`` in one write and read their replies; once more if it broke."""
        pool = self.client.connection_pool
        for attempt in range(1 + RECONNECT_RETRIES):
            connection = pool.get_connection()
            try:
                # redis-py packs the protocol; joined, the chunks go out in one write.
                connection.send_packed_command([b"".join(connection.pack_commands(commands))])
                return [connection.read_response() for _ in commands]
            except (redis.ConnectionError, redis.TimeoutError):
                connection.disconnect()
                if attempt == RECONNECT_RETRIES:
                    raise
            except BaseException:
                connection.disconnect()  # replies may be left unread: never reuse it
                raise
            finally:
                pool.release(connection)
        raise AssertionError("unreachable")


def _static_headers(task_name: str, hostname: str) -> dict[str, object]:
    """The protocol-2 headers that are the same for every webhook task this process sends."""
    return {
        "lang": "py",
        "task": task_name,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "parent_id": None,
        "kwargsrepr": "{}",
        "origin": hostname,
        "ignore_result": None,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
