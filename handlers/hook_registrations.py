"""Which hooks the deployment has: each worker records the hooks it loaded, per eventType.

The transaction that applies an event queues a run for every hook of its eventType that any
worker recorded within REGISTRATION_TTL, besides the hooks of the worker applying it. So in a
rolling deploy, an event applied by a worker that does not have a new hook yet still gets
its run, and the run executes on a hooks worker that has it (a worker that lacks a hook
fails the attempt and the run is retried, see workers/tasks.py).

Workers record at start, before they take a message, and again every REFRESH_INTERVAL from
the sweeper loop. A hook removed from the deployment stops getting runs REGISTRATION_TTL
after the last worker that had it stopped; the runs queued meanwhile end dead-lettered
after their retries, and can be replayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine

from handlers.models import HookRegistration
from handlers.models import utcnow

# A worker refreshes its registrations this often, and they count for this long: several
# missed refreshes (a store outage, a slow sweeper) do not drop a hook that is still there.
REFRESH_INTERVAL = timedelta(minutes=1)
REGISTRATION_TTL = timedelta(minutes=10)

_TABLE = HookRegistration.__table__


def record(engine: Engine, hooks: Mapping[str, Sequence[str]], now: datetime | None = None) -> int:
    """Say that this worker has these hooks (name → eventTypes), in one upsert statement."""
    rows = [
        {"hook_name": name, "event_type": event_type, "last_seen_at": now or utcnow()}
        for name, event_types in hooks.items()
        for event_type in event_types
    ]
    if not rows:
        return 0
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_TABLE).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[_TABLE.c.hook_name, _TABLE.c.event_type],
        set_={"last_seen_at": statement.excluded.last_seen_at},
    )
    with engine.begin() as conn:
        conn.execute(statement)
    return len(rows)


def registered_names(conn: Connection, event_type: str, now: datetime) -> list[str]:
    """Hooks for ``event_type`` some worker recorded within REGISTRATION_TTL, by name."""
    return list(
        conn.scalars(
            select(_TABLE.c.hook_name)
            .where(
                _TABLE.c.event_type == event_type,
                _TABLE.c.last_seen_at >= now - REGISTRATION_TTL,
            )
            .order_by(_TABLE.c.hook_name)
        ).all()
    )
