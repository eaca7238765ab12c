"""Retention runs by itself: the workers prune finished records on a schedule, nothing else."""

from __future__ import annotations

import threading
from datetime import timedelta

import fakeredis
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy import select

from core.config import ConfigError
from core.config import Settings
from handlers.models import EventRecord
from handlers.models import HookRun
from handlers.models import utcnow
from handlers.store import EVENT_STATES
from handlers.store import HOOK_RUN_STATES
from workers import sweeper
from workers.retention import RetentionSchedule
from workers.retention import redis_claim

DAYS = 30
OLD = timedelta(days=DAYS + 1)
RECENT = timedelta(days=DAYS - 1)


def add_event(store, event_id, state, age, hook_states=()):
    """One event record of ``state`` finished ``age`` ago, with hook runs in ``hook_states``."""
    with store.transaction() as session:
        session.add(
            EventRecord(
                id=event_id,
                state=state,
                raw_body="{}",
                event_type="CREATE",
                appointment_id="appt-1",
                processed_at=utcnow() - age,
            )
        )
        for n, hook_state in enumerate(hook_states):
            session.add(
                HookRun(
                    event_id=event_id,
                    event_type="CREATE",
                    appointment_id="appt-1",
                    hook_name=f"hook{n}",
                    state=hook_state,
                )
            )


def event_ids(store) -> set[str]:
    with store.transaction(read_only=True) as session:
        return set(session.scalars(select(EventRecord.id)))


def hook_run_states(store) -> list[tuple[str, str]]:
    with store.transaction(read_only=True) as session:
        return sorted(
            tuple(row) for row in session.execute(select(HookRun.event_id, HookRun.state))
        )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def schedule(store, days=DAYS, **kwargs) -> RetentionSchedule:
    return RetentionSchedule(Settings(retention_days=days), store, **kwargs)


class TestSchedulePrunes:
    def test_prunes_old_finished_records_and_keeps_everything_unfinished(self, store):
        add_event(store, "old-processed", "processed", OLD, ["done"])
        add_event(store, "old-stale", "stale", OLD)
        add_event(store, "old-duplicate", "duplicate", OLD)
        add_event(store, "recent-processed", "processed", RECENT)
        add_event(store, "old-dead-letter", "dead_lettered", OLD)
        add_event(store, "old-retrying", "retrying", OLD)
        add_event(store, "old-queued", "queued", OLD)
        add_event(store, "old-hook-pending", "processed", OLD, ["done", "pending"])
        add_event(store, "old-hook-running", "processed", OLD, ["running"])
        add_event(store, "old-hook-dead", "processed", OLD, ["dead_lettered"])

        assert schedule(store).run_if_due() == 3

        assert event_ids(store) == {
            "recent-processed",
            "old-dead-letter",
            "old-retrying",
            "old-queued",
            "old-hook-pending",
            "old-hook-running",
            "old-hook-dead",
        }
        # The done run of the pruned event went with it; the runs of kept events stay whole.
        assert hook_run_states(store) == [
            ("old-hook-dead", "dead_lettered"),
            ("old-hook-pending", "done"),
            ("old-hook-pending", "pending"),
            ("old-hook-running", "running"),
        ]

    def test_runs_once_per_interval_then_again(self, store):
        clock = FakeClock()
        retention = schedule(store, clock=clock, interval=3600)
        add_event(store, "e-1", "processed", OLD)
        assert retention.run_if_due() == 1
        add_event(store, "e-2", "processed", OLD)
        clock.now += 3599
        assert retention.run_if_due() is None
        assert "e-2" in event_ids(store)
        clock.now += 1
        assert retention.run_if_due() == 1
        assert event_ids(store) == set()

    def test_zero_days_is_off(self, store):
        add_event(store, "e-1", "processed", timedelta(days=3650))
        assert schedule(store, days=0).run_if_due() is None
        assert event_ids(store) == {"e-1"}

    def test_one_worker_of_many_prunes_per_interval(self, sqlite_store):
        client = fakeredis.FakeRedis()
        workers = [schedule(sqlite_store, claim=redis_claim(client)) for _ in range(3)]
        add_event(sqlite_store, "e-1", "processed", OLD)
        assert [w.run_if_due() for w in workers] == [1, None, None]
        assert 0 < client.ttl("engagehook.retention.claimed") <= 3600

    def test_the_workers_sweeper_loop_prunes_by_itself(self, sqlite_store, tmp_path, monkeypatch):
        settings = Settings(
            data_dir=tmp_path / "var",
            database_url=str(sqlite_store.engine.url),
            retention_days=DAYS,
        )
        add_event(sqlite_store, "old", "processed", OLD)
        add_event(sqlite_store, "dead", "dead_lettered", OLD)
        monkeypatch.setattr(sweeper, "SWEEP_INTERVAL_SECONDS", 0.05)
        loop = threading.Thread(target=sweeper._loop, args=(settings, None), daemon=True)
        loop.start()
        try:
            for _ in range(200):
                if "old" not in event_ids(sqlite_store):
                    break
                threading.Event().wait(0.05)
        finally:
            sweeper._stop.set()
            loop.join(timeout=30)
            sweeper._stop.clear()
        assert event_ids(sqlite_store) == {"dead"}


RECORDS = st.lists(
    st.tuples(
        st.sampled_from(EVENT_STATES),
        st.sampled_from([OLD, RECENT, timedelta(days=400)]),
        st.lists(st.sampled_from(HOOK_RUN_STATES), max_size=3),
    ),
    max_size=8,
)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=RECORDS)
def test_never_deletes_an_unfinished_or_recent_record(sqlite_store, records):
    with sqlite_store.transaction() as session:
        session.execute(delete(HookRun))
        session.execute(delete(EventRecord))
    for n, (state, age, hooks) in enumerate(records):
        add_event(sqlite_store, f"e-{n}", state, age, hooks)
    schedule(sqlite_store).run_if_due()
    for n, (state, age, hooks) in enumerate(records):
        finished = (
            state in ("processed", "duplicate", "stale")
            and age > timedelta(days=DAYS)
            and all(h == "done" for h in hooks)
        )
        assert (f"e-{n}" in event_ids(sqlite_store)) is not finished, (state, age, hooks)


class TestConfiguration:
    def test_embedded_mode_prunes_after_30_days_by_default(self):
        assert Settings.from_env({}).retention_days == 30

    def test_redis_mode_keeps_records_unless_told(self):
        env = {"REDIS_URL": "redis://r:6379/0", "DATABASE_URL": "postgresql://u@db/x"}
        assert Settings.from_env(env).retention_days == 0
        assert Settings.from_env({**env, "ENGAGEHOOK_RETENTION_DAYS": "14"}).retention_days == 14

    def test_zero_turns_embedded_retention_off(self):
        assert Settings.from_env({"ENGAGEHOOK_RETENTION_DAYS": "0"}).retention_days == 0

    @pytest.mark.parametrize("raw", ["-1", "thirty", "30d", "1.5", "100000"])
    def test_bad_values_are_refused_with_the_variable_name(self, raw):
        with pytest.raises(ConfigError, match="ENGAGEHOOK_RETENTION_DAYS"):
            Settings.from_env({"ENGAGEHOOK_RETENTION_DAYS": raw})
