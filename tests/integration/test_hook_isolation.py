"""User hooks that hang, crash or raise, against real `engagehook worker` processes.

Each test installs a throwaway hook package (entry points, as pip would leave it) and runs
real workers on Redis and PostgreSQL: plain `engagehook worker`, which runs the events and
the hooks roles as two Celery workers with a pool each.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from core.names import RUN_HOOK
from tests.handlers.builders import install_package
from tests.handlers.builders import payload
from tests.integration.celery_workers import hook_workers
from tests.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.real]

CANARY = "Jan Janssens <jan.janssens@example.com>"
SOURCE = f"""
    import os
    import time


    def _log(line):
        with open(os.environ["EHTEST_HOOK_LOG"], "a") as log:
            log.write(line + "\\n")


    def hang(event):
        _log(f"hang {{event.id}}")
        time.sleep(600)


    def die(event):
        _log(f"die {{event.id}}")
        os._exit(1)


    def reject(event):
        _log(f"reject {{event.id}}")
        raise ValueError("CRM rejected {CANARY}")


    def slow(event):
        _log(f"start {{event.id}} {{time.time()}}")
        time.sleep(3)
        _log(f"end {{event.id}} {{time.time()}}")
"""


def start_workers(tmp_path, redis_url, postgres_url, hooks, concurrency=2, **extra):
    site = tmp_path / "site"
    site.mkdir()
    install_package(site, "ehtest-isolation", hooks, {"ehtest_isolation": SOURCE})
    group, log = hook_workers(
        tmp_path, redis_url, postgres_url, site, VISIBILITY_TIMEOUT="60", **extra
    )
    group.start(1, concurrency)
    return group, log, group.logs


def creates(prefix, count):
    return [
        payload("CREATE", event_id=f"{prefix}-{n}", appointment_id=f"{prefix}-appt-{n}")
        for n in range(count)
    ]


def hook_runs(store, event_ids):
    return [run for event_id in event_ids for run in store.get_event(event_id)["hooks"]]


class TestHangingHooks:
    def test_two_hung_hooks_at_concurrency_2_do_not_delay_five_events(
        self, tmp_path, redis_url, postgres_url
    ):
        group, log, _ = start_workers(
            tmp_path, redis_url, postgres_url, {"CREATE": "ehtest_isolation:hang"}
        )
        try:
            group.deliver(*creates("hung", 2))
            group.wait_drained(events=2, deliveries=2)
            # Both hook processes are now asleep inside a hook.
            wait_until(lambda: log.read_text().count("hang ") == 2, timeout=60, interval=0.2)
            started = time.monotonic()
            group.deliver(*creates("after", 5))
            group.wait_drained(events=7, deliveries=7, timeout=20)
            assert time.monotonic() - started < 20
        finally:
            # The hooks hang on purpose: a warm shutdown would only wait for them to be killed.
            group.kill()


class TestCrashingHooks:
    def test_hook_that_kills_its_process_ends_dead_lettered_after_the_retry_limit(
        self, tmp_path, redis_url, postgres_url
    ):
        group, log, _ = start_workers(
            tmp_path,
            redis_url,
            postgres_url,
            {"CREATE": "ehtest_isolation:die"},
            ENGAGEHOOK_HOOK_MAX_RETRIES="1",
            ENGAGEHOOK_HOOK_TIME_LIMIT="1",
        )
        try:
            group.deliver(*creates("crash", 1))
            group.wait_drained(events=1, deliveries=1)
            group.wait_hooks_finished(runs=1, timeout=120)
            (run,) = hook_runs(group.store, ["crash-0"])
            assert (run["state"], run["attempts"]) == ("dead_lettered", 2)
            assert "did not finish" in run["lastError"]
            time.sleep(3)  # nothing runs it again
            assert log.read_text().count("die crash-0") == 2
        finally:
            group.stop()


class TestRaisingHooks:
    def test_hook_words_reach_no_task_event_and_no_log_line(
        self, tmp_path, redis_url, postgres_url
    ):
        group, _log, logs = start_workers(
            tmp_path,
            redis_url,
            postgres_url,
            {"CREATE": "ehtest_isolation:reject"},
            ENGAGEHOOK_HOOK_MAX_RETRIES="1",
            ENGAGEHOOK_HOOK_RETRY_BACKOFF="0.1",
        )
        events: list[dict] = []
        receiver = TaskEvents(group.celery, events)
        try:
            receiver.start()
            group.deliver(*creates("raise", 1))
            group.wait_hooks_finished(runs=1, timeout=90)
            wait_until(lambda: _failed(events), timeout=30, interval=0.2)
            (run,) = hook_runs(group.store, ["raise-0"])
        finally:
            receiver.stop()
            group.stop()
        assert run["state"] == "dead_lettered"
        (failed,) = _failed(events)
        assert "HookRunDeadLettered" in failed["exception"]
        assert "ehtest_isolation:reject" in failed["exception"]
        assert "raise-0" in failed["exception"]
        assert "ValueError" in failed["exception"]
        assert any(e["type"] == "task-retried" for e in events)
        everything = json.dumps(events) + "".join(p.read_text() for p in logs.iterdir())
        assert "Janssens" not in everything


class TestRedelivery:
    def test_two_deliveries_of_one_run_with_the_same_task_id_never_both_execute(
        self, tmp_path, redis_url, postgres_url
    ):
        # What Redis does after VISIBILITY_TIMEOUT: the same message, the same task id, again.
        group, log, _ = start_workers(
            tmp_path,
            redis_url,
            postgres_url,
            {"CREATE": "ehtest_isolation:slow"},
            concurrency=3,
            ENGAGEHOOK_HOOK_TIME_LIMIT="6",  # the lease: 11 s
        )
        events: list[dict] = []
        receiver = TaskEvents(group.celery, events)
        try:
            receiver.start()
            group.deliver(*creates("twice", 1))
            group.wait_drained(events=1, deliveries=1)
            (run,) = hook_runs(group.store, ["twice-0"])
            for _ in range(2):
                group.celery.send_task(
                    RUN_HOOK, args=[run["id"]], task_id="same-task-id", queue="engagehook.hooks"
                )
            group.wait_hooks_finished(runs=1, timeout=60)
            # The refused deliveries come back after the lease and end, one way or another.
            wait_until(lambda: len(_succeeded(events, "same-task-id")) == 2, timeout=60)
            lines = log.read_text().splitlines()
            (run,) = hook_runs(group.store, ["twice-0"])
        finally:
            receiver.stop()
            group.stop()
        assert [line.split()[0] for line in lines] == ["start", "end"]
        assert (run["state"], run["attempts"]) == ("done", 1)
        assert [e["result"] for e in _succeeded(events, "same-task-id")] == ["'skipped:done'"] * 2


class TaskEvents:
    """Every Celery task event on the broker (what Flower receives), collected in a thread."""

    def __init__(self, celery, sink: list[dict]) -> None:
        self.celery, self.sink = celery, sink
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        time.sleep(1)  # the receiver's queue must exist before the events it should see

    def _run(self) -> None:
        with self.celery.connection() as connection:
            receiver = self.celery.events.Receiver(
                connection, handlers={"*": lambda event: self.sink.append(dict(event))}
            )
            while not self._stop.is_set():
                try:
                    receiver.capture(limit=None, timeout=1, wakeup=False)
                except TimeoutError:
                    continue
                except OSError:
                    continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _failed(events):
    return [e for e in events if e["type"] == "task-failed"]


def _succeeded(events, task_id):
    return [e for e in events if e["type"] == "task-succeeded" and e["uuid"] == task_id]
