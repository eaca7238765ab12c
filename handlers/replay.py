"""Replay dead letters and re-run hook runs: one step with the publish, never left in limbo.

A dead letter stays a dead letter until the broker holds its message: the body is published
first (by the caller's publish function, the same one ingest uses for a webhook, so a replay
is tracked in flight like any delivery), and only then is the record marked ``queued``, and
only if nothing touched it meanwhile. A worker that already took the message and recorded a
new outcome wins (its dead letter has a newer ``processed_at``). A publish that fails leaves
the record exactly as it was, and the caller reports the id as failed.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from sqlalchemy import select
from sqlalchemy import update

from handlers.models import EventRecord
from handlers.models import HookRun
from handlers.store import Store

# publish(body, event_id=..., event_type=..., appointment_id=...) raises when not stored.
PublishWebhook = Callable[..., Any]
# publish_hook(run_id) raises when the broker did not take the message.
PublishHookRun = Callable[[int], Any]


@dataclass
class ReplayReport:
    """Which ids were (or, in a dry run, would be) replayed, which failed and why."""

    dry_run: bool = False
    replayed: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)  # {"id", "error"}

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        """The admin API's answer."""
        return {"dry_run": self.dry_run, "replayed": self.replayed, "failed": self.failed}


def replay_dead_letters(
    store: Store, publish: PublishWebhook, ids: Sequence[str], *, dry_run: bool = False
) -> ReplayReport:
    """Publish each dead letter of ``ids`` again; in a dry run only say which would be.

    Once the broker refused one message the rest are not tried (each attempt would wait for
    the same timeout); they are reported failed, still dead letters.
    """
    report = ReplayReport(dry_run=dry_run)
    broker_error: str | None = None
    for event_id in dict.fromkeys(ids):  # once each, in the order given
        found = _dead_letter(store, event_id)
        if found is None:
            report.failed.append({"id": event_id, "error": "not a dead letter"})
            continue
        if dry_run:
            report.replayed.append(event_id)
            continue
        if broker_error is not None:
            report.failed.append({"id": event_id, "error": f"not tried: {broker_error}"})
            continue
        try:
            publish(
                found.raw_body,
                event_id=event_id,
                event_type=found.event_type,
                appointment_id=found.appointment_id,
            )
        except Exception as exc:  # noqa: BLE001 - any failure means "the broker does not hold it"
            broker_error = _describe(exc)
            report.failed.append({"id": event_id, "error": broker_error})
            continue
        _mark_queued(store, event_id, found)
        report.replayed.append(event_id)
    return report


def _dead_letter(store: Store, event_id: str) -> Any:
    """The dead letter's body, identifiers and version; None when ``event_id`` is not one."""
    with store.transaction(read_only=True) as session:
        return session.execute(
            select(
                EventRecord.raw_body,
                EventRecord.event_type,
                EventRecord.appointment_id,
                EventRecord.processed_at,
                EventRecord.attempts,
            ).where(EventRecord.id == event_id, EventRecord.state == "dead_lettered")
        ).one_or_none()


def _mark_queued(store: Store, event_id: str, seen: Any) -> None:
    """Queued again, unless a worker recorded a newer outcome since we read the dead letter."""
    with store.transaction() as session:
        session.execute(
            update(EventRecord)
            .where(
                EventRecord.id == event_id,
                EventRecord.state == "dead_lettered",
                EventRecord.processed_at == seen.processed_at,
                EventRecord.attempts == seen.attempts,
            )
            .values(state="queued")
        )


def replay_hook_runs(
    store: Store, publish: PublishHookRun, run_ids: Sequence[int], *, dry_run: bool = False
) -> ReplayReport:
    """Run each dead-lettered hook run of ``run_ids`` again.

    The run is made pending (the hook outbox's own "to do" state) before its message is
    published: if the publish fails, the worker's sweeper publishes it later, so nothing is
    lost, and the id is still reported failed so the operator knows it did not go out now.
    """
    report = ReplayReport(dry_run=dry_run)
    for run_id in dict.fromkeys(run_ids):
        if dry_run:
            if _is_dead_hook_run(store, run_id):
                report.replayed.append(str(run_id))
            else:
                report.failed.append({"id": str(run_id), "error": "not a dead-lettered hook run"})
            continue
        if not store.requeue_hook_run(run_id):
            report.failed.append({"id": str(run_id), "error": "not a dead-lettered hook run"})
            continue
        try:
            publish(run_id)
        except Exception as exc:  # noqa: BLE001 - the run is pending: the sweeper sends it later
            report.failed.append(
                {
                    "id": str(run_id),
                    "error": f"pending, but {_describe(exc)}; a worker's sweeper publishes it "
                    "once the broker is back",
                }
            )
            continue
        report.replayed.append(str(run_id))
    return report


def dead_hook_run_ids(store: Store) -> list[int]:
    """Every dead-lettered hook run, oldest first."""
    return [run["id"] for run in store.dead_hook_runs()]  # oldest first already


def _is_dead_hook_run(store: Store, run_id: int) -> bool:
    with store.transaction(read_only=True) as session:
        run = session.get(HookRun, run_id)
        return run is not None and run.state == "dead_lettered"


def _describe(exc: BaseException) -> str:
    """What went wrong: ingest's own message, else the class only (drivers may quote values)."""
    message = str(exc)
    if message.startswith("broker did not take the message"):
        return f"the {message}"
    return f"the broker did not take the message: {exc.__class__.__name__}"
