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
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

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
from handlers.events import AppointmentEvent
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

    # -- writing (handlers/applying.py, handlers/failure_records.py) ------------------------

    def apply(
        self,
        event: AppointmentEvent,
        raw_body: str,
        handler: Handler,
        hook_names: Sequence[str] = (),
    ) -> ApplyResult:
        """Apply one delivery exactly once, in order, and queue its hooks in the same commit."""
        return applying.apply(self, event, raw_body, handler, hook_names)

    def dead_letter(
        self,
        *,
        event_id: str,
        raw_body: str,
        reason: str,
        errors: list[dict[str, str]],
        event_type: str | None = None,
        appointment_id: str | None = None,
    ) -> str:
        """Keep a payload that cannot be applied, with why; 'duplicate' if the id is taken."""
        return failure_records.dead_letter(
            self,
            event_id=event_id,
            raw_body=raw_body,
            reason=reason,
            errors=errors,
            event_type=event_type,
            appointment_id=appointment_id,
        )

    def mark_retrying(
        self,
        *,
        event_id: str,
        raw_body: str,
        reason: str,
        event_type: str | None = None,
        appointment_id: str | None = None,
    ) -> None:
        """Note that a delivery failed transiently and will be retried."""
        failure_records.mark_retrying(
            self,
            event_id=event_id,
            raw_body=raw_body,
            reason=reason,
            event_type=event_type,
            appointment_id=appointment_id,
        )

    def requeue(self, event_id: str) -> str | None:
        """Mark a dead-lettered event queued again and return its raw body for replay."""
        return failure_records.requeue(self, event_id)

    def prune(self, older_than: timedelta) -> int:
        """Delete finished event records older than ``older_than`` (handlers/pruning.py)."""
        return pruning.prune(self, older_than)

    # -- reading (handlers/lookups.py) -----------------------------------------------------

    def get_appointment(self, appointment_id: str) -> dict[str, Any] | None:
        """The projected state of one appointment with its history, as JSON-ready values."""
        return lookups.get_appointment(self, appointment_id)

    def snapshot(self, appointment_id: str) -> Mapping[str, Any] | None:
        """Only the stored appointment object (what the newest event carried)."""
        return lookups.snapshot(self, appointment_id)

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """The processing record of one event id."""
        return lookups.get_event(self, event_id)

    def raw_body(self, event_id: str) -> str | None:
        """The exact body an event arrived with."""
        return lookups.raw_body(self, event_id)

    def dead_letters(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Dead-lettered events, oldest first, without their bodies."""
        return lookups.dead_letters(self, limit)

    def count_events(self, state: str | None = None) -> int:
        """How many event records there are (in ``state``, when given)."""
        return lookups.count_events(self, state)

    def unfinished_event_ids(self, ids: Sequence[str]) -> set[str]:
        """Of ``ids``, those whose event has no final outcome yet (unknown ids included)."""
        return lookups.unfinished_event_ids(self, ids)

    # -- hook runs (handlers/hook_outbox.py) -----------------------------------------------

    def dead_hook_runs(self) -> list[dict[str, Any]]:
        """Hook runs that ended dead-lettered, with their reason, oldest first."""
        return hook_outbox.dead_runs(self)

    def hook_runs(
        self, *, state: str | None = None, limit: int = 100, after_id: int | None = None
    ) -> list[dict[str, Any]]:
        """A page of hook runs, newest first; pass the last id seen as ``after_id`` for more."""
        return hook_outbox.list_runs(self, state=state, limit=limit, after_id=after_id)

    def requeue_hook_run(self, run_id: int) -> bool:
        """Make a dead-lettered hook run pending again; the caller publishes ``RUN_HOOK``."""
        return hook_outbox.requeue(self, run_id)
