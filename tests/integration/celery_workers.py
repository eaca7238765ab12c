"""Real `engagehook worker` processes for integration tests: start, wait until ready, stop."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import func
from sqlalchemy import select

from core.config import Settings
from handlers.models import EventRecord
from handlers.models import HookRun
from handlers.store import FINAL_STATES
from handlers.store import Store
from ingest.queue import CeleryQueue
from tests.processes import kill_tree
from tests.processes import migrate
from tests.processes import start
from tests.processes import stop_all
from tests.processes import wait_until
from workers.celery_app import create_celery_app


class Workers:
    """A group of worker processes on one broker and one store, and a publisher to feed them."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: list[subprocess.Popen] = []
        self.celery = create_celery_app(Settings.from_env(env))
        self.queue = CeleryQueue(self.celery)
        self.store = Store(Settings.from_env(env).store_url)

    def start(self, count: int, concurrency: int) -> None:
        """Start ``count`` workers and wait until every one answers a ping."""
        if not self.processes:
            migrate(self.env)  # workers never migrate: the operator does, before starting them
        for _ in range(count):
            log = self.logs / f"worker-{len(self.processes)}.log"
            self.processes.append(
                start(["worker", "--concurrency", str(concurrency)], self.env, log)
            )
        wait_until(lambda: self._pongs() >= len(self.processes), timeout=60, interval=0.5)

    def _pongs(self) -> int:
        for process in self.processes:
            if process.poll() is not None:
                raise AssertionError(f"a worker exited with {process.returncode}; see {self.logs}")
        # Workers share a node name here, so count replies rather than distinct names.
        return len(self.celery.control.ping(timeout=0.5) or [])

    def publish(self, bodies: Iterable[tuple[str, str]]) -> None:
        """Enqueue ``(event_id, body)`` pairs the way ingest does."""
        for event_id, body in bodies:
            assert (
                self.queue.enqueue(body, event_id=event_id, event_type=None, appointment_id=None)
                == "queued"
            )

    def deliver(self, *payloads: dict) -> None:
        """Enqueue webhook payloads (their ids as event ids) the way ingest does."""
        self.publish((payload["id"], json.dumps(payload)) for payload in payloads)

    def wait_drained(self, events: int, deliveries: int, timeout: float = 120) -> None:
        """Wait until ``events`` ids have an outcome and every delivery was counted."""

        def drained() -> bool:
            with self.store.transaction(read_only=True) as session:
                final, duplicates = session.execute(
                    select(func.count(), func.coalesce(func.sum(EventRecord.duplicates), 0)).where(
                        EventRecord.state.in_(FINAL_STATES)
                    )
                ).one()
            return final == events and final + duplicates == deliveries

        wait_until(drained, timeout=timeout, interval=0.25)

    def wait_hooks_finished(self, runs: int, timeout: float = 60) -> None:
        """Wait until ``runs`` hook runs are done or dead-lettered, and none is left."""

        def finished() -> bool:
            with self.store.transaction(read_only=True) as session:
                states = session.scalars(select(HookRun.state)).all()
            return len(states) == runs and set(states) <= {"done", "dead_lettered"}

        wait_until(finished, timeout=timeout, interval=0.25)

    def stop(self) -> None:
        """Warm shutdown of every worker this object started (by PID), then close clients."""
        stop_all(self.processes)
        self._close()

    def kill(self) -> None:
        """SIGKILL every worker this object started, pools included, then close clients."""
        for process in self.processes:
            kill_tree(process)
        self._close()

    def _close(self) -> None:
        self.processes.clear()
        self.celery.close()
        self.store.engine.dispose()


def worker_env(tmp_path: Path, redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker on real Redis and PostgreSQL."""
    data_dir = tmp_path / "var"
    data_dir.mkdir(exist_ok=True)
    return {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "ENGAGEHOOK_DATA_DIR": str(data_dir),
        **extra,
    }


def hook_workers(
    tmp_path: Path, redis_url: str, postgres_url: str, site: Path, **extra: str
) -> tuple[Workers, Path]:
    """Workers (not started yet) that load the hook package installed in ``site``.

    The package's hooks find the file to log their runs to in EHTEST_HOOK_LOG: the second
    value returned. The workers' own logs go to ``tmp_path / "logs"``.
    """
    hook_log = tmp_path / "hooks.log"
    hook_log.touch()
    env = worker_env(
        tmp_path,
        redis_url,
        postgres_url,
        PYTHONPATH=str(site),
        EHTEST_HOOK_LOG=str(hook_log),
        **extra,
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    return Workers(env, logs), hook_log
