"""Replays are one step with their publish: nothing leaves the dead letters unpublished."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handlers import HANDLERS
from handlers import hook_outbox
from handlers.replay import dead_hook_run_ids
from handlers.replay import replay_dead_letters
from handlers.replay import replay_hook_runs
from tests.fakes import RecordingQueue
from tests.fakes import SwitchableQueue
from tests.handlers.builders import dead_letter_hook_run
from tests.handlers.builders import event


def dead_letter(store, event_id: str, reason: str = "invalid") -> None:
    store.dead_letter(
        event_id=event_id,
        raw_body=f'{{"id": "{event_id}"}}',
        reason=reason,
        errors=[{"path": "data", "message": "bad"}],
        event_type="CREATE",
        appointment_id=f"ap-{event_id}",
    )


class TestReplayDeadLetters:
    def test_published_with_its_identifiers_then_queued(self, store):
        dead_letter(store, "d-1")
        queue = RecordingQueue()
        report = replay_dead_letters(store, queue.enqueue, ["d-1"])
        assert report.as_dict() == {"dry_run": False, "replayed": ["d-1"], "failed": []}
        assert queue.bodies == ['{"id": "d-1"}']
        assert queue.identifiers == [("d-1", "CREATE", "ap-d-1")]
        assert store.get_event("d-1")["state"] == "queued"

    def test_broker_down_leaves_it_a_dead_letter_and_reports_it(self, store):
        dead_letter(store, "d-1")
        dead_letter(store, "d-2")
        queue = SwitchableQueue(down=True)
        report = replay_dead_letters(store, queue.enqueue, ["d-1", "d-2"])
        assert not report.ok
        assert [f["id"] for f in report.failed] == ["d-1", "d-2"]
        assert "broker did not take" in report.failed[0]["error"]
        assert queue.attempts == 1  # after the first refusal the rest are not tried
        assert {store.get_event(i)["state"] for i in ("d-1", "d-2")} == {"dead_lettered"}
        queue.down = False
        assert replay_dead_letters(store, queue.enqueue, ["d-1", "d-2"]).replayed == [
            "d-1",
            "d-2",
        ]

    def test_dry_run_publishes_nothing_and_changes_nothing(self, store):
        dead_letter(store, "d-1")
        queue = RecordingQueue()
        report = replay_dead_letters(store, queue.enqueue, ["d-1", "nope"], dry_run=True)
        assert report.replayed == ["d-1"]
        assert report.failed == [{"id": "nope", "error": "not a dead letter"}]
        assert queue.bodies == []
        assert store.get_event("d-1")["state"] == "dead_lettered"

    def test_an_event_that_is_not_a_dead_letter_is_refused(self, store):
        store.apply(event("CANCEL", event_id="ok"), "{}", HANDLERS["CANCEL"])
        queue = RecordingQueue()
        report = replay_dead_letters(store, queue.enqueue, ["ok"])
        assert report.failed == [{"id": "ok", "error": "not a dead letter"}]
        assert queue.bodies == []

    def test_a_worker_that_dead_letters_it_again_first_keeps_its_outcome(self, store):
        """The publish is done before the record is touched: a fast worker may finish first."""
        dead_letter(store, "d-1", reason="first")

        def publish_and_fail_again(body, **ids):
            dead_letter(store, "d-1", reason="second")  # the worker's new outcome

        replay_dead_letters(store, publish_and_fail_again, ["d-1"])
        found = store.get_event("d-1")
        assert (found["state"], found["reason"]) == ("dead_lettered", "second")

    def test_a_worker_that_applies_it_first_keeps_processed(self, store):
        dead_letter(store, "e-1")

        def publish_and_apply(body, **ids):
            store.apply(event("CANCEL", event_id="e-1"), body, HANDLERS["CANCEL"])

        replay_dead_letters(store, publish_and_apply, ["e-1"])
        assert store.get_event("e-1")["state"] == "processed"


class TestReplayHookRuns:
    @pytest.fixture
    def dead_run(self, sqlite_store):
        result = sqlite_store.apply(
            event("CANCEL", event_id="h-1"), "{}", HANDLERS["CANCEL"], hook_names=["crm"]
        )
        run_id = result.hook_run_ids[0]
        dead_letter_hook_run(sqlite_store, run_id)
        return run_id

    def test_dead_run_is_pending_again_and_published(self, sqlite_store, dead_run):
        queue = RecordingQueue()
        report = replay_hook_runs(sqlite_store, queue.run_hook, [dead_run])
        assert report.replayed == [str(dead_run)]
        assert queue.hook_runs == [dead_run]
        claimed = hook_outbox.claim(
            sqlite_store, dead_run, lease=timedelta(seconds=30), max_attempts=1
        )
        assert isinstance(claimed, hook_outbox.HookClaim)  # a worker can take it again, afresh

    def test_broker_down_reports_failure_and_leaves_it_to_the_sweeper(self, sqlite_store, dead_run):
        report = replay_hook_runs(sqlite_store, SwitchableQueue(down=True).run_hook, [dead_run])
        assert not report.ok
        assert "sweeper" in report.failed[0]["error"]
        assert dead_run not in dead_hook_run_ids(sqlite_store)

    def test_a_run_that_is_not_dead_is_refused(self, sqlite_store, dead_run):
        queue = RecordingQueue()
        replay_hook_runs(sqlite_store, queue.run_hook, [dead_run])
        again = replay_hook_runs(sqlite_store, queue.run_hook, [dead_run, 999])
        assert [f["id"] for f in again.failed] == [str(dead_run), "999"]
        assert queue.hook_runs == [dead_run]

    def test_dry_run_changes_nothing(self, sqlite_store, dead_run):
        queue = RecordingQueue()
        report = replay_hook_runs(sqlite_store, queue.run_hook, [dead_run], dry_run=True)
        assert report.replayed == [str(dead_run)]
        assert queue.hook_runs == []
        assert dead_hook_run_ids(sqlite_store) == [dead_run]
