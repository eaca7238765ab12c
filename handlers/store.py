"""The appointment store: one object for every reader and writer, one module per job behind it.

``Store`` owns the engine and the unit of work (``transaction``, ``connection``); what it does
with them lives beside it, each file readable in one sitting:

| job | module |
| --- | --- |
| connecting, bounded waits, database trouble as retries | ``handlers/engine.py`` |
| applying an event once, in order, with its hook outbox | ``handlers/applying.py`` |
| dead letters, retry notes, requeueing for replay | ``handlers/failure_records.py`` |
| by-id reads (appointment, event, raw body, counts) | ``handlers/lookups.py`` |
| listings with filters and pages | ``handlers/queries.py`` |
| the hook outbox's claims, leases and outcomes | ``handlers/hook_outbox.py`` |
| retention | ``handlers/pruning.py`` |

How idempotency, ordering and concurrency are decided: docs/store.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from core.states import EVENT_STATES
from core.states import FINAL_STATES
from core.states import HOOK_RUN_STATES
from core.states import TAKEN_STATES
from handlers import applying
from handlers import failure_records
from handlers import hook_outbox
from handlers import lookups
from handlers import pruning
from handlers.api import AppointmentTransaction
from handlers.api import Handler
from handlers.applying import ApplyResult
from handlers.engine import READ_ONLY
from handlers.engine import appointment_lock_key
from handlers.engine import event_lock_key
from handlers.engine import make_engine
from handlers.engine import transient_on_database_trouble
from handlers.models import Base

__all__ = [
    "EVENT_STATES",
    "FINAL_STATES",
    "HOOK_RUN_STATES",
    "TAKEN_STATES",
    "ApplyResult",
    "AppointmentTransaction",
    "Handler",
    "Store",
    "appointment_lock_key",
    "event_lock_key",
    "make_engine",
]


class Store:
    """SQLAlchemy-backed store of events, appointments, history and hook runs."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        self.dialect = self.engine.dialect.name

    # -- schema and units of work ----------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (safe to call from many processes)."""
        from handlers.migrate import upgrade

        upgrade(self.engine)

    def create_all(self) -> None:
        """Create the tables directly; for throwaway test databases."""
        Base.metadata.create_all(self.engine)

    def drop_all(self) -> None:
        """Drop every table of the store, including Alembic's version table."""
        Base.metadata.drop_all(self.engine)
        with self.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Session]:
        """One unit of work; database hiccups surface as TransientError so tasks retry."""
        session = (self._read_sessions if read_only else self._sessions)()
        try:
            with transient_on_database_trouble(), session.begin():
                yield session
        finally:
            session.close()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """One writing transaction on a Core connection, failing like ``transaction``."""
        with transient_on_database_trouble(), self.engine.begin() as conn:
            yield conn

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # -- the jobs, each in its own module; every one takes the store as its first argument ----

    # writing: handlers/applying.py, handlers/failure_records.py, handlers/pruning.py
    apply = applying.apply
    dead_letter = failure_records.dead_letter
    mark_retrying = failure_records.mark_retrying
    requeue = failure_records.requeue
    prune = pruning.prune

    # reading one record: handlers/lookups.py
    get_appointment = lookups.get_appointment
    snapshot = lookups.snapshot
    get_event = lookups.get_event
    raw_body = lookups.raw_body
    dead_letters = lookups.dead_letters
    count_events = lookups.count_events
    unfinished_event_ids = lookups.unfinished_event_ids

    # hook runs: handlers/hook_outbox.py
    dead_hook_runs = hook_outbox.dead_runs
    hook_runs = hook_outbox.list_runs
    requeue_hook_run = hook_outbox.requeue
