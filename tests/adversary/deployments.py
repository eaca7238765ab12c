"""Real engagehook deployments the adversary tests attack: embedded `serve`, and `web` plus
`worker` on PostgreSQL and Redis. Each keeps every process's stdout and stderr in one log."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import httpx
import redis

from core.config import Settings
from handlers.store import FINAL_STATES
from handlers.store import Store
from tests import services
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok
from tests.processes import wait_until


@dataclass
class Deployment:
    """Where to post, the store to count in, and the logs every process wrote."""

    base_url: str
    store: Store
    logs: list[Path] = field(default_factory=list)

    def post(self, body: bytes) -> httpx.Response:
        return httpx.post(
            f"{self.base_url}/webhooks",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )

    def wait_final(self, event_ids: list[str], timeout: float = 120) -> dict[str, str]:
        """Wait until every id has a final state in the store; return the states."""

        def states() -> dict[str, str] | None:
            found = {i: (self.store.get_event(i) or {}).get("state") for i in event_ids}
            return found if all(state in FINAL_STATES for state in found.values()) else None

        return wait_until(states, timeout=timeout, interval=0.3)

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.logs if path.exists())


@contextmanager
def embedded(tmp_path: Path, extra_env: dict[str, str]) -> Iterator[Deployment]:
    """`engagehook serve` with no REDIS_URL: SQLite store and broker under the data dir."""
    env = {"ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"), "LOG_LEVEL": "INFO", **extra_env}
    port = free_port()
    log = tmp_path / "serve.log"
    serve = start(["serve", "--port", str(port)], env, log)
    store = Store(Settings.from_env(env).store_url)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout=90)
        yield Deployment(f"http://127.0.0.1:{port}", store, [log])
    finally:
        _graceful_stop(serve)
        store.engine.dispose()


@contextmanager
def redis_postgres(
    tmp_path: Path, database_url: str, extra_env: dict[str, str]
) -> Iterator[Deployment]:
    """`engagehook web` and `engagehook worker` on the shared Redis (own DB) and PostgreSQL."""
    redis_url = services.redis_url(services.free_redis_db())
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"),
        "LOG_LEVEL": "INFO",
        **extra_env,
    }
    store = Store(database_url)
    store.migrate()
    port = free_port()
    logs = [tmp_path / "web.log", tmp_path / "worker.log"]
    web = start(["web", "--port", str(port), "--workers", "2"], env, logs[0])
    worker = start(["worker", "--concurrency", "2"], env, logs[1])
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout=90)
        yield Deployment(f"http://127.0.0.1:{port}", store, logs)
    finally:
        for process in (web, worker):
            _graceful_stop(process)
        store.engine.dispose()
        client.flushdb()
        client.close()


def _graceful_stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    finally:
        stop(process)
