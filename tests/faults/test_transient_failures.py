"""Transient failures: retried with exponential backoff and jitter, then dead-lettered with why.

The first class drives the real task code through Celery's ``apply`` (retries run at once,
the countdown is computed but not waited) with stores that fail on purpose; the last test
cuts a real worker process off its PostgreSQL through a TCP proxy.
"""

from __future__ import annotations

import json
import time

import pytest

from core.config import Settings
from handlers.errors import TransientError
from handlers.store import Store
from ingest.queue import CeleryQueue
from tests.builders import envelope
from tests.faults.deployment import Deployment
from tests.faults.harness import TcpProxy
from workers import tasks
from workers.celery_app import create_celery_app


class FailingStore(Store):
    """A real SQLite store whose writes fail transiently during the first ``failures`` attempts.

    An attempt is one delivery (one ``apply``). ``what`` names the operations that fail:
    ``apply`` alone models a lock timeout on the appointment; every write models a database
    that cannot be reached at all.
    """

    def __init__(self, url: str, *, failures: int, what: tuple[str, ...]) -> None:
        super().__init__(url)
        self.failures = failures
        self.what = what
        self.calls: list[str] = []

    def _maybe_fail(self, operation: str) -> None:
        self.calls.append(operation)
        if operation in self.what and self.calls.count("apply") <= self.failures:
            raise TransientError("store unavailable: lock timeout (canceling statement)")

    def apply(self, *args, **kwargs):
        self._maybe_fail("apply")
        return super().apply(*args, **kwargs)

    def mark_retrying(self, **kwargs):
        self._maybe_fail("mark_retrying")
        return super().mark_retrying(**kwargs)

    def dead_letter(self, **kwargs):
        self._maybe_fail("dead_letter")
        return super().dead_letter(**kwargs)


@pytest.fixture
def failing_store(tmp_path, worker_store):
    def build(failures: int, what: tuple[str, ...]) -> FailingStore:
        url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return worker_store(FailingStore(url, failures=failures, what=what))

    return build


@pytest.fixture
def countdowns(monkeypatch):
    """The countdown every retry asked for, in order (computed by the real formula)."""
    asked: list[float] = []
    real = tasks.retry_countdown

    def record(retries: int) -> float:
        asked.append(real(retries))
        return asked[-1]

    monkeypatch.setattr(tasks, "retry_countdown", record)
    return asked


def run_task(event_id: str) -> str:
    raw = json.dumps(envelope(event_id=event_id, appointment_id=f"appt-{event_id}"))
    return tasks.process_webhook.apply(args=[raw]).get()


class TestRetryThenDeadLetter:
    def test_lock_timeouts_retry_then_dead_letter_with_the_reason(self, failing_store, countdowns):
        store = failing_store(failures=1_000, what=("apply",))
        assert run_task("e-lock") == "dead_lettered:transient"
        record = store.get_event("e-lock")
        assert record["state"] == "dead_lettered"
        assert record["reason"].startswith(f"gave up after {tasks.EVENT_MAX_RETRIES} retries")
        assert "lock timeout" in record["reason"]
        assert record["errors"][0]["message"] == record["reason"]
        assert store.calls.count("apply") == tasks.EVENT_MAX_RETRIES + 1
        assert len(countdowns) == tasks.EVENT_MAX_RETRIES

    def test_a_failure_that_clears_is_retried_and_then_processed(self, failing_store, countdowns):
        store = failing_store(failures=2, what=("apply",))
        assert run_task("e-clears") == "processed:CREATE"
        record = store.get_event("e-clears")
        assert record["state"] == "processed"
        assert len(countdowns) == 2

    def test_retrying_is_recorded_while_the_store_takes_writes(self, failing_store, countdowns):
        store = failing_store(failures=1_000, what=("apply",))
        seen = []
        original = store.mark_retrying

        def spy(**kwargs):
            original(**kwargs)
            seen.append(store.get_event(kwargs["event_id"])["state"])

        store.mark_retrying = spy
        run_task("e-seen")
        assert seen and set(seen) == {"retrying"}

    def test_store_down_past_the_retry_budget_keeps_retrying_instead_of_losing_it(
        self, failing_store, countdowns
    ):
        # Every write fails for longer than the retry budget, dead letter included: the task
        # must not be acknowledged with nothing recorded; it keeps retrying until the store
        # is back, and then the event is simply processed.
        store = failing_store(
            failures=3 * (tasks.EVENT_MAX_RETRIES + 1),
            what=("apply", "mark_retrying", "dead_letter"),
        )
        assert run_task("e-down") == "processed:CREATE"
        assert store.get_event("e-down")["state"] == "processed"
        assert len(countdowns) > tasks.EVENT_MAX_RETRIES

    def test_an_unexpected_error_is_dead_lettered_with_the_body_not_acknowledged_away(
        self, failing_store, countdowns, monkeypatch
    ):
        store = failing_store(failures=0, what=())

        def broken(*args, **kwargs):
            raise ValueError("a bug")

        monkeypatch.setattr(tasks, "process", broken)  # any bug in processing code
        assert run_task("e-bug") == "dead_lettered:worker-error"
        record = store.get_event("e-bug")
        assert record["state"] == "dead_lettered"
        assert record["reason"] == "worker error: ValueError: a bug"
        assert json.loads(record["rawBody"])["id"] == "e-bug"


class TestBackoff:
    @pytest.mark.parametrize("retries", range(8))
    def test_countdown_is_jittered_below_an_exponential_ceiling(self, retries):
        ceiling = tasks.backoff_ceiling(retries, tasks.RETRY_BACKOFF_FACTOR)
        samples = [tasks.retry_countdown(retries) for _ in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
        assert len(set(samples)) > 1  # jitter: retries of many events do not stampede together
        if ceiling >= 4:
            assert max(samples) > ceiling / 2  # the ceiling grows, so do the waits

    def test_all_retries_together_outlast_a_minute_long_outage_and_stay_under_the_timeout(self):
        schedules = [
            sum(tasks.retry_countdown(n) for n in range(tasks.EVENT_MAX_RETRIES))
            for _ in range(500)
        ]
        assert min(schedules) >= 60
        assert max(schedules) <= 122 < Settings.from_env({}).visibility_timeout


@pytest.mark.slow
def test_worker_cut_off_its_database_retries_and_loses_nothing(tmp_path, postgres_url):
    """A real worker whose PostgreSQL connections are reset for a while."""
    from urllib.parse import urlsplit
    from urllib.parse import urlunsplit

    parts = urlsplit(postgres_url)
    proxy = TcpProxy((parts.hostname, parts.port or 5432))
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    try:
        with Deployment(
            tmp_path, proxied, visibility_timeout=None, ledger_url=postgres_url
        ) as deployment:
            deployment.start_worker(concurrency=2)
            queue = CeleryQueue(create_celery_app(Settings.from_env(deployment.env)))
            proxy.cut()
            ids = [f"db-down-{n}" for n in range(20)]
            for event_id in ids:
                raw = json.dumps(envelope(event_id=event_id, appointment_id=f"appt-{event_id}"))
                assert (
                    queue.enqueue(raw, event_id=event_id, event_type="CREATE", appointment_id=None)
                    == "queued"
                )
            time.sleep(6)  # past several retries (1 s, 2 s, 4 s ceilings)
            assert deployment.ledger.outcomes(ids) == {}
            proxy.restore()
            deployment.ledger.assert_exactly_once(ids, timeout=120)
    finally:
        proxy.close()
