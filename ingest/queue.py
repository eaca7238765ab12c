"""Hand the raw body to the broker, bounded in time, or to the local spool while it is down.

Ingest knows nothing else of Celery: it publishes ``workers.process_webhook`` by name.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol

from celery import Celery
from flask import Flask
from flask import current_app
from kombu import Connection
from kombu.pools import ProducerPool
from kombu.pools import producers

from core.names import BUSY_TIMEOUT_OPTION
from core.names import INGEST_PUBLISH_TIMEOUT_SECONDS
from core.names import PROCESS_WEBHOOK
from core.names import RUN_HOOK
from ingest.publisher import RedisPublisher
from ingest.spool import Spool
from ingest.spool import SpoolFull
from workers.celery_app import settings_of

logger = logging.getLogger(__name__)

EXTENSION_KEY = "engagehook.queue"
# After the broker failed once, this process spools directly for this long instead of making
# every request wait for the publish timeout again; the drainer finds out when it is back.
BROKER_COOLDOWN_SECONDS = 2.0
# How often the drainer looks at the spool; it also runs once as soon as it starts.
DRAIN_INTERVAL_SECONDS = 1.0
# Non-Redis publishes: one immediate retry (a connection the broker dropped), as on Redis.
INGEST_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


class EnqueueFailed(Exception):
    """The payload could not be stored anywhere; the sender must retry."""


class Queue(Protocol):
    """Anything that durably takes a raw webhook body or raises EnqueueFailed."""

    def enqueue(
        self, body: str, *, event_id: str, event_type: str | None, appointment_id: str | None
    ) -> str:
        """Store the body; return "queued" (broker) or "spooled" (local spool)."""

    def ping(self) -> None:
        """Raise when the broker cannot be reached."""


def describe(event_id: str, event_type: str | None, appointment_id: str | None) -> str:
    """What Flower and the logs show of the task argument: identifiers, never the payload."""
    return f"(event_id={event_id!r}, eventType={event_type!r}, appointment_id={appointment_id!r})"


class CeleryQueue:
    """Publishes ``workers.process_webhook(body)`` by name; the broker confirms before we answer.

    On Redis it publishes through one long-lived ``RedisPublisher`` per process (the same
    message as ``send_task`` at a third of the cost); other brokers go through ``send_task``.
    """

    def __init__(self, celery_app: Celery) -> None:
        self.celery_app = celery_app
        self._publisher: RedisPublisher | None = None
        self._publisher_pid: int | None = None
        self._connection: Connection | None = None
        self._connection_pid: int | None = None

    def enqueue(
        self, body: str, *, event_id: str, event_type: str | None, appointment_id: str | None
    ) -> str:
        argsrepr = describe(event_id, event_type, appointment_id)
        try:
            publisher = self._redis_publisher()
            if publisher is not None:
                publisher.publish(body, argsrepr, event_id)
            else:
                with self._producers().acquire(
                    block=True, timeout=INGEST_PUBLISH_TIMEOUT_SECONDS
                ) as producer:
                    self.celery_app.send_task(
                        PROCESS_WEBHOOK,
                        args=[body],
                        argsrepr=argsrepr,
                        kwargsrepr="{}",
                        producer=producer,
                        retry_policy=INGEST_RETRY_POLICY,
                    )
        except Exception as exc:  # any broker or transport failure means "not stored"
            raise EnqueueFailed(
                f"broker did not take the message: {exc.__class__.__name__}"
            ) from exc
        return "queued"

    def run_hook(self, run_id: int) -> None:
        """Publish one hook run by task name (a re-run asked for by an operator)."""
        self.celery_app.send_task(RUN_HOOK, args=[run_id], argsrepr=f"(hook_run={run_id})")

    def ping(self) -> None:
        publisher = self._redis_publisher()
        if publisher is not None:
            publisher.ping()
            return
        with self.celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=1)

    def _producers(self) -> ProducerPool:
        """This process's producers for a non-Redis broker, on connections bounded in time.

        The embedded broker is a SQLite file: a publish waits for its write lock, by default
        as long as a worker's fetch would (30 s). Ingest's connections wait at most
        INGEST_PUBLISH_TIMEOUT_SECONDS per attempt, one retry, so a locked file means the
        spool after about a second, as a hung Redis does.
        """
        if self._connection is None or self._connection_pid != os.getpid():
            self._connection = self.celery_app.connection_for_write(
                transport_options={BUSY_TIMEOUT_OPTION: INGEST_PUBLISH_TIMEOUT_SECONDS}
            )
            self._connection_pid = os.getpid()
        return producers[self._connection]

    def _redis_publisher(self) -> RedisPublisher | None:
        """This process's publisher when the broker is Redis (rebuilt after a fork)."""
        settings = settings_of(self.celery_app)
        if settings is None or settings.redis_url is None:
            return None
        if self._publisher is None or self._publisher_pid != os.getpid():
            self._publisher = RedisPublisher(
                self.celery_app,
                settings.redis_url,
                PROCESS_WEBHOOK,
                timeout=INGEST_PUBLISH_TIMEOUT_SECONDS,
            )
            self._publisher_pid = os.getpid()
        return self._publisher


class SpoolingQueue:
    """The broker first; the durable local spool when the broker cannot take the payload.

    Answers "queued" or "spooled", and raises EnqueueFailed only when neither could store
    the body. A drainer thread (one per process, started lazily, so never before a fork)
    publishes spooled payloads in order once the broker takes messages again; across the
    processes sharing the spool only the holder of its flock drains. A file is deleted only
    after its publish succeeded, so a crash in between can at worst publish it twice, which
    the store's idempotency turns into a duplicate.
    """

    def __init__(
        self,
        primary: Queue,
        spool: Spool,
        *,
        cooldown: float = BROKER_COOLDOWN_SECONDS,
        drain_interval: float = DRAIN_INTERVAL_SECONDS,
    ) -> None:
        self.primary = primary
        self.spool = spool
        self.cooldown = cooldown
        self.drain_interval = drain_interval
        self._broker_down_until = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._start_lock = threading.Lock()
        self._stuck: set[str] = set()  # damaged entries that could not be moved: told once

    def enqueue(
        self, body: str, *, event_id: str, event_type: str | None, appointment_id: str | None
    ) -> str:
        """Publish, or spool when the broker fails or failed moments ago."""
        self.start()
        if time.monotonic() >= self._broker_down_until:
            try:
                return self.primary.enqueue(
                    body, event_id=event_id, event_type=event_type, appointment_id=appointment_id
                )
            except EnqueueFailed as exc:
                self._broker_failed(exc)
        try:
            self.spool.put(
                body, event_id=event_id, event_type=event_type, appointment_id=appointment_id
            )
        except (SpoolFull, OSError) as exc:
            logger.error("spool cannot take event %s: %s", event_id, exc)
            raise EnqueueFailed(f"broker down and spool unavailable: {exc}") from exc
        return "spooled"

    def ping(self) -> None:
        """Readiness follows the broker: a spooling ingest is degraded, not ready."""
        self.primary.ping()

    def drain_once(self) -> int:
        """Publish waiting payloads oldest first until the spool is empty or the broker fails."""
        published = 0
        with self.spool.drain_lock() as holder:
            if not holder:
                return 0
            self.spool.remove_stale_temporaries()
            for path in self.spool.pending():
                try:
                    payload = self.spool.read(path)
                except FileNotFoundError:
                    continue  # a previous holder published it after we listed it
                except (ValueError, UnicodeDecodeError, OSError) as exc:
                    # One bad entry (damaged, a directory, unreadable) never stops the others.
                    self._set_aside(path, exc)
                    continue
                try:
                    self.primary.enqueue(
                        payload.body,
                        event_id=payload.event_id,
                        event_type=payload.event_type,
                        appointment_id=payload.appointment_id,
                    )
                except EnqueueFailed as exc:
                    self._broker_failed(exc)
                    break
                self.spool.remove(path)
                published += 1
        if published:
            self._broker_down_until = 0.0
            logger.warning(
                "published %d spooled payloads; %d still waiting", published, len(self.spool)
            )
        return published

    def _set_aside(self, path: Path, exc: Exception) -> None:
        """Move a damaged entry to the spool's corrupt/ directory; report it once by file name."""
        # The reason names the file and the kind of damage only, never payload content.
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        try:
            kept = self.spool.set_aside(path)
        except OSError as move_failed:
            if path.name not in self._stuck:
                self._stuck.add(path.name)
                logger.error(
                    "spool entry %s is unreadable (%s) and cannot be moved aside (%s); "
                    "skipping it until someone removes it",
                    path.name,
                    reason,
                    move_failed.strerror,
                )
            return
        logger.error("spool entry %s is unreadable (%s); moved to %s", path.name, reason, kept)

    def start(self) -> None:
        """Run the drainer thread in this process (again in a forked child)."""
        if self._thread is not None and self._thread_pid == os.getpid():
            return
        with self._start_lock:
            if self._thread is not None and self._thread_pid == os.getpid():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._drain_loop, daemon=True, name="engagehook-spool-drainer"
            )
            self._thread_pid = os.getpid()
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the drainer thread (tests; at exit the daemon thread simply ends)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread_pid == os.getpid():
            self._thread.join(timeout)
        self._thread = None

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            try:
                if time.monotonic() >= self._broker_down_until and self.spool.pending():
                    self.drain_once()
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                logger.exception("draining the spool failed; trying again")
            self._wake.wait(self.drain_interval)
            self._wake.clear()

    def _broker_failed(self, exc: Exception) -> None:
        if time.monotonic() >= self._broker_down_until:
            logger.warning(
                "broker did not take a message (%s); spooling for %.0f s", exc, self.cooldown
            )
        self._broker_down_until = time.monotonic() + self.cooldown


def init_app(app: Flask, queue: Queue) -> None:
    """Attach the queue the views publish to."""
    app.extensions[EXTENSION_KEY] = queue


def get_queue() -> Queue:
    """The queue of the current app."""
    return current_app.extensions[EXTENSION_KEY]


def broker_queue(queue: Queue) -> Queue:
    """The broker behind ``queue``, without the spool: what a replay publishes to.

    A replay answers the operator, not a sender that cannot wait: when the broker is down
    the dead letter stays where it is and the operator tries again, rather than moving it
    into a spool that only this host drains.
    """
    return queue.primary if isinstance(queue, SpoolingQueue) else queue
