"""The store's database connection: one engine factory, bounded waits, and failures as retries.

Every other store module opens its transactions through ``Store.transaction`` or
``Store.connection``, which use what is here; nothing else creates an engine for the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from handlers.errors import TransientError

CONNECT_TIMEOUT_SECONDS = 5
LOCK_TIMEOUT_SECONDS = 10
STATEMENT_TIMEOUT_SECONDS = 60
# Execution option that marks a read-only unit of work (a deferred BEGIN on SQLite).
READ_ONLY = "engagehook_read_only"


@contextmanager
def transient_on_database_trouble() -> Iterator[None]:
    """An unreachable database or a lost connection becomes TransientError: the task retries."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise TransientError(f"store unavailable: {exc.__class__.__name__}") from exc
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise TransientError(f"store connection lost: {exc.__class__.__name__}") from exc


def event_lock_key(event_id: str) -> str:
    """The advisory-lock key every writer of this event id takes (see ``lock``)."""
    return f"event:{event_id}"


def appointment_lock_key(appointment_id: str) -> str:
    """The advisory-lock key every writer of this appointment takes."""
    return f"appointment:{appointment_id}"


def lock(session: Session, key: str) -> None:
    """Serialise every writer of ``key`` (an event id or an appointment) until commit."""
    if session.get_bind().dialect.name == "postgresql":
        # A 64-bit hash of the key: a collision only serialises two unrelated writers.
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )
    # SQLite: the transaction began with BEGIN IMMEDIATE, which already excludes writers.


def make_engine(url: str) -> Engine:
    """An engine tuned for the store: WAL and IMMEDIATE writers on SQLite, pre-ping on servers."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    engine = create_engine(
        url,
        hide_parameters=True,  # SQL parameters are payload values: never in an error text
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )

    @sa_event.listens_for(engine, "connect")
    def _bound_waits(dbapi_connection: Any, _record: Any) -> None:
        # A lock held by a stuck transaction must become a retry (TransientError), not a
        # worker that waits forever; no statement of ours runs anywhere near this long.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
            cursor.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT_SECONDS}s'")
        dbapi_connection.commit()

    return engine


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": 30, "check_same_thread": False},
        hide_parameters=True,  # SQL parameters are payload values: never in an error text
    )

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE itself (pysqlite would
        # otherwise begin lazily and deferred, and two writers could both read then clash).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front; readers begin deferred and, thanks to WAL,
        # read the last commit without waiting for a writer.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine
