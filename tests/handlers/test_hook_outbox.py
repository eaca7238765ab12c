"""handlers.hook_outbox: one attempt at a time per run, each counted before it runs."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import delete

from handlers import HANDLERS
from handlers import hook_outbox
from handlers.hook_outbox import Busy
from handlers.hook_outbox import Finished
from handlers.hook_outbox import HookClaim
from handlers.models import EventRecord
from handlers.models import utcnow
from tests.handlers.builders import event

LEASE = timedelta(seconds=40)
_EXAMPLES = itertools.count()


def queue_run(store, event_type="CANCEL", event_id="e-1", hooks=("crm:sync",), **kwargs):
    evt = event(event_type, event_id=event_id, **kwargs)
    return store.apply(evt, f"raw:{event_id}", HANDLERS[evt.event_type], hooks).hook_run_ids


def claim(store, run_id, now, max_attempts=3, lease=LEASE):
    return hook_outbox.claim(store, run_id, lease=lease, max_attempts=max_attempts, now=now)


class TestClaim:
    def test_claim_hands_over_body_changes_and_prior_state_and_counts_the_attempt(self, store):
        queue_run(store, "CREATE", event_id="e-0")
        (run_id,) = queue_run(store, "CANCEL", event_id="e-1", minutes=5)
        held = claim(store, run_id, utcnow())
        assert isinstance(held, HookClaim)
        assert (held.hook_name, held.event_id, held.raw_body, held.attempt) == (
            "crm:sync",
            "e-1",
            "raw:e-1",
            1,
        )
        assert held.changes["status"] == {"old": "ACCEPTED", "new": "CANCELLED"}
        assert held.prior_state["status"] == "ACCEPTED"
        (run,) = store.get_event("e-1")["hooks"]
        assert (run["state"], run["attempts"]) == ("running", 1)

    def test_first_event_of_an_appointment_has_no_prior_state(self, store):
        (run_id,) = queue_run(store, "CREATE")
        assert claim(store, run_id, utcnow()).prior_state is None

    def test_redelivery_with_the_same_task_id_is_refused_while_the_lease_holds(self, store):
        # kombu redelivers after VISIBILITY_TIMEOUT with the same task id: identity of the
        # claimant cannot be the test, only the lease can.
        (run_id,) = queue_run(store)
        now = utcnow()
        first = claim(store, run_id, now)
        second = claim(store, run_id, now + timedelta(seconds=39))
        assert isinstance(first, HookClaim)
        assert isinstance(second, Busy)
        assert 0 < second.retry_in <= 1

    def test_every_attempt_gets_a_fresh_token(self, store):
        (run_id,) = queue_run(store)
        now = utcnow()
        first = claim(store, run_id, now)
        second = claim(store, run_id, now + LEASE + timedelta(seconds=1))
        assert first.token != second.token
        assert second.attempt == 2

    def test_a_lost_claim_can_neither_finish_nor_release(self, store):
        (run_id,) = queue_run(store)
        now = utcnow()
        stale = claim(store, run_id, now)
        current = claim(store, run_id, now + LEASE + timedelta(seconds=1))
        assert hook_outbox.finish(store, stale, state="done") is False
        assert hook_outbox.release(store, stale, error="x", retry_in=1) is False
        assert store.get_event("e-1")["hooks"][0]["state"] == "running"
        assert hook_outbox.finish(store, current, state="done") is True
        assert isinstance(claim(store, run_id, now + 2 * LEASE), Finished)

    def test_released_run_waits_out_its_backoff(self, store):
        (run_id,) = queue_run(store)
        held = claim(store, run_id, utcnow())
        hook_outbox.release(store, held, error="ValueError: no", retry_in=30)
        assert isinstance(claim(store, run_id, utcnow()), Busy)
        later = claim(store, run_id, utcnow() + timedelta(seconds=31))
        assert isinstance(later, HookClaim) and later.attempt == 2
        (run,) = store.get_event("e-1")["hooks"]
        assert run["lastError"] == "ValueError: no"

    def test_attempts_whose_process_died_end_dead_lettered_after_the_limit(self, store):
        # Each attempt's process dies mid-hook (os._exit, SIGKILL): nobody reports back, yet
        # every claim counted, so the run cannot loop forever.
        (run_id,) = queue_run(store)
        now = utcnow()
        for attempt in (1, 2, 3):
            held = claim(store, run_id, now, max_attempts=3)
            assert isinstance(held, HookClaim) and held.attempt == attempt
            now += LEASE + timedelta(seconds=1)
        ended = claim(store, run_id, now, max_attempts=3)
        assert ended == Finished(
            "dead_lettered", just_now=True, hook_name="crm:sync", event_id="e-1", attempts=3
        )
        (run,) = store.dead_hook_runs()
        assert "attempt 3 did not finish" in run["lastError"]
        assert claim(store, run_id, now) == Finished(
            "dead_lettered", hook_name="crm:sync", event_id="e-1"
        )

    def test_run_whose_event_record_is_gone_ends_dead_lettered(self, store):
        (run_id,) = queue_run(store)
        with store.transaction() as session:
            session.execute(delete(EventRecord))
        assert claim(store, run_id, utcnow()).state == "dead_lettered"
        assert hook_outbox.lost_runs(store, timedelta(seconds=-1)) == []

    def test_concurrent_claims_of_one_run_give_exactly_one_attempt(self, store):
        (run_id,) = queue_run(store)
        now = utcnow()
        results, barrier = [], threading.Barrier(8)

        def contend():
            barrier.wait()
            results.append(claim(store, run_id, now))

        threads = [threading.Thread(target=contend) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sum(isinstance(r, HookClaim) for r in results) == 1
        assert sum(isinstance(r, Busy) for r in results) == 7


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(offsets=st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=12))
def test_no_two_claims_ever_overlap_in_time(sqlite_store, offsets):
    """Whatever the delivery times, the claims handed out never hold the run at once."""
    n = next(_EXAMPLES)
    (run_id,) = queue_run(sqlite_store, event_id=f"e-{n}", appointment_id=f"appt-{n}")
    start = utcnow()
    windows = []
    for offset in sorted(offsets):
        now = start + timedelta(seconds=offset)
        held = claim(sqlite_store, run_id, now, max_attempts=100)
        if isinstance(held, HookClaim):
            windows.append((now, held.lease_expires_at))
    for (_, ends), (begins, _) in zip(windows, windows[1:], strict=False):
        assert begins >= ends


class TestLostRuns:
    def test_pending_run_is_lost_once_old_enough(self, store):
        (run_id,) = queue_run(store)
        assert hook_outbox.lost_runs(store, timedelta(hours=1)) == []
        assert hook_outbox.lost_runs(store, timedelta(seconds=-1)) == [run_id]

    def test_running_run_is_lost_only_once_its_lease_is_over(self, store):
        (run_id,) = queue_run(store)
        now = utcnow()
        claim(store, run_id, now)
        assert hook_outbox.lost_runs(store, timedelta(0), now=now + LEASE / 2) == []
        assert hook_outbox.lost_runs(store, timedelta(0), now=now + 2 * LEASE) == [run_id]


class TestReading:
    def test_dead_runs_keep_attempts_and_last_error(self, store):
        (run_id,) = queue_run(store)
        held = claim(store, run_id, utcnow())
        hook_outbox.finish(store, held, state="dead_lettered", error="ConnectionError: crm down")
        (dead,) = store.dead_hook_runs()
        assert (dead["eventId"], dead["attempts"], dead["lastError"]) == (
            "e-1",
            1,
            "ConnectionError: crm down",
        )

    def test_requeue_makes_a_dead_run_pending_with_fresh_attempts(self, store):
        (run_id,) = queue_run(store)
        held = claim(store, run_id, utcnow())
        hook_outbox.finish(store, held, state="dead_lettered", error="x")
        assert store.requeue_hook_run(run_id) is True
        assert store.requeue_hook_run(run_id) is False
        assert isinstance(claim(store, run_id, utcnow()), HookClaim)

    def test_pages_of_runs_newest_first_by_state(self, store):
        first = queue_run(store, event_id="e-1")[0]
        second = queue_run(store, event_id="e-2", appointment_id="appt-2")[0]
        assert [r["id"] for r in store.hook_runs()] == [second, first]
        assert [r["id"] for r in store.hook_runs(after_id=second)] == [first]
        assert store.hook_runs(state="done") == []
