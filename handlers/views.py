"""Stored rows as the JSON-ready values every reader prints: the CLI, the admin API, the console.

One rendering per kind of row, so an event or a hook run reads the same wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from handlers.models import HookRun


def iso(value: datetime | None) -> str | None:
    """An instant as ISO 8601 (the store gives aware UTC datetimes, see ``UTCDateTime``)."""
    return value.isoformat() if value else None


def event_view(
    record: Any, *, hooks: Sequence[HookRun] | None = None, with_body: bool = False
) -> dict[str, Any]:
    """An event record (an ``EventRecord`` or a row with its columns) without payload values.

    ``hooks`` adds the event's hook runs; ``with_body`` its raw body, which only the single
    event read (behind ADMIN_TOKEN or on the CLI) shows.
    """
    out: dict[str, Any] = {
        "id": record.id,
        "state": record.state,
        "eventType": record.event_type,
        "appointmentId": record.appointment_id,
        "appointmentUpdatedAt": iso(record.appointment_updated_at),
        "reason": record.reason,
        "errors": record.errors or [],
        "receivedAt": iso(record.received_at),
        "processedAt": iso(record.processed_at),
        "attempts": record.attempts,
        "duplicates": record.duplicates,
    }
    if hooks is not None:
        out["hooks"] = [hook_run_view(run) for run in hooks]
    if with_body:
        out["rawBody"] = record.raw_body
    return out


def hook_run_view(run: HookRun) -> dict[str, Any]:
    """A hook run (no payload values besides the operator's last error)."""
    return {
        "id": run.id,
        "eventId": run.event_id,
        "eventType": run.event_type,
        "appointmentId": run.appointment_id,
        "hook": run.hook_name,
        "state": run.state,
        "attempts": run.attempts,
        "lastError": run.last_error,
        "createdAt": iso(run.created_at),
        "claimedAt": iso(run.claimed_at),
        "finishedAt": iso(run.finished_at),
    }
