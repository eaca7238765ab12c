"""The hook outbox: runs written with their event, claimed one attempt at a time, finished once.

A run's life::

    pending ──claim──▶ running ──finish──▶ done
       ▲                  │    └─────────▶ dead_lettered (attempts used up, or PermanentError)
       └────release───────┘    (a failed attempt waits out its backoff as pending)

Every attempt takes a claim with a fresh token and a lease (``lease_expires_at``), and counts
itself in ``attempts`` before the hook runs: an attempt whose process dies (``os._exit``, a
SIGKILL, the hard time limit) has been counted, and once the lease expires the next claim
either starts the next attempt or, the attempts being used up, dead-letters the run. While a
lease holds, every other delivery of the run (Redis redelivers a message with the same task
id after VISIBILITY_TIMEOUT; the sweeper republishes) is told to come back later, so a run
never executes twice at the same time. Only the holder of the token can finish or release.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

from sqlalchemy import Table
from sqlalchemy import and_
from sqlalchemy import insert
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.engine import CursorResult

from core.states import FINISHED_HOOK_RUN_STATES
from handlers import hook_registrations
from handlers.models import AppointmentChange
from handlers.models import EventRecord
from handlers.models import HookRun
from handlers.models import utcnow
from handlers.storable import label
from handlers.views import hook_run_view

if TYPE_CHECKING:
    from handlers.store import Store

# last_error is for operators (behind ADMIN_TOKEN); a hook's message is cut to this length.
MAX_ERROR_CHARS = 1000

_HOOK_RUNS = cast(Table, HookRun.__table__)


@dataclass(frozen=True)
class HookClaim:
    """One attempt's hold on a hook run: only the holder of ``token`` may finish or release it."""

    run_id: int
    token: str
    hook_name: str
    event_id: str
    event_type: str
    attempt: int  # 1 for the first attempt
    lease_expires_at: datetime
    raw_body: str
    changes: Mapping[str, Any]
    prior_state: Mapping[str, Any] | None


@dataclass(frozen=True)
class Busy:
    """Another attempt holds the run (or it waits out a backoff): come back in ``retry_in`` s."""

    retry_in: float


@dataclass(frozen=True)
class Finished:
    """Nothing to run: the run is over (``state``), or unknown (``state`` is None).

    ``just_now`` is True when this claim itself ended it (its attempts were used up by attempts
    that never reported back, or its event record is gone).
    """

    state: str | None
    just_now: bool = False
    hook_name: str | None = None
    event_id: str | None = None
    attempts: int = 0


ClaimResult = HookClaim | Busy | Finished


def queue_runs(
    conn: Connection,
    *,
    event_id: str,
    event_type: str,
    appointment_id: str,
    hook_names: Sequence[str],
    prior_state: Mapping[str, Any] | None,
    now: datetime,
) -> tuple[int, ...]:
    """Write one pending run per hook, in the transaction that applies the event.

    The hooks are ``hook_names`` (the applying worker's) and every hook of the event's type
    that a worker of the deployment registered recently (handlers/hook_registrations.py).
    """
    recent = hook_registrations.registered_names(conn, event_type, now)
    hook_names = list(dict.fromkeys([*hook_names, *recent]))
    # One INSERT per hook (there are few): inserted_primary_key works on every backend,
    # where a multi-row RETURNING needs SQLite 3.35 or newer.
    return tuple(
        _inserted_id(
            conn.execute(
                insert(_HOOK_RUNS),
                {
                    "event_id": event_id,
                    "event_type": event_type,
                    "appointment_id": appointment_id,
                    "hook_name": name,
                    "state": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "prior_state": dict(prior_state) if prior_state is not None else None,
                },
            )
        )
        for name in hook_names
    )


def claim(
    store: Store,
    run_id: int,
    *,
    lease: timedelta,
    max_attempts: int,
    now: datetime | None = None,
) -> ClaimResult:
    """Start the next attempt of a run: a claim, a Busy to come back later, or Finished."""
    with store.transaction() as session:
        run = session.get(HookRun, run_id, with_for_update=True)
        if run is None:
            return Finished(None)
        if run.state in FINISHED_HOOK_RUN_STATES:
            return Finished(run.state, hook_name=run.hook_name, event_id=run.event_id)
        now = now or utcnow()
        if run.lease_expires_at is not None and run.lease_expires_at > now:
            return Busy((run.lease_expires_at - now).total_seconds())
        if run.state == "running":
            # The lease ran out and the attempt never reported back: its process died.
            run.last_error = _lost_attempt(run.attempts)
        if run.attempts >= max_attempts:
            run.state, run.finished_at, run.claimed_by = "dead_lettered", now, None
            return Finished(
                "dead_lettered",
                just_now=True,
                hook_name=run.hook_name,
                event_id=run.event_id,
                attempts=run.attempts,
            )
        record = session.get(EventRecord, run.event_id)
        if record is None:
            # Without the body the hook cannot run; end the run instead of letting the
            # sweeper republish it forever.
            run.state, run.finished_at = "dead_lettered", now
            run.last_error = "the event record is gone (pruned): nothing to run the hook on"
            return Finished(
                "dead_lettered", just_now=True, hook_name=run.hook_name, event_id=run.event_id
            )
        changes = session.scalar(
            select(AppointmentChange.changes).where(AppointmentChange.event_id == run.event_id)
        )
        token = uuid.uuid4().hex
        expires = now + lease
        run.state, run.claimed_by, run.claimed_at = "running", token, now
        run.lease_expires_at = expires
        run.attempts = (run.attempts or 0) + 1  # counted before the hook runs: a crash counts
        return HookClaim(
            run_id=run.id,
            token=token,
            hook_name=run.hook_name,
            event_id=run.event_id,
            event_type=run.event_type,
            attempt=run.attempts,
            lease_expires_at=expires,
            raw_body=record.raw_body,
            changes=changes or {},
            prior_state=run.prior_state,
        )


def finish(store: Store, held: HookClaim, *, state: str, error: str | None = None) -> bool:
    """End the run as ``state`` (done or dead_lettered); False if the claim was lost meanwhile."""
    with store.transaction() as session:
        result = session.execute(
            update(HookRun)
            .where(_held_by(held))
            .values(
                state=state,
                last_error=_bounded(error),
                finished_at=utcnow(),
                claimed_by=None,
                lease_expires_at=None,
            )
        )
        return _changed_one(result)


def release(store: Store, held: HookClaim, *, error: str | None, retry_in: float) -> bool:
    """A failed attempt: back to pending, held for its backoff so only its retry takes it."""
    with store.transaction() as session:
        result = session.execute(
            update(HookRun)
            .where(_held_by(held))
            .values(
                state="pending",
                last_error=_bounded(error),
                claimed_by=None,
                lease_expires_at=utcnow() + timedelta(seconds=retry_in),
            )
        )
        return _changed_one(result)


def lost_runs(store: Store, older_than: timedelta, now: datetime | None = None) -> list[int]:
    """Unfinished runs whose message may have been lost: republish them.

    That is runs pending that long after their commit with no lease (their publish failed),
    and runs whose lease (or backoff) ended that long ago with nobody claiming them again.
    """
    cutoff = (now or utcnow()) - older_than
    with store.transaction(read_only=True) as session:
        return list(
            session.scalars(
                select(HookRun.id)
                .where(
                    HookRun.state.in_(("pending", "running")),
                    or_(
                        and_(HookRun.lease_expires_at.is_(None), HookRun.created_at < cutoff),
                        HookRun.lease_expires_at < cutoff,
                    ),
                )
                .order_by(HookRun.id)
            ).all()
        )


def list_runs(
    store: Store, *, state: str | None = None, limit: int = 100, after_id: int | None = None
) -> list[dict[str, Any]]:
    """A page of hook runs, newest first (``after_id``: continue below that id)."""
    with store.transaction(read_only=True) as session:
        query = select(HookRun).order_by(HookRun.id.desc()).limit(limit)
        if state:
            query = query.where(HookRun.state == state)
        if after_id is not None:
            query = query.where(HookRun.id < after_id)
        return [hook_run_view(run) for run in session.scalars(query).all()]


def dead_runs(store: Store) -> list[dict[str, Any]]:
    """Hook runs that ended dead-lettered, with their reason, oldest first."""
    with store.transaction(read_only=True) as session:
        runs = session.scalars(
            select(HookRun).where(HookRun.state == "dead_lettered").order_by(HookRun.id)
        ).all()
        return [hook_run_view(run) for run in runs]


def requeue(store: Store, run_id: int) -> bool:
    """Make a dead-lettered run pending again with fresh attempts; publish it afterwards."""
    with store.transaction() as session:
        result = session.execute(
            update(HookRun)
            .where(HookRun.id == run_id, HookRun.state == "dead_lettered")
            .values(
                state="pending",
                attempts=0,
                finished_at=None,
                claimed_by=None,
                lease_expires_at=None,
            )
        )
        return _changed_one(result)


def _held_by(held: HookClaim) -> Any:
    return and_(
        HookRun.id == held.run_id, HookRun.claimed_by == held.token, HookRun.state == "running"
    )


def _lost_attempt(attempt: int) -> str:
    return (
        f"attempt {attempt} did not finish: its worker process died or was killed at the time limit"
    )


def _bounded(error: str | None) -> str | None:
    # A hook's message may hold anything, a NUL included: the store must always take it.
    return label(error, MAX_ERROR_CHARS)


def _changed_one(result: Any) -> bool:
    """Whether an UPDATE matched exactly one row (the claim was still ours, the run was there)."""
    return cast(CursorResult[Any], result).rowcount == 1


def _inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has one
    return int(key[0])
