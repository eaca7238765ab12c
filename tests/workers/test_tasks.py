"""workers.tasks: what a task run returns, retries, dead-letters and shows to Flower.

The tasks are called directly, as the Celery testing guide recommends; a retry is observed by
a request that looks like a worker's (``called_directly=False``) and a recording ``retry``,
so nothing is published and nothing runs eagerly.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from celery.exceptions import Retry

from core.config import Settings
from handlers.errors import TransientError
from handlers.hooks import HookRegistry
from tests.builders import body
from tests.builders import envelope
from workers import tasks
from workers.runtime import WorkerRuntime
from workers.runtime import set_runtime

ARGSREPR = "(event_id='e-1', eventType='CREATE', appointment_id='appt-1')"


class DownForApply:
    """Wraps a real store whose ``apply`` (and optionally every write) fails transiently."""

    def __init__(self, store, *, writes_too: bool = False) -> None:
        self.store = store
        self.writes_too = writes_too

    def apply(self, *args, **kwargs):
        raise TransientError("store unavailable: connection refused")

    def mark_retrying(self, **kwargs):
        if self.writes_too:
            raise TransientError("store unavailable: connection refused")
        return self.store.mark_retrying(**kwargs)

    def dead_letter(self, **kwargs):
        if self.writes_too:
            raise TransientError("store unavailable: connection refused")
        return self.store.dead_letter(**kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)


class FirstDeadLetterFails(DownForApply):
    """A store whose first dead-letter write hits a bug (a later, plainer one succeeds)."""

    def __init__(self, store) -> None:
        super().__init__(store)
        self.failed = False

    def apply(self, *args, **kwargs):
        return self.store.apply(*args, **kwargs)

    def dead_letter(self, **kwargs):
        if not self.failed:
            self.failed = True
            raise RuntimeError("unexpected state")
        return self.store.dead_letter(**kwargs)


@pytest.fixture
def runtime(tmp_path, sqlite_store):
    """The worker runtime the tasks use: a real SQLite store and an empty hook registry."""
    runtime = WorkerRuntime(Settings(data_dir=tmp_path), sqlite_store, HookRegistry())
    set_runtime(runtime)
    yield runtime
    set_runtime(None)


@contextmanager
def delivered(task, *, retries: int = 0, argsrepr: str | None = ARGSREPR):
    """Run ``task`` under a request shaped like a worker's delivery (its retry count, argsrepr)."""
    task.push_request(retries=retries, called_directly=False, argsrepr=argsrepr, id="task-1")
    try:
        yield
    finally:
        task.pop_request()


@pytest.fixture
def retries_asked(monkeypatch):
    """The keyword arguments of every ``retry`` the task asked for; each raises Retry."""
    asked: list[dict] = []

    def record(**kwargs):
        asked.append(kwargs)
        return Retry(exc=kwargs.get("exc"), when=kwargs.get("countdown"))

    monkeypatch.setattr(tasks.process_webhook, "retry", record)
    return asked


def raw_event(event_id: str = "e-1") -> str:
    return body(envelope(event_id=event_id))


class TestProcessWebhookOutcomes:
    def test_a_valid_event_returns_handled_outcome_for_flower(self, runtime):
        assert tasks.process_webhook(raw_event()) == "processed:CREATE"
        assert runtime.store.get_event("e-1")["state"] == "processed"

    def test_the_same_body_again_is_a_duplicate(self, runtime):
        tasks.process_webhook(raw_event())
        assert tasks.process_webhook(raw_event()) == "duplicate"
        assert runtime.store.get_event("e-1")["duplicates"] == 1

    def test_an_invalid_payload_is_dead_lettered_not_retried(self, runtime, retries_asked):
        payload = envelope(event_id="e-bad")
        payload["data"]["appointment"]["meetingType"] = "TELEPATHY"
        with delivered(tasks.process_webhook):
            assert tasks.process_webhook.run(body(payload)) == "dead_lettered:invalid"
        assert retries_asked == []
        record = runtime.store.get_event("e-bad")
        assert record["state"] == "dead_lettered"
        assert record["errors"][0]["path"] == "data.appointment.meetingType"

    def test_an_unknown_event_type_is_dead_lettered_as_unsupported(self, runtime):
        label = tasks.process_webhook(body(envelope("MERGE", event_id="e-merge")))
        assert label == "dead_lettered:unsupported-eventType"

    def test_an_older_event_is_stale(self, runtime):
        tasks.process_webhook(body(envelope(event_id="e-new", updated_at="2024-10-02T00:00:00Z")))
        older = envelope(event_id="e-old", updated_at="2024-10-01T00:00:00Z")
        assert tasks.process_webhook(body(older)) == "stale:CREATE"

    def test_a_bug_outside_the_handlers_is_dead_lettered_with_its_class(self, runtime):
        runtime.store = FirstDeadLetterFails(runtime.store)
        invalid = body(envelope("MERGE", event_id="e-bug"))
        assert tasks.process_webhook(invalid) == "dead_lettered:worker-error"
        record = runtime.store.get_event("e-bug")
        assert record["state"] == "dead_lettered"
        assert record["reason"] == "worker error: RuntimeError: unexpected state"
        assert record["rawBody"] == invalid

    def test_each_hook_run_is_published_with_only_its_id_shown(self, runtime, monkeypatch):
        runtime.registry.add(lambda event: None, ["CREATE"])
        published: list[dict] = []
        monkeypatch.setattr(
            tasks.run_hook, "apply_async", lambda **options: published.append(options)
        )
        assert tasks.process_webhook(raw_event()) == "processed:CREATE"
        (run_id,) = [options["args"][0] for options in published]
        assert published == [{"args": [run_id], "argsrepr": f"(hook_run={run_id})"}]


class TestProcessWebhookRetries:
    def test_a_transient_failure_asks_for_a_retry_and_records_retrying(
        self, runtime, retries_asked
    ):
        store = runtime.store
        runtime.store = DownForApply(store)
        with delivered(tasks.process_webhook, retries=2), pytest.raises(Retry):
            tasks.process_webhook.run(raw_event())
        (asked,) = retries_asked
        assert isinstance(asked["exc"], TransientError)
        # Retry 3 waits between half the 8 s ceiling and the ceiling.
        assert 4 <= asked["countdown"] <= 8
        assert "max_retries" not in asked
        assert store.get_event("e-1")["state"] == "retrying"

    def test_the_retried_message_keeps_showing_identifiers_only(self, runtime, retries_asked):
        runtime.store = DownForApply(runtime.store)
        with delivered(tasks.process_webhook, argsrepr=ARGSREPR), pytest.raises(Retry):
            tasks.process_webhook.run(raw_event())
        assert retries_asked[0]["argsrepr"] == ARGSREPR

    def test_the_last_retry_dead_letters_with_the_reason(self, runtime, retries_asked):
        store = runtime.store
        runtime.store = DownForApply(store)
        last = tasks.EVENT_MAX_RETRIES
        with delivered(tasks.process_webhook, retries=last):
            assert tasks.process_webhook.run(raw_event()) == "dead_lettered:transient"
        assert retries_asked == []
        record = store.get_event("e-1")
        assert record["state"] == "dead_lettered"
        assert record["reason"].startswith(f"gave up after {last} retries")

    def test_a_store_that_cannot_take_the_dead_letter_keeps_the_message_retrying(
        self, runtime, retries_asked
    ):
        runtime.store = DownForApply(runtime.store, writes_too=True)
        last = tasks.EVENT_MAX_RETRIES
        with delivered(tasks.process_webhook, retries=last), pytest.raises(Retry):
            tasks.process_webhook.run(raw_event())
        (asked,) = retries_asked
        assert asked["max_retries"] == last + 1  # one more, and again next time


class TestRunHook:
    def test_a_registered_hook_runs_once_and_names_itself(self, runtime, monkeypatch):
        seen = []
        name = runtime.registry.add(lambda event: seen.append(event.id), ["CREATE"])
        monkeypatch.setattr(tasks.run_hook, "apply_async", lambda **options: None)
        tasks.process_webhook(raw_event())
        (run,) = runtime.store.get_event("e-1")["hooks"]
        with delivered(tasks.run_hook):
            assert tasks.run_hook.run(run["id"]) == f"hook:{name}"
        assert seen == ["e-1"]
        with delivered(tasks.run_hook):
            assert tasks.run_hook.run(run["id"]) == "skipped:done"  # a second message skips
