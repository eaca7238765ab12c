"""What ingest's operational routes may read from the store, and the replays they may start.

The admin API, the console, /readyz and /metrics call these functions and nothing else of
``handlers`` (``tests/test_layering.py`` holds them to ``__all__``): the listings and replays are
the same ones the CLI uses, and the probes open their own small, quick-to-give-up engine so a
slow database never stalls a health check or a scrape.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine
from sqlalchemy import event as sa_event
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select

from core.names import UNSUPPORTED_ENTITY
from core.states import EVENT_STATES
from handlers.models import EventRecord
from handlers.models import HookRun
from handlers.queries import InvalidQuery
from handlers.queries import count_recent
from handlers.queries import list_dead_letters
from handlers.queries import list_events
from handlers.queries import list_hook_runs
from handlers.queries import matching_dead_letter_ids
from handlers.queries import parse_event_filter
from handlers.queries import parse_hook_state
from handlers.queries import parse_limit
from handlers.replay import replay_dead_letters
from handlers.replay import replay_hook_runs
from handlers.store import Store

__all__ = [
    "EVENT_STATES",
    "InvalidQuery",
    "Store",
    "count_recent",
    "dead_letter_counts",
    "list_dead_letters",
    "list_events",
    "list_hook_runs",
    "matching_dead_letter_ids",
    "open_probe_store",
    "open_store",
    "parse_event_filter",
    "parse_hook_state",
    "parse_limit",
    "replay_dead_letters",
    "replay_hook_runs",
]

# A probe statement on PostgreSQL gives up after this long.
PROBE_STATEMENT_TIMEOUT_MS = 1000


def open_store(url: str) -> Store:
    """The store at ``url``, for listings and replays."""
    return Store(url)


def open_probe_store(url: str, timeout: float) -> Store:
    """The store at ``url`` on one pooled connection that waits at most about ``timeout``.

    For /readyz and /metrics: a probe must answer inside a load balancer's or a scraper's
    timeout, so it never queues behind the store's ordinary, patient connections.
    """
    if url.startswith("sqlite"):
        args: dict[str, Any] = {"timeout": timeout}
    elif url.startswith("postgres"):
        args = {"connect_timeout": max(1, round(timeout))}
    else:
        args = {}
    engine = create_engine(
        url,
        hide_parameters=True,  # SQL parameters never reach an error text
        pool_pre_ping=True,
        pool_size=1,
        max_overflow=0,
        connect_args=args,
    )
    if engine.dialect.name == "postgresql":

        @sa_event.listens_for(engine, "connect")
        def _bound_statements(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {PROBE_STATEMENT_TIMEOUT_MS}")
            dbapi_connection.commit()

    return Store(url, engine=engine)


def dead_letter_counts(store: Store) -> dict[str, int]:
    """Dead-lettered records by kind: ``event``, ``unsupported_entity`` and ``hook``.

    Payloads of another entity are kept, not broken: counted apart, so an alert on broken
    payloads does not fire for them.
    """
    dead = EventRecord.state == "dead_lettered"
    unsupported = EventRecord.reason == UNSUPPORTED_ENTITY
    other = or_(EventRecord.reason.is_(None), EventRecord.reason != UNSUPPORTED_ENTITY)
    with store.transaction(read_only=True) as session:
        events = session.scalar(select(func.count()).select_from(EventRecord).where(dead, other))
        entity = session.scalar(
            select(func.count()).select_from(EventRecord).where(dead, unsupported)
        )
        hooks = session.scalar(
            select(func.count()).select_from(HookRun).where(HookRun.state == "dead_lettered")
        )
    return {
        "event": int(events or 0),
        "unsupported_entity": int(entity or 0),
        "hook": int(hooks or 0),
    }
