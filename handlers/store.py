"""The appointment store: idempotency, ordering and concurrency are decided here, in one commit.

Each event is applied in a single transaction that (1) serialises on its appointment,
(2) takes the event id as a unique key, (3) compares ``appointment.updatedAt`` with the
stored one and (4) writes the snapshot, the history row and the hook outbox together.
PostgreSQL serialises per event id and per appointment with transaction-scoped advisory
locks; SQLite serialises all writers with ``BEGIN IMMEDIATE`` (one writer at a time, while
readers use deferred transactions and see the last commit through WAL). See docs/store.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import cast

from sqlalchemy import Table
from sqlalchemy import bindparam
from sqlalchemy import create_engine
from sqlalchemy import delete
from sqlalchemy import event as sa_event
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.engine import CursorResult
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from handlers import hook_outbox
from handlers.api import AppointmentTransaction
from handlers.api import Handler
from handlers.errors import TransientError
from handlers.events import AppointmentEvent
from handlers.models import Appointment
from handlers.models import AppointmentChange
from handlers.models import Base
from handlers.models import EventRecord
from handlers.models import HookRun
from handlers.models import utcnow
from handlers.storable import MAX_EVENT_TYPE_LENGTH
from handlers.storable import MAX_ID_LENGTH
from handlers.storable import MAX_REASON_LENGTH
from handlers.storable import bounded_errors
from handlers.storable import event_key
from handlers.storable import fits
from handlers.storable import label

# An event id in one of these states has been decided; another delivery is a duplicate.
# A dead-lettered id is not taken: its effect never committed, so a new delivery (or a replay)
# is tried again instead of being called a duplicate (contract semantics 1).
TAKEN_STATES = frozenset({"processed", "stale"})
# States in which an event id needs nothing more from a worker.
FINAL_STATES = TAKEN_STATES | {"dead_lettered"}
# What retention may delete: outcomes nothing will ever act on again (see Store.prune).
FINISHED_EVENT_STATES = ("processed", "duplicate", "stale")
FINISHED_HOOK_RUN_STATES = ("done",)
HOOK_RUN_STATES = hook_outbox.HOOK_RUN_STATES
EVENT_STATES = ("queued", "processed", "duplicate", "stale", "retrying", "dead_lettered")
# Execution option that marks a read-only unit of work (a deferred BEGIN on SQLite).
_READ_ONLY = "engagehook_read_only"


@dataclass(frozen=True)
class ApplyResult:
    """What applying one delivery did: its outcome and the hook runs it queued."""

    outcome: str  # processed | stale | duplicate
    hook_run_ids: tuple[int, ...] = ()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class Store:
    """SQLAlchemy-backed store of events, appointments, history and hook runs."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )
        self.dialect = self.engine.dialect.name

    # -- schema ----------------------------------------------------------------------------

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
            with _transient_on_database_trouble(), session.begin():
                yield session
        finally:
            session.close()

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # -- applying events -------------------------------------------------------------------

    def apply(
        self,
        event: AppointmentEvent,
        raw_body: str,
        handler: Handler,
        hook_names: Sequence[str] = (),
    ) -> ApplyResult:
        """Apply one delivery exactly once, in order, and queue its hooks in the same commit."""
        try:
            return self._apply_once(event, raw_body, handler, hook_names)
        except IntegrityError:
            # Should not happen (the locks serialise every writer of an event id), but if a
            # database lets two writers race, the committed one is the outcome, ours a duplicate.
            with self.transaction() as session:
                record = session.get(EventRecord, event.id)
                if record is None or record.state not in TAKEN_STATES:
                    raise
                record.duplicates += 1
            return ApplyResult("duplicate")

    def _apply_once(
        self,
        event: AppointmentEvent,
        raw_body: str,
        handler: Handler,
        hook_names: Sequence[str],
    ) -> ApplyResult:
        # SQLAlchemy Core, not the ORM: this is the hot path of every worker, and the same
        # transaction through the unit of work cost about twice the CPU and more round trips.
        ids = {"event_id": event.id, "appointment_id": event.appointment_id}
        with self.connection() as conn:
            if self.dialect == "postgresql":
                # Always event first, then appointment: one order everywhere, so no deadlock.
                # A statement of its own: the reads below must see what the lock waited for.
                conn.execute(
                    _LOCK_EVENT_THEN_APPOINTMENT,
                    {
                        "event_key": event_lock_key(event.id),
                        "appointment_key": appointment_lock_key(event.appointment_id),
                    },
                )
            known = conn.execute(_READ_BEFORE_APPLY, ids).one()
            if known.state in TAKEN_STATES:
                conn.execute(_COUNT_DUPLICATE, ids)
                return ApplyResult("duplicate")
            if known.state is None and known.applied:
                # Its record was pruned, but the history shows the effect is committed.
                return ApplyResult("duplicate")
            now = utcnow()
            record = {
                "event_type": event.event_type,
                "appointment_id": event.appointment_id,
                "appointment_updated_at": event.updated_at,
                "raw_body": raw_body,
                "reason": None,
                "errors": None,
                "processed_at": now,
            }
            stored = known.updated_at is not None
            if stored and _is_older(event, known.updated_at, known.last_event_id):
                _write_record(conn, event.id, known.state, {**record, "state": "stale"}, now)
                return ApplyResult("stale")
            tx = AppointmentTransaction(event, known.snapshot if stored else None)
            handler(event, tx)
            _write_record(conn, event.id, known.state, {**record, "state": "processed"}, now)
            return ApplyResult("processed", _write_effect(conn, event, tx, stored, hook_names, now))

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """One writing transaction on a Core connection, failing like ``transaction``."""
        with _transient_on_database_trouble(), self.engine.begin() as conn:
            yield conn

    def _lock(self, session: Session, key: str) -> None:
        """Serialise every writer of ``key`` (an event id or an appointment) until commit."""
        if self.dialect == "postgresql":
            # A 64-bit hash of the key: a collision only serialises two unrelated writers.
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
            )
        # SQLite: the transaction began with BEGIN IMMEDIATE, which already excludes writers.

    # -- failures --------------------------------------------------------------------------

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
        """Keep a payload that cannot be applied, with why; 'duplicate' if the id is taken.

        Every value is bounded and escaped first (handlers/storable.py), so no body can make
        this fail. Should the database refuse the record anyway, a bare one (id, body, the
        refusal's class) is written instead; only when that fails too does the error surface,
        and the caller retries rather than acknowledge an unrecorded event.
        """
        failure = {
            "reason": reason,
            "errors": errors,
            "event_type": event_type,
            "appointment_id": appointment_id,
        }
        try:
            return self._record_failure(event_id, raw_body, "dead_lettered", failure)
        except TransientError:
            raise
        except DBAPIError as refused:
            bare_reason = f"unrecordable failure: {refused.__class__.__name__}"
            bare = {"reason": bare_reason, "errors": [{"path": "", "message": bare_reason}]}
            return self._record_failure(event_id, raw_body, "dead_lettered", bare)

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
        failure = {
            "reason": reason,
            "errors": [{"path": "", "message": reason}],
            "event_type": event_type,
            "appointment_id": appointment_id,
        }
        self._record_failure(event_id, raw_body, "retrying", failure)

    def _record_failure(
        self, event_id: str, raw_body: str, state: str, failure: Mapping[str, Any]
    ) -> str:
        """Write a dead letter or a retry note, unless the id is taken; values made to fit."""
        key = event_key(event_id)
        with self.transaction() as session:
            self._lock(session, event_lock_key(key))
            record = session.get(EventRecord, key)
            if record is not None and record.state in TAKEN_STATES:
                if state == "dead_lettered":
                    record.duplicates += 1
                return "duplicate"
            if record is None:
                record = EventRecord(
                    id=key, state="queued", received_at=utcnow(), attempts=0, duplicates=0
                )
                session.add(record)
            record.state = state
            record.reason = label(failure["reason"], MAX_REASON_LENGTH)
            record.errors = bounded_errors(failure["errors"])
            record.raw_body = raw_body
            record.event_type = label(failure.get("event_type"), MAX_EVENT_TYPE_LENGTH)
            record.appointment_id = label(failure.get("appointment_id"), MAX_ID_LENGTH)
            record.attempts = (record.attempts or 0) + 1
            if state == "dead_lettered":
                record.processed_at = utcnow()
            return state

    def requeue(self, event_id: str) -> str | None:
        """Mark a dead-lettered event queued again and return its raw body for replay."""
        key = event_key(event_id)
        with self.transaction() as session:
            self._lock(session, event_lock_key(key))
            record = session.get(EventRecord, key)
            if record is None or record.state != "dead_lettered":
                return None
            record.state = "queued"
            return record.raw_body

    # -- reading ---------------------------------------------------------------------------

    def get_appointment(self, appointment_id: str) -> dict[str, Any] | None:
        """The projected state of one appointment with its history, as JSON-ready values."""
        if not fits(appointment_id):
            return None  # no stored appointment has such an id (and PostgreSQL cannot look)
        with self.transaction(read_only=True) as session:
            row = session.get(Appointment, appointment_id)
            if row is None:
                return None
            history = session.scalars(
                select(AppointmentChange)
                .where(AppointmentChange.appointment_id == appointment_id)
                .order_by(AppointmentChange.updated_at, AppointmentChange.id)
            ).all()
            snapshot = row.snapshot or {}
            return {
                "id": row.id,
                "status": row.status,
                "start": _iso(row.start),
                "end": _iso(row.end),
                "meetingType": row.meeting_type,
                "externalId": row.external_id,
                "subject": snapshot.get("subject"),
                "office": snapshot.get("office"),
                "listing": snapshot.get("listing"),
                "leadSegment": snapshot.get("leadSegment"),
                "participants": snapshot.get("participants") or [],
                "answers": snapshot.get("answers") or [],
                "updatedAt": _iso(row.updated_at),
                "lastEventId": row.last_event_id,
                "lastEventType": row.last_event_type,
                "firstSeenAt": _iso(row.first_seen_at),
                "lastAppliedAt": _iso(row.last_applied_at),
                "snapshot": row.snapshot,
                "history": [
                    {
                        "eventId": change.event_id,
                        "eventType": change.event_type,
                        "updatedAt": _iso(change.updated_at),
                        "appliedAt": _iso(change.applied_at),
                        "changes": change.changes,
                    }
                    for change in history
                ],
            }

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        """The processing record of one event id."""
        key = event_key(event_id)
        with self.transaction(read_only=True) as session:
            record = session.get(EventRecord, key)
            if record is None:
                return None
            hooks = session.scalars(select(HookRun).where(HookRun.event_id == key)).all()
            return _event_dict(record, hooks)

    def snapshot(self, appointment_id: str) -> Mapping[str, Any] | None:
        """Only the stored appointment object (what the newest event carried)."""
        if not fits(appointment_id):
            return None
        with self.transaction(read_only=True) as session:
            row = session.get(Appointment, appointment_id)
            return row.snapshot if row else None

    def dead_letters(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Dead-lettered events, oldest first, without their bodies."""
        with self.transaction(read_only=True) as session:
            records = session.scalars(
                select(EventRecord)
                .where(EventRecord.state == "dead_lettered")
                .order_by(EventRecord.received_at)
                .limit(limit)
            ).all()
            return [_event_dict(r, (), with_body=False) for r in records]

    def raw_body(self, event_id: str) -> str | None:
        """The exact body an event arrived with."""
        with self.transaction(read_only=True) as session:
            record = session.get(EventRecord, event_key(event_id))
            return record.raw_body if record else None

    def count_events(self, state: str | None = None) -> int:
        """How many event records there are (in ``state``, when given)."""
        with self.transaction(read_only=True) as session:
            query = select(func.count()).select_from(EventRecord)
            if state:
                query = query.where(EventRecord.state == state)
            return int(session.scalar(query) or 0)

    def unfinished_event_ids(self, ids: Sequence[str]) -> set[str]:
        """Of ``ids``, those whose event has no final outcome yet (unknown ids included)."""
        if not ids:
            return set()
        keys = {event_id: event_key(event_id) for event_id in ids}
        with self.transaction(read_only=True) as session:
            done = set(
                session.scalars(
                    select(EventRecord.id).where(
                        EventRecord.id.in_(set(keys.values())), EventRecord.state.in_(FINAL_STATES)
                    )
                ).all()
            )
            return {event_id for event_id, key in keys.items() if key not in done}

    # -- hook runs (the outbox itself is handlers/hook_outbox.py) --------------------------

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

    # -- retention -------------------------------------------------------------------------

    def prune(self, older_than: timedelta) -> int:
        """Delete finished event records (and their hook runs) older than ``older_than``.

        Finished: processed, duplicate or stale, and every hook run of the event done. Dead
        letters wait for a decision (replay), and so does an event with a hook run pending,
        running or dead-lettered: a hook run needs its event's body to run or be replayed.
        The appointment history stays, so a pruned event delivered again is still a duplicate.
        This is the one pruning function: `engagehook prune` and the workers' schedule call it.
        """
        cutoff = utcnow() - older_than
        with self.transaction() as session:
            unfinished = select(HookRun.event_id).where(
                HookRun.state.not_in(FINISHED_HOOK_RUN_STATES)
            )
            old = select(EventRecord.id).where(
                EventRecord.state.in_(FINISHED_EVENT_STATES),
                EventRecord.processed_at < cutoff,
                EventRecord.id.not_in(unfinished),
            )
            session.execute(
                delete(HookRun).where(
                    HookRun.event_id.in_(old), HookRun.state.in_(FINISHED_HOOK_RUN_STATES)
                )
            )
            result = session.execute(delete(EventRecord).where(EventRecord.id.in_(old)))
            return int(cast(CursorResult[Any], result).rowcount or 0)


@contextmanager
def _transient_on_database_trouble() -> Iterator[None]:
    """An unreachable database or a lost connection becomes TransientError: the task retries."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise TransientError(f"store unavailable: {exc.__class__.__name__}") from exc
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise TransientError(f"store connection lost: {exc.__class__.__name__}") from exc


# Declarative classes type __table__ as a FromClause; these are the mapped Tables.
_EVENTS = cast(Table, EventRecord.__table__)
_APPOINTMENTS = cast(Table, Appointment.__table__)
_HISTORY = cast(Table, AppointmentChange.__table__)
_HOOK_RUNS = cast(Table, HookRun.__table__)

_LOCK_EVENT_THEN_APPOINTMENT = text(
    # A 64-bit hash of each key: a collision only serialises two unrelated writers.
    "SELECT pg_advisory_xact_lock(hashtextextended(:event_key, 0)),"
    " pg_advisory_xact_lock(hashtextextended(:appointment_key, 0))"
)


def event_lock_key(event_id: str) -> str:
    """The advisory-lock key every writer of this event id takes (see ``Store._lock``)."""
    return f"event:{event_id}"


def appointment_lock_key(appointment_id: str) -> str:
    """The advisory-lock key every writer of this appointment takes."""
    return f"appointment:{appointment_id}"


def _is_older(event: AppointmentEvent, stored_updated_at: datetime, stored_event_id: str) -> bool:
    """True when the stored state is newer; equal instants break ties on the event id.

    The tie-break makes two events with the same ``updatedAt`` converge to the same winner
    whatever their delivery order (the larger id), instead of to whichever came last.
    """
    return (event.updated_at, event.id) < (stored_updated_at, stored_event_id)


def _by_appointment(column: Any) -> Any:
    return select(column).where(_APPOINTMENTS.c.id == bindparam("appointment_id")).scalar_subquery()


# Everything applying an event needs to know, in one round trip: the event id's state, whether
# the history holds its effect (its record may have been pruned) and the stored appointment.
_READ_BEFORE_APPLY = select(
    select(_EVENTS.c.state)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .scalar_subquery()
    .label("state"),
    exists().where(_HISTORY.c.event_id == bindparam("event_id")).label("applied"),
    _by_appointment(_APPOINTMENTS.c.updated_at).label("updated_at"),
    _by_appointment(_APPOINTMENTS.c.last_event_id).label("last_event_id"),
    _by_appointment(_APPOINTMENTS.c.snapshot).label("snapshot"),
)

_COUNT_DUPLICATE = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(duplicates=_EVENTS.c.duplicates + 1)
)


def _write_effect(
    conn: Connection,
    event: AppointmentEvent,
    tx: AppointmentTransaction,
    stored: bool,
    hook_names: Sequence[str],
    now: datetime,
) -> tuple[int, ...]:
    """Write what an applied event did: the appointment, its history row and the hook runs."""
    if tx.row is not None:
        if stored:
            conn.execute(
                update(_APPOINTMENTS).where(_APPOINTMENTS.c.id == event.appointment_id), tx.row
            )
        else:
            conn.execute(
                insert(_APPOINTMENTS), {**tx.row, "id": event.appointment_id, "first_seen_at": now}
            )
    conn.execute(
        insert(_HISTORY),
        {
            "appointment_id": event.appointment_id,
            "event_id": event.id,
            "event_type": event.event_type,
            "updated_at": event.updated_at,
            "changes": _jsonable(tx.changes),
            "applied_at": now,
        },
    )
    return hook_outbox.queue_runs(
        conn,
        event_id=event.id,
        event_type=event.event_type,
        appointment_id=event.appointment_id,
        hook_names=hook_names,
        prior_state=tx.current,
        now=now,
    )


_ANOTHER_ATTEMPT = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("record_id"))
    .values(attempts=_EVENTS.c.attempts + 1)
)


def _write_record(
    conn: Connection, event_id: str, state: str | None, values: dict[str, Any], now: datetime
) -> None:
    """Insert the event's record, or update the one an earlier failed attempt left."""
    if state is None:
        conn.execute(
            insert(_EVENTS),
            {**values, "id": event_id, "received_at": now, "attempts": 1, "duplicates": 0},
        )
    else:
        conn.execute(_ANOTHER_ATTEMPT, {**values, "record_id": event_id})


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _event_dict(
    record: EventRecord, hooks: Sequence[HookRun], *, with_body: bool = True
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": record.id,
        "state": record.state,
        "eventType": record.event_type,
        "appointmentId": record.appointment_id,
        "appointmentUpdatedAt": _iso(record.appointment_updated_at),
        "reason": record.reason,
        "errors": record.errors or [],
        "receivedAt": _iso(record.received_at),
        "processedAt": _iso(record.processed_at),
        "attempts": record.attempts,
        "duplicates": record.duplicates,
        "hooks": [hook_outbox.hook_run_dict(run) for run in hooks],
    }
    if with_body:
        out["rawBody"] = record.raw_body
    return out


CONNECT_TIMEOUT_SECONDS = 5
LOCK_TIMEOUT_SECONDS = 10
STATEMENT_TIMEOUT_SECONDS = 60


def make_engine(url: str) -> Engine:
    """An engine tuned for the store: WAL and IMMEDIATE writers on SQLite, pre-ping on servers."""
    if url.startswith("sqlite"):
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
            read_only = conn.get_execution_options().get(_READ_ONLY, False)
            conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

        return engine
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
