"""workers.tasks.run_hook: every attempt counted, no hook words outside the store, async awaited.

The task runs through Celery's ``apply`` (retries run at once; the backoff is made tiny so
each retry finds the previous attempt's backoff over) on a real SQLite store.
"""

from __future__ import annotations

import json
import logging
import traceback

import pytest

from core.config import Settings
from handlers import HANDLERS
from handlers.errors import PermanentError
from handlers.hook_event import HookEvent
from handlers.hook_runner import HookRunDeadLettered
from handlers.hooks import HookRegistry
from tests.handlers.builders import from_payload
from tests.handlers.builders import payload
from workers import tasks
from workers.runtime import WorkerRuntime
from workers.runtime import set_runtime

CANARY = "Jan Janssens <jan.janssens@example.com>"
MAX_RETRIES = 2


@pytest.fixture
def runtime(sqlite_store, tmp_path):
    registry = HookRegistry()
    settings = Settings(data_dir=tmp_path, hook_max_retries=MAX_RETRIES, hook_retry_backoff=0.0005)
    set_runtime(WorkerRuntime(settings, sqlite_store, registry))
    yield sqlite_store, registry
    set_runtime(None)


def applied(store, hook_names, event_type="CANCEL", event_id="e-1", **kwargs):
    """Apply one event the way a worker does; return its hook run ids."""
    body = payload(event_type, event_id=event_id, **kwargs)
    event = from_payload(body)
    return store.apply(event, json.dumps(body), HANDLERS[event_type], hook_names).hook_run_ids


def run(run_id):
    return tasks.run_hook.apply(args=[run_id])


def only_run(store, event_id="e-1"):
    (run,) = store.get_event(event_id)["hooks"]
    return run


def crashing(event):
    raise SystemExit(3)


def rejecting(event):
    raise ValueError(f"CRM rejected {CANARY}")


def refusing_for_good(event):
    raise PermanentError("the CRM has no such customer")


class TestAttempts:
    def test_hook_raising_system_exit_counts_each_attempt_and_ends_dead_lettered(self, runtime):
        store, registry = runtime
        name = registry.add(crashing, ["CANCEL"])
        (run_id,) = applied(store, [name])
        result = run(run_id)
        assert result.state == "FAILURE"
        assert isinstance(result.result, HookRunDeadLettered)
        dead = only_run(store)
        assert (dead["state"], dead["attempts"]) == ("dead_lettered", MAX_RETRIES + 1)
        assert dead["lastError"] == "SystemExit: 3"

    def test_permanent_error_dead_letters_without_retries(self, runtime):
        store, registry = runtime
        name = registry.add(refusing_for_good, ["CANCEL"])
        (run_id,) = applied(store, [name])
        assert run(run_id).state == "FAILURE"
        assert (only_run(store)["state"], only_run(store)["attempts"]) == ("dead_lettered", 1)

    def test_hook_this_worker_lacks_is_retried_like_a_failure_not_dead_lettered_at_once(
        self, runtime
    ):
        store, _registry = runtime
        (run_id,) = applied(store, ["newer_release:sync"])
        assert run(run_id).state == "FAILURE"
        dead = only_run(store)
        assert dead["attempts"] == MAX_RETRIES + 1
        assert dead["lastError"].startswith("HookNotRegistered: no hook named newer_release:sync")

    def test_a_hook_that_succeeds_on_its_second_attempt_is_done(self, runtime):
        store, registry = runtime
        calls = []

        def flaky(event):
            calls.append(event.id)
            if len(calls) == 1:
                raise ConnectionError("crm down")

        name = registry.add(flaky, ["CANCEL"])
        (run_id,) = applied(store, [name])
        assert run(run_id).get() == f"hook:{name}"
        assert (only_run(store)["state"], only_run(store)["attempts"]) == ("done", 2)

    def test_finished_run_delivered_again_is_skipped(self, runtime):
        store, registry = runtime
        calls = []
        name = registry.add(lambda event: calls.append(event.id), ["CANCEL"])
        (run_id,) = applied(store, [name])
        run(run_id)
        assert run(run_id).get() == "skipped:done"
        assert calls == ["e-1"]


class TestNoHookWordsOutsideTheStore:
    def test_exception_text_is_in_no_log_result_or_traceback(self, runtime, caplog):
        store, registry = runtime
        name = registry.add(rejecting, ["CANCEL"])
        (run_id,) = applied(store, [name])
        with caplog.at_level(logging.DEBUG):
            result = run(run_id)
        assert result.state == "FAILURE"
        shown = [
            caplog.text,
            repr(result.result),
            str(result.result),
            result.traceback or "",
            "".join(traceback.format_exception(result.result)),
        ]
        for text in shown:
            assert "Janssens" not in text
        assert f"hook {name} dead-lettered for event e-1" in str(result.result)
        assert "(last: ValueError)" in str(result.result)
        assert "ValueError" in caplog.text  # the class is what operators see in logs
        # The Retry is raised outside the except block: no user exception as its context.
        assert result.result.__context__ is None and result.result.__cause__ is None
        # The operator's record keeps the hook's message (behind ADMIN_TOKEN).
        assert only_run(store)["lastError"] == f"ValueError: CRM rejected {CANARY}"


class TestWhatAHookReceives:
    def test_async_hook_is_awaited_before_the_run_is_done(self, runtime):
        store, registry = runtime
        seen = []

        async def notify(event):
            seen.append(event.id)

        name = registry.add(notify, ["CANCEL"])
        (run_id,) = applied(store, [name])
        assert run(run_id).get() == f"hook:{name}"
        assert seen == ["e-1"]

    def test_reschedule_hook_gets_parsed_times_changes_and_the_prior_state(self, runtime):
        store, registry = runtime
        received: list[HookEvent] = []
        name = registry.add(received.append, ["RESCHEDULE"])
        applied(store, [], "CREATE", event_id="e-0", start="2026-03-02T09:00:00Z")
        (run_id,) = applied(
            store,
            [name],
            "RESCHEDULE",
            event_id="e-1",
            minutes=5,
            start="2026-03-03T14:30:00+01:00",
            end="2026-03-03T15:00:00+01:00",
        )
        run(run_id).get()
        (event,) = received
        assert isinstance(event, HookEvent)
        assert event.start.isoformat() == "2026-03-03T14:30:00+01:00"
        assert event.changes["start"]["old"].isoformat() == "2026-03-02T09:00:00+00:00"
        assert event.changes["start"]["new"] == event.start
        assert event.prior_state["start"] == "2026-03-02T09:00:00Z"
        assert event.updated_at.tzinfo is not None
        assert event.raw["id"] == "e-1"
        stored = store.get_appointment("appt-1")["history"][-1]["changes"]
        assert stored["start"]["new"] == "2026-03-03T14:30:00+01:00"
