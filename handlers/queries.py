"""What operators read: filtered, cursor-paginated listings of events, dead letters, hook runs.

The admin API, the console and the CLI all call these functions, so a filter means the same
thing everywhere and is refused the same way (``InvalidQuery``, which the HTTP side answers
with 400). List items never carry raw bodies: the body (personal data) is read only for one
event at a time. Pages are ordered newest first and continued with an opaque cursor holding
the position of the last item (``received_at`` and id), so events arriving meanwhile never
shift or repeat what the next page shows.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import and_
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select

from core.states import EVENT_STATES
from core.states import HOOK_RUN_STATES
from handlers.models import EventRecord
from handlers.models import HookRun
from handlers.models import utcnow
from handlers.store import Store
from handlers.views import event_view
from handlers.views import hook_run_view
from handlers.views import iso

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Replay of "everything matching" walks the filter in pages of this size, up to the ceiling.
MATCH_PAGE = 500
MAX_MATCHED = 100_000
_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

# The list item of an event: everything of its record but the raw body, which is never loaded.
_EVENT_COLUMNS = (
    EventRecord.id,
    EventRecord.state,
    EventRecord.event_type,
    EventRecord.appointment_id,
    EventRecord.appointment_updated_at,
    EventRecord.reason,
    EventRecord.errors,
    EventRecord.received_at,
    EventRecord.processed_at,
    EventRecord.attempts,
    EventRecord.duplicates,
)


class InvalidQuery(ValueError):
    """A filter, limit or cursor that cannot be used; the message says what to send instead."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class EventFilter:
    """Which event records a listing or a replay covers; unset fields do not filter."""

    state: str | None = None
    event_type: str | None = None
    appointment_id: str | None = None
    reason: str | None = None  # a case-insensitive part of the reason
    since: datetime | None = None  # received at or after
    until: datetime | None = None  # received before

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters (the names the admin API takes)."""
        values = {
            "state": self.state,
            "event_type": self.event_type,
            "appointment_id": self.appointment_id,
            "reason": self.reason,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {key: value for key, value in values.items() if value}


@dataclass
class Page:
    """One page of a listing and the cursor of the next one (None on the last page)."""

    items: list[dict[str, Any]]
    next: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The ``{"items": [...], "next": ...}`` shape the admin API answers."""
        return {"items": self.items, "next": self.next}


@dataclass
class Counts:
    """What the overview shows: event states over recent windows and what needs a human."""

    by_state: dict[str, dict[str, int]] = field(default_factory=dict)  # window -> state -> n
    dead_letters: int = 0
    hook_runs: dict[str, int] = field(default_factory=dict)  # state -> n
    oldest_unfinished: str | None = None  # received_at of the oldest queued or retrying event


# -- parsing what callers send ------------------------------------------------------------------


def parse_time(
    parameter: str, value: str | None, *, now: datetime | None = None
) -> datetime | None:
    """An instant: ISO 8601 (an offset or Z; none means UTC), a date, or 90m, 12h, 7d ago."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        amount, unit = int(relative[1]), relative[2]
        return (now or utcnow()) - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidQuery(
            parameter,
            f"{value!r} is not a time: send ISO 8601 (2024-05-01T22:00:00Z), a date "
            "(2024-05-01) or a duration ago (90m, 12h, 7d)",
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_limit(value: str | int | None) -> int:
    """The page size: 1 to MAX_LIMIT, DEFAULT_LIMIT when not given."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise InvalidQuery("limit", f"{value!r} is not a number: send 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery("limit", f"{limit} is out of bounds: send 1 to {MAX_LIMIT}")
    return limit


def parse_event_state(value: str | None) -> str | None:
    """One of the event states, or None."""
    if not value:
        return None
    if value not in EVENT_STATES:
        raise InvalidQuery(
            "state", f"{value!r} is not an event state: one of {', '.join(EVENT_STATES)}"
        )
    return value


def parse_hook_state(value: str | None) -> str | None:
    """One of the hook run states, or None."""
    if not value:
        return None
    if value not in HOOK_RUN_STATES:
        raise InvalidQuery(
            "state", f"{value!r} is not a hook run state: one of {', '.join(HOOK_RUN_STATES)}"
        )
    return value


def parse_event_filter(params: Mapping[str, Any], *, dead_letters: bool = False) -> EventFilter:
    """An EventFilter from query parameters (or a JSON body); unknown names are ignored."""

    def text(name: str) -> str | None:
        value = params.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidQuery(name, "send a string")
        return value.strip() or None

    since = parse_time("since", text("since"))
    until = parse_time("until", text("until"))
    if since and until and since >= until:
        raise InvalidQuery("until", "must be later than since")
    return EventFilter(
        state="dead_lettered" if dead_letters else parse_event_state(text("state")),
        event_type=text("event_type"),
        appointment_id=text("appointment_id"),
        reason=text("reason"),
        since=since,
        until=until,
    )


def encode_cursor(instant: datetime, key: str | int) -> str:
    """An opaque, URL-safe position after which the next page starts."""
    raw = orjson.dumps([instant.astimezone(UTC).isoformat(), key])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, Any] | None:
    """The position a cursor holds; InvalidQuery when it is not one of ours."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        instant, key = orjson.loads(raw)
        return datetime.fromisoformat(instant).astimezone(UTC), key
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise InvalidQuery(
            "cursor", "not a cursor this server gave out: send the `next` of the previous page"
        ) from None


# -- events ------------------------------------------------------------------------------------


def list_events(
    store: Store, filters: EventFilter, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page:
    """A page of event records matching ``filters``, newest first, without raw bodies."""
    position = decode_cursor(cursor)
    query = select(*_EVENT_COLUMNS).where(*_event_conditions(filters))
    if position is not None:
        instant, key = position
        if not isinstance(key, str):
            raise InvalidQuery("cursor", "not an event cursor: send the `next` of an events page")
        query = query.where(
            or_(
                EventRecord.received_at < instant,
                and_(EventRecord.received_at == instant, EventRecord.id < key),
            )
        )
    query = query.order_by(EventRecord.received_at.desc(), EventRecord.id.desc()).limit(limit + 1)
    with store.transaction(read_only=True) as session:
        rows = session.execute(query).all()
    items = [event_view(row) for row in rows[:limit]]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return Page(items, encode_cursor(last.received_at, last.id) if last is not None else None)


def list_dead_letters(
    store: Store, filters: EventFilter, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page:
    """A page of dead-lettered events (whatever state ``filters`` names)."""
    return list_events(store, _dead(filters), limit=limit, cursor=cursor)


def matching_dead_letter_ids(store: Store, filters: EventFilter) -> list[str]:
    """Every dead letter matching ``filters``, newest first (at most MAX_MATCHED)."""
    ids: list[str] = []
    cursor = None
    while len(ids) < MAX_MATCHED:
        page = list_dead_letters(store, filters, limit=MATCH_PAGE, cursor=cursor)
        ids.extend(item["id"] for item in page.items)
        cursor = page.next
        if cursor is None:
            break
    return ids[:MAX_MATCHED]


def _dead(filters: EventFilter) -> EventFilter:
    return replace(filters, state="dead_lettered")


def _event_conditions(filters: EventFilter) -> list[Any]:
    conditions: list[Any] = []
    if filters.state:
        conditions.append(EventRecord.state == filters.state)
    if filters.event_type:
        conditions.append(EventRecord.event_type == filters.event_type)
    if filters.appointment_id:
        conditions.append(EventRecord.appointment_id == filters.appointment_id)
    if filters.reason:
        pattern = "%" + _escape_like(filters.reason.lower()) + "%"
        conditions.append(func.lower(EventRecord.reason).like(pattern, escape="\\"))
    if filters.since:
        conditions.append(EventRecord.received_at >= filters.since)
    if filters.until:
        conditions.append(EventRecord.received_at < filters.until)
    return conditions


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- hook runs ---------------------------------------------------------------------------------


def list_hook_runs(
    store: Store,
    *,
    state: str | None = None,
    event_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """A page of hook runs (in ``state``, or of one event), newest first."""
    position = decode_cursor(cursor)
    query = select(HookRun)
    if state:
        query = query.where(HookRun.state == state)
    if event_id:
        query = query.where(HookRun.event_id == event_id)
    if position is not None:
        _, key = position
        if not isinstance(key, int):
            raise InvalidQuery(
                "cursor", "not a hook run cursor: send the `next` of a hook runs page"
            )
        query = query.where(HookRun.id < key)
    query = query.order_by(HookRun.id.desc()).limit(limit + 1)
    with store.transaction(read_only=True) as session:
        runs = session.scalars(query).all()
    items = [hook_run_view(run) for run in runs[:limit]]
    last = runs[limit - 1] if len(runs) > limit else None
    return Page(items, encode_cursor(last.created_at, last.id) if last is not None else None)


def get_hook_run(store: Store, run_id: int) -> dict[str, Any] | None:
    """One hook run, or None."""
    with store.transaction(read_only=True) as session:
        run = session.get(HookRun, run_id)
        return hook_run_view(run) if run is not None else None


# -- the overview ------------------------------------------------------------------------------

WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def count_recent(store: Store, *, now: datetime | None = None) -> Counts:
    """Events by state over the last hour and day, dead letters, hook runs, the oldest pending."""
    now = now or utcnow()
    counts = Counts()
    with store.transaction(read_only=True) as session:
        for window, span in WINDOWS.items():
            rows = session.execute(
                select(EventRecord.state, func.count())
                .where(EventRecord.received_at >= now - span)
                .group_by(EventRecord.state)
            ).all()
            counts.by_state[window] = {state: int(n) for state, n in rows}
        counts.dead_letters = int(
            session.scalar(
                select(func.count())
                .select_from(EventRecord)
                .where(EventRecord.state == "dead_lettered")
            )
            or 0
        )
        rows = session.execute(select(HookRun.state, func.count()).group_by(HookRun.state)).all()
        counts.hook_runs = {state: int(n) for state, n in rows}
        counts.oldest_unfinished = iso(
            session.scalar(
                select(func.min(EventRecord.received_at)).where(
                    EventRecord.state.in_(("queued", "retrying"))
                )
            )
        )
    return counts
