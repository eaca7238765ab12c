"""The operators' read side: filters, validation and cursor pagination (handlers/queries.py)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from handlers import HANDLERS
from handlers import queries
from handlers.models import EventRecord
from handlers.queries import EventFilter
from handlers.queries import InvalidQuery
from handlers.store import Store
from tests.handlers.builders import event

BASE = datetime(2024, 5, 1, 22, 0, tzinfo=UTC)


def record(store: Store, event_id: str, *, minutes: int, state: str = "processed", **values):
    """An event record received ``minutes`` after BASE, written directly."""
    with store.transaction() as session:
        session.add(
            EventRecord(
                id=event_id,
                state=state,
                raw_body='{"customer": "Ada Lovelace"}',
                received_at=BASE + timedelta(minutes=minutes),
                attempts=1,
                duplicates=0,
                **values,
            )
        )


def all_pages(read, limit):
    items, cursor, pages = [], None, 0
    while True:
        page = read(limit=limit, cursor=cursor)
        items.extend(page.items)
        pages += 1
        if page.next is None:
            return items, pages
        cursor = page.next


class TestListEvents:
    def test_newest_first_without_raw_bodies(self, store):
        for i in range(3):
            record(store, f"e-{i}", minutes=i)
        page = queries.list_events(store, EventFilter())
        assert [item["id"] for item in page.items] == ["e-2", "e-1", "e-0"]
        assert page.next is None
        assert all("rawBody" not in item and "Ada" not in str(item) for item in page.items)

    def test_filters_combine(self, store):
        record(store, "a", minutes=1, event_type="CANCEL", appointment_id="ap-1")
        record(store, "b", minutes=2, event_type="CANCEL", appointment_id="ap-2")
        record(store, "c", minutes=3, event_type="CREATE", appointment_id="ap-1")
        record(store, "d", minutes=4, state="dead_lettered", event_type="CANCEL", reason="Invalid")
        found = queries.list_events(
            store, EventFilter(event_type="CANCEL", appointment_id="ap-1")
        ).items
        assert [item["id"] for item in found] == ["a"]
        window = EventFilter(since=BASE + timedelta(minutes=2), until=BASE + timedelta(minutes=4))
        assert [i["id"] for i in queries.list_events(store, window).items] == ["c", "b"]
        assert [
            i["id"] for i in queries.list_events(store, EventFilter(state="processed")).items
        ] == [
            "c",
            "b",
            "a",
        ]

    def test_dead_letters_match_a_part_of_the_reason_in_any_case(self, store):
        record(store, "x", minutes=1, state="dead_lettered", reason="gave up after 6 retries: x")
        record(store, "y", minutes=2, state="dead_lettered", reason="invalid")
        record(store, "z", minutes=3, state="processed", reason="gave up (not dead)")
        found = queries.list_dead_letters(store, EventFilter(reason="GAVE UP")).items
        assert [item["id"] for item in found] == ["x"]

    def test_like_wildcards_in_the_reason_are_literal(self, store):
        record(store, "x", minutes=1, state="dead_lettered", reason="invalid")
        assert queries.list_dead_letters(store, EventFilter(reason="%")).items == []

    def test_the_cursor_is_stable_under_inserts(self, store):
        for i in range(5):
            record(store, f"e-{i}", minutes=i)
        first = queries.list_events(store, EventFilter(), limit=2)
        record(store, "newer", minutes=10)  # arrives while the operator reads page one
        second = queries.list_events(store, EventFilter(), limit=2, cursor=first.next)
        assert [i["id"] for i in first.items] == ["e-4", "e-3"]
        assert [i["id"] for i in second.items] == ["e-2", "e-1"]

    def test_records_received_at_the_same_instant_are_each_listed_once(self, store):
        for name in "abcde":
            record(store, name, minutes=0)
        items, pages = all_pages(lambda **kw: queries.list_events(store, EventFilter(), **kw), 2)
        assert [i["id"] for i in items] == list("edcba")
        assert pages == 3


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    minutes=st.lists(st.integers(0, 5), min_size=0, max_size=12),
    limit=st.integers(1, 5),
)
def test_paging_lists_every_record_once_newest_first(sqlite_store, minutes, limit):
    with sqlite_store.transaction() as session:
        session.query(EventRecord).delete()
    for i, minute in enumerate(minutes):
        record(sqlite_store, f"e-{i:02d}", minutes=minute)
    items, _ = all_pages(lambda **kw: queries.list_events(sqlite_store, EventFilter(), **kw), limit)
    expected = sorted(((minute, f"e-{i:02d}") for i, minute in enumerate(minutes)), reverse=True)
    assert [item["id"] for item in items] == [event_id for _, event_id in expected]


class TestValidation:
    @pytest.mark.parametrize(
        ("params", "parameter"),
        [
            ({"state": "lost"}, "state"),
            ({"since": "yesterday"}, "since"),
            ({"until": "2024-13-01"}, "until"),
            ({"since": "2024-05-02", "until": "2024-05-01"}, "until"),
        ],
    )
    def test_bad_filters_name_the_parameter(self, params, parameter):
        with pytest.raises(InvalidQuery) as refused:
            queries.parse_event_filter(params)
        assert refused.value.parameter == parameter
        assert refused.value.message

    @pytest.mark.parametrize("value", ["0", "501", "ten", "-1"])
    def test_limit_out_of_bounds_is_refused(self, value):
        with pytest.raises(InvalidQuery, match="limit"):
            queries.parse_limit(value)

    def test_bad_cursor_is_refused(self, sqlite_store):
        with pytest.raises(InvalidQuery, match="cursor"):
            queries.list_events(sqlite_store, EventFilter(), cursor="not-a-cursor")

    def test_a_hook_run_cursor_is_not_an_event_cursor(self, sqlite_store):
        cursor = queries.encode_cursor(BASE, 7)
        with pytest.raises(InvalidQuery, match="cursor"):
            queries.list_events(sqlite_store, EventFilter(), cursor=cursor)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2024-05-01T22:00:00Z", BASE),
            ("2024-05-02T00:00:00+02:00", BASE),
            ("2024-05-01T22:00:00", BASE),  # no offset: UTC
            ("2024-05-01", BASE - timedelta(hours=22)),
            ("90m", BASE - timedelta(minutes=90)),
            ("7d", BASE - timedelta(days=7)),
        ],
    )
    def test_times_are_read_as_instants(self, text, expected):
        assert queries.parse_time("since", text, now=BASE) == expected

    def test_dead_letter_filter_ignores_a_state(self):
        assert queries.parse_event_filter({"state": "processed"}, dead_letters=True).state == (
            "dead_lettered"
        )


class TestHookRuns:
    def test_listed_newest_first_by_state_and_paged(self, sqlite_store):
        for i in range(3):
            evt = event("CANCEL", event_id=f"h-{i}", appointment_id=f"ap-{i}")
            sqlite_store.apply(evt, "{}", HANDLERS["CANCEL"], hook_names=["crm"])
        runs = queries.list_hook_runs(sqlite_store, state="pending", limit=2)
        assert [run["eventId"] for run in runs.items] == ["h-2", "h-1"]
        rest = queries.list_hook_runs(sqlite_store, state="pending", limit=2, cursor=runs.next)
        assert [run["eventId"] for run in rest.items] == ["h-0"]
        assert rest.next is None
        assert queries.list_hook_runs(sqlite_store, state="done").items == []

    def test_bad_state_is_refused(self):
        with pytest.raises(InvalidQuery, match="hook run state"):
            queries.parse_hook_state("failed")


def test_overview_counts_recent_states(sqlite_store):
    now = BASE + timedelta(hours=2)
    record(sqlite_store, "old", minutes=-60 * 30)
    record(sqlite_store, "day", minutes=0, state="dead_lettered")
    record(sqlite_store, "hour", minutes=90)
    counts = queries.count_recent(sqlite_store, now=now)
    assert counts.by_state["hour"] == {"processed": 1}
    assert counts.by_state["day"] == {"processed": 1, "dead_lettered": 1}
    assert counts.dead_letters == 1
