"""Retention: which finished records may be deleted, decided in one statement pair.

This is the one pruning function: ``engagehook prune`` and the workers' schedule
(workers/retention.py) call it through ``Store.prune``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.engine import CursorResult

from core.states import FINISHED_EVENT_STATES
from core.states import PRUNABLE_HOOK_RUN_STATES
from handlers.models import EventRecord
from handlers.models import HookRun
from handlers.models import utcnow

if TYPE_CHECKING:
    from handlers.store import Store


def prune(store: Store, older_than: timedelta) -> int:
    """Delete finished event records (and their hook runs) older than ``older_than``.

    Finished: processed, duplicate or stale, and every hook run of the event done. Dead
    letters wait for a decision (replay), and so does an event with a hook run pending,
    running or dead-lettered: a hook run needs its event's body to run or be replayed.
    The appointment history stays, so a pruned event delivered again is still a duplicate.
    """
    cutoff = utcnow() - older_than
    with store.transaction() as session:
        unfinished = select(HookRun.event_id).where(HookRun.state.not_in(PRUNABLE_HOOK_RUN_STATES))
        old = select(EventRecord.id).where(
            EventRecord.state.in_(FINISHED_EVENT_STATES),
            EventRecord.processed_at < cutoff,
            EventRecord.id.not_in(unfinished),
        )
        session.execute(
            delete(HookRun).where(
                HookRun.event_id.in_(old), HookRun.state.in_(PRUNABLE_HOOK_RUN_STATES)
            )
        )
        result = session.execute(delete(EventRecord).where(EventRecord.id.in_(old)))
        return int(cast(CursorResult[Any], result).rowcount or 0)
