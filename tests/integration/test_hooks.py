"""User hooks from a separate package, run by real workers after the store commit.

The package lives in a temporary directory with a dist-info declaring entry points in the
`engagehook.hooks` group, exactly as `pip install` would leave it, and reaches the workers
through PYTHONPATH only: engagehook never imports it by name.
"""

from __future__ import annotations

import json

import pytest
import redis

from tests.handlers.builders import install_package
from tests.handlers.builders import payload
from tests.integration.celery_workers import Workers
from tests.integration.celery_workers import hook_workers
from tests.integration.celery_workers import worker_env
from tests.processes import migrate
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.real]

HOOKS_SOURCE = """
    import os


    def record(event):
        # One line per run; O_APPEND keeps concurrent writers' lines whole.
        with open(os.environ["EHTEST_HOOK_LOG"], "a") as log:
            log.write(f"record {event.event_type} {event.id}\\n")


    def crm_is_down(event):
        raise ConnectionError("crm.example.com refused the connection")
"""
DECORATED_SOURCE = """
    import os

    from handlers.hooks import on


    @on("REOPEN", "ACCEPT")
    def reopened(event):
        with open(os.environ["EHTEST_HOOK_LOG"], "a") as log:
            log.write(f"decorated {event.event_type} {event.id}\\n")
"""


@pytest.fixture
def hook_package(tmp_path):
    """A separately installed package with function, module and failing hooks."""
    site = tmp_path / "site"
    site.mkdir()
    install_package(
        site,
        "ehtest-integration-hooks",
        {
            "CANCEL": "ehtest_hooks:record",
            "COMPLETE": "ehtest_hooks:record",
            "CREATE": "ehtest_hooks:crm_is_down",
            "decorated": "ehtest_hooks_decorated",
        },
        {"ehtest_hooks": HOOKS_SOURCE, "ehtest_hooks_decorated": DECORATED_SOURCE},
    )
    return site


@pytest.fixture
def workers(tmp_path, redis_url, postgres_url, hook_package):
    """Two workers that load the package's hooks; failing hooks retry twice, quickly."""
    group, log = hook_workers(
        tmp_path,
        redis_url,
        postgres_url,
        hook_package,
        ENGAGEHOOK_HOOK_MAX_RETRIES="2",
        ENGAGEHOOK_HOOK_RETRY_BACKOFF="0.05",
    )
    try:
        group.start(2, 2)
        yield group, log
    finally:
        group.stop()


class TestHooksFromAPackage:
    def test_hooks_run_once_per_applied_event_and_failures_end_dead_lettered(self, workers):
        group, log = workers
        cancel = payload("CANCEL", event_id="h-cancel", appointment_id="h-1", minutes=10)
        older = payload("CANCEL", event_id="h-older", appointment_id="h-1", minutes=5)
        complete = payload("COMPLETE", event_id="h-complete", appointment_id="h-2")
        reopen = payload("REOPEN", event_id="h-reopen", appointment_id="h-3")
        create = payload("CREATE", event_id="h-create", appointment_id="h-4")
        generic = payload("GENERIC_UPDATE", event_id="h-generic", appointment_id="h-5")
        # Publish the newer CANCEL first so that the older one is stale whatever the timing.
        group.deliver(cancel, cancel)
        group.wait_drained(events=1, deliveries=2)
        group.deliver(older, cancel, complete, reopen, create, generic)
        group.wait_drained(events=6, deliveries=8)
        group.wait_hooks_finished(runs=4)

        assert sorted(log.read_text().splitlines()) == [
            "decorated REOPEN h-reopen",
            "record CANCEL h-cancel",
            "record COMPLETE h-complete",
        ]
        store = group.store
        assert store.get_event("h-older")["state"] == "stale"
        assert store.get_event("h-older")["hooks"] == []
        assert store.get_event("h-cancel")["duplicates"] == 2
        assert [h["state"] for h in store.get_event("h-cancel")["hooks"]] == ["done"]
        assert store.get_event("h-generic")["hooks"] == []

        (failed,) = store.get_event("h-create")["hooks"]
        assert failed["hook"] == "ehtest_hooks:crm_is_down"
        assert failed["state"] == "dead_lettered"
        assert failed["attempts"] == 3  # the first run and two retries
        assert failed["lastError"] == "ConnectionError: crm.example.com refused the connection"
        # The failing hook neither blocked nor undid the event it ran for.
        assert store.get_event("h-create")["state"] == "processed"
        assert store.get_appointment("h-4")["status"] == "ACCEPTED"
        assert [h["eventId"] for h in store.get_appointment("h-4")["history"]] == ["h-create"]
        assert [run["eventId"] for run in store.dead_hook_runs()] == ["h-create"]


class TestBrokenHookPackage:
    def test_worker_refuses_to_start_and_leaves_the_events_queued(
        self, tmp_path, redis_url, postgres_url
    ):
        site = tmp_path / "site"
        site.mkdir()
        install_package(
            site,
            "ehtest-broken-hooks",
            {"CANCEL": "ehtest_broken:on_cancel"},
            {"ehtest_broken": "import a_module_that_is_not_installed\n"},
        )
        env = worker_env(tmp_path, redis_url, postgres_url, PYTHONPATH=str(site))
        queued = payload("CANCEL", event_id="broken-1", appointment_id="broken-appt")
        group = Workers(env, tmp_path)
        worker = None
        try:
            group.publish([(queued["id"], json.dumps(queued))])
            migrate(env)  # the schema is there: what stops the worker is the broken hook
            worker = start(["worker", "--concurrency", "1"], env, tmp_path / "worker.log")
            assert wait_until(lambda: worker.poll() is not None, timeout=60)
            assert worker.returncode != 0
            assert "cannot load user hooks" in (tmp_path / "worker.log").read_text()
            # Nothing consumed the event: it waits for a worker with working hooks.
            assert redis.Redis.from_url(redis_url).llen("engagehook") == 1
        finally:
            if worker is not None:
                stop(worker)
            group.stop()
