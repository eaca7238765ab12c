"""One fault test's own deployment: a private Redis, a migrated store, `web` and workers.

The fault tests differ in what they break, not in what they run: every one of them needs the
broker to be its own (so that it may kill, freeze or fill it), the schema migrated the way an
operator does before starting anything, and every process it started gone afterwards, however
the test ended. ``tests/faults/conftest.py`` adds the tails of the logs to a failure's report.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.faults.harness import Ledger
from tests.faults.harness import PrivateRedis
from tests.processes import free_port
from tests.processes import migrate
from tests.processes import start
from tests.processes import stop_all
from tests.processes import wait_http_ok

LOG_TAIL_LINES = 40


class Deployment:
    """Use as ``with Deployment(tmp_path, store_url) as deployment:``; start what the test needs.

    ``store_url`` is the store the processes use; the ledger reads ``ledger_url`` (the same
    store, unless the test puts something between the processes and it).
    """

    def __init__(
        self,
        directory: Path,
        store_url: str,
        *,
        visibility_timeout: int | None = 60,
        ledger_url: str | None = None,
    ) -> None:
        self.directory = directory
        self.redis = PrivateRedis(directory / "redis")
        self.port = free_port()
        self.env = {
            "REDIS_URL": self.redis.url,
            "DATABASE_URL": store_url,
            "ENGAGEHOOK_DATA_DIR": str(directory / "var"),
        }
        if visibility_timeout is not None:
            self.env["VISIBILITY_TIMEOUT"] = str(visibility_timeout)
        self.ledger = Ledger(ledger_url or store_url)
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    @property
    def webhooks(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks"

    @property
    def spool(self) -> Path:
        return self.directory / "var" / "spool"

    def __enter__(self) -> Deployment:
        self.redis.start()
        try:
            migrate(self.env)  # workers refuse a store whose schema is behind
        except BaseException:
            self.__exit__()
            raise
        return self

    def start_worker(self, concurrency: int = 2, log: str = "worker.log") -> subprocess.Popen:
        """An `engagehook worker`; it is stopped with the deployment if the test has not."""
        worker = start(["worker", "--concurrency", str(concurrency)], self.env, self.log(log))
        self.workers.append(worker)
        return worker

    def start_web(self, workers: int = 2) -> None:
        """`engagehook web`, returned once it is ready for webhooks."""
        self.web = start(
            ["web", "--port", str(self.port), "--workers", str(workers)],
            self.env,
            self.log("web.log"),
        )
        wait_http_ok(f"http://127.0.0.1:{self.port}/readyz", timeout=60)

    def log(self, name: str) -> Path:
        return self.directory / name

    def log_tails(self) -> str:
        """The end of every process log, for the report of a failed test."""
        parts = []
        for path in sorted(self.directory.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            parts.append(f"--- {path.name} (last {len(lines)} lines)\n" + "\n".join(lines))
        return "\n".join(parts)

    def __exit__(self, *exc_info: object) -> None:
        stop_all([*self.workers, *([self.web] if self.web else [])])
        if self.redis.process and self.redis.process.poll() is None:
            self.redis.thaw()  # a test may end with it frozen
        self.redis.kill()
        self.ledger.close()
