"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file, with real acks.

Stock kombu marks a fetched row invisible and never touches it again: acknowledged rows pile
up forever and a message fetched by a process that is then SIGKILLed is never delivered again.
This transport keeps kombu's table and polling but gives each row a real life cycle:

    visible ──fetch──▶ held (visible = 0) ──ack──▶ deleted
                          │  reject/requeue, graceful shutdown ──▶ visible again
                          └─ held longer than the visibility timeout (owner died) ──▶ visible again

so the file holds exactly the pending and in-flight messages, and ``restore_orphans`` gives
back what a killed worker held, at start and periodically. Celery selects it by class path.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
import threading
from typing import Any

from kombu.transport import sqlalchemy as kombu_sqla
from kombu.transport import virtual
from kombu.utils.json import dumps
from kombu.utils.json import loads
from sqlalchemy import create_engine
from sqlalchemy import event as sa_event
from sqlalchemy import inspect
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from core.names import BUSY_TIMEOUT_OPTION

TRANSPORT = "workers.embedded_broker:Transport"
ROW_ID = "engagehook_row_id"
# How long an operation waits for the file's write lock unless the connection says otherwise
# (transport option BUSY_TIMEOUT_OPTION): workers fetch and ack patiently; ingest passes a
# short one so that its publish gives up in time and spools (ingest/queue.py).
DEFAULT_BUSY_TIMEOUT_SECONDS = 30.0
# Longest an idle worker polls before Celery looks at its shutdown flag again.
DRAIN_SLICE_SECONDS = 0.25


def _sqlite_engine(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS) -> Any:
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        hide_parameters=True,  # message bodies are payloads: never in an error text
    )

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets the web process publish while workers fetch; FULL makes each commit durable.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    return engine


class QoS(virtual.QoS):
    """Acks delete the row; rejects delete it or make it visible again."""

    def ack(self, delivery_tag: Any) -> None:
        message = self._delivered.get(delivery_tag)
        super().ack(delivery_tag)
        if message is not None:
            self.channel.delete_row(message)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        message = self._delivered.get(delivery_tag)
        if message is not None and requeue:
            self.channel.show_row(message)
        elif message is not None:
            self.channel.delete_row(message)
        self._quick_ack(delivery_tag)


class Channel(kombu_sqla.Channel):
    """kombu's SQLAlchemy channel plus row ids on messages and row-level ack/restore.

    Without an event loop Celery acks from the pool's result thread while the main thread
    polls; one lock keeps the two off the channel's single SQLAlchemy session at once.
    """

    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._session_lock = threading.RLock()
        super().__init__(*args, **kwargs)

    # kombu's SQLAlchemy channel names and takes these arguments so (see test_celery_coupling).
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        with self._session_lock:
            obj = self._get_or_create(queue)
            message = self.message_cls(dumps(payload), obj)
            # kombu leaves the timestamp NULL until the first fetch; stamped on insert, the
            # table tells how long its oldest message has waited (oldest_message_at).
            message.sent_at = datetime.datetime.now()
            self.session.add(message)
            try:
                self.session.commit()
            except OperationalError:
                # The publish must fail (and be retried), never report an unstored message.
                self.session.rollback()
                raise

    def _size(self, queue: str) -> int:
        with self._session_lock:
            return super()._size(queue)

    def _purge(self, queue: str) -> int:
        with self._session_lock:
            return super()._purge(queue)

    def _busy_timeout(self) -> float:
        options = self.connection.client.transport_options
        return float(options.get(BUSY_TIMEOUT_OPTION) or DEFAULT_BUSY_TIMEOUT_SECONDS)

    def _engine_from_config(self) -> Any:
        return _sqlite_engine(self.connection.client.hostname, self._busy_timeout())

    def _open(self) -> Any:
        # One engine per file and busy timeout: a process may hold connections with both.
        key = (self.connection.client.hostname, self._busy_timeout())
        if key not in self._engines:
            with kombu_sqla._MUTEX:
                if key not in self._engines:
                    engine = self._engine_from_config()
                    kombu_sqla.metadata.create_all(engine)
                    self._engines[key] = engine, sessionmaker(bind=engine)
        return self._engines[key]

    def _get(self, queue: str) -> dict[str, Any]:  # type: ignore[override]
        with self._session_lock:
            return self._get_locked(queue)

    def _get_locked(self, queue: str) -> dict[str, Any]:
        obj = self._get_or_create(queue)
        self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            msg = (
                self.session.query(self.message_cls)
                .filter(self.message_cls.queue_id == obj.id)
                .filter(self.message_cls.visible != False)  # noqa: E712 (SQL expression)
                .order_by(self.message_cls.sent_at, self.message_cls.id)
                .limit(1)
                .first()
            )
            if msg is None:
                raise virtual.Empty()
            msg.visible = False
            payload = loads(msg.payload)
            payload.setdefault("properties", {})[ROW_ID] = msg.id
            return payload
        finally:
            self.session.commit()

    def _restore(self, message: Any) -> None:
        # Graceful shutdown and requeue: the row is still there, just show it again.
        self.show_row(message)

    def _restore_at_beginning(self, message: Any) -> None:
        self.show_row(message)

    def delete_row(self, message: Any) -> None:
        """Forget a message for good (it was acknowledged)."""
        row_id = message.properties.get(ROW_ID)
        if row_id is None:
            return
        with self._session_lock:
            self.session.query(self.message_cls).filter(self.message_cls.id == row_id).delete()
            self.session.commit()

    def show_row(self, message: Any) -> None:
        """Make a held message deliverable again."""
        row_id = message.properties.get(ROW_ID)
        if row_id is None:
            return
        with self._session_lock:
            self.session.query(self.message_cls).filter(self.message_cls.id == row_id).update(
                {"visible": True}
            )
            self.session.commit()


class Transport(kombu_sqla.Transport):
    """The embedded transport: polls every 0.1 s so an event lands well within a second."""

    Channel = Channel
    polling_interval = 0.1

    def drain_events(self, connection: Any, timeout: Any = None, **kwargs: Any) -> Any:
        # Celery's blocking loop drains for 2 s between looks at its shutdown flag, so a
        # worker told to stop idled up to 2 s first; the loop goes round again at once.
        if timeout is not None:
            timeout = min(timeout, DRAIN_SLICE_SECONDS)
        return super().drain_events(connection, timeout=timeout, **kwargs)


def restore_orphans(broker_url: str, held_longer_than: float) -> int:
    """Make visible again the messages held longer than ``held_longer_than`` seconds.

    At start (no worker alive yet) pass 0: everything held belonged to a dead process.
    While running pass the visibility timeout, which must exceed the longest task.
    """
    engine = _sqlite_engine(broker_url)
    try:
        if not inspect(engine).has_table("kombu_message"):
            return 0  # nothing was ever published
        # kombu stamps rows with naive local time (datetime.now) on insert and on fetch.
        cutoff = datetime.datetime.now() - datetime.timedelta(seconds=held_longer_than)
        with engine.begin() as conn:
            result = conn.execute(
                text(
                    "UPDATE kombu_message SET visible = 1"
                    " WHERE visible = 0 AND timestamp <= :cutoff"
                ),
                {"cutoff": cutoff},
            )
            return int(result.rowcount or 0)
    finally:
        engine.dispose()


def pending_messages(broker_url: str) -> int:
    """Messages waiting or in flight in the embedded broker (for /metrics and tests)."""
    engine = _sqlite_engine(broker_url)
    try:
        if not inspect(engine).has_table("kombu_message"):
            return 0
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM kombu_message")).scalar() or 0)
    finally:
        engine.dispose()


def oldest_message_at(broker_url: str, timeout: float = 30.0) -> datetime.datetime | None:
    """When the oldest message waiting or in flight was queued, or last handed to a worker.

    A naive local time, as kombu stamps rows. None when the broker holds no message.
    """
    rows = _read_only(broker_url, timeout, "SELECT min(timestamp) FROM kombu_message")
    if not rows or rows[0][0] is None:
        return None
    return datetime.datetime.fromisoformat(rows[0][0])


def queue_depths(broker_url: str, timeout: float = 30.0) -> tuple[dict[str, int], int]:
    """Messages waiting per queue, and messages handed to a worker and not yet acknowledged."""
    rows = _read_only(
        broker_url,
        timeout,
        "SELECT q.name, count(m.id), coalesce(sum(m.visible = 0), 0) "
        "FROM kombu_queue q LEFT JOIN kombu_message m ON m.queue_id = q.id GROUP BY q.name",
    )
    waiting = {name: int(total) - int(held) for name, total, held in rows or []}
    return waiting, sum(int(held) for _, _, held in rows or [])


def _read_only(broker_url: str, timeout: float, query: str) -> list[Any] | None:
    """The rows of ``query``, or None before anything was published (no file, no tables).

    Through a read-only connection that waits at most ``timeout``: a scrape never takes the
    writers' lock, nor blocks behind them for long.
    """
    path = broker_url.removeprefix("sqlite:///")
    if not os.path.exists(path):
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    try:
        return conn.execute(query).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    finally:
        conn.close()
