"""What every benchmark needs: the services, free ports, child processes and their memory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Starting and polling processes is the same job for the benchmark as for the tests.
from tests.processes import answers_ok
from tests.processes import free_port
from tests.processes import poll

REPO = Path(__file__).resolve().parents[1]
PAYLOADS = REPO / "tests" / "payloads"
# Loopback only: the benchmark never sends traffic anywhere else. Without BENCH_REDIS_URL
# the benchmark starts its own redis-server when there is one (nobody else's tests can
# then flush its queue or eat its messages), else it uses a free DB of this one.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ENGAGEHOOK = [sys.executable, "-m", "engagehook.cli"]


class BenchError(RuntimeError):
    """The benchmark cannot run here; the message says what to install or start."""


def example_body(name: str = "CREATE") -> str:
    """One of the sender's example payloads as the compact JSON the sender posts."""
    return json.dumps(json.loads((PAYLOADS / f"{name}.json").read_text()), separators=(",", ":"))


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something truthy; BenchError after ``timeout`` s."""
    value = poll(predicate, timeout, interval)
    if not value:
        raise BenchError(f"{what} did not happen within {timeout:.0f} s")
    return value


def wait_http_ok(url: str, timeout: float = 30) -> None:
    """Wait until ``url`` answers 200 (a server has started)."""
    wait_until(lambda: answers_ok(url), timeout, f"{url} answering 200", interval=0.1)


# -- services ----------------------------------------------------------------------------------


def check_redis() -> None:
    """Fail with a clear message when the benchmark's Redis does not answer."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        raise BenchError(
            f"Redis does not answer at {REDIS_URL} ({exc.__class__.__name__}): "
            "start redis-server or set BENCH_REDIS_URL"
        ) from None


def check_postgres() -> None:
    """Fail with a clear message when the benchmark's PostgreSQL does not answer."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(DATABASE_URL, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise BenchError(
            f"PostgreSQL does not answer at {_masked(DATABASE_URL)} "
            f"({exc.__class__.__name__}): start it or set BENCH_DATABASE_URL"
        ) from None
    finally:
        engine.dispose()


def _masked(url: str) -> str:
    from core.config import _mask_url

    return _mask_url(url)


@contextmanager
def bench_redis() -> Iterator[tuple[str, str]]:
    """A Redis URL nobody else uses, and how it was obtained (for the results)."""
    server = shutil.which("redis-server")
    if "BENCH_REDIS_URL" in os.environ or server is None:
        check_redis()
        with private_redis_db() as url:
            yield url, "a free DB of the Redis at BENCH_REDIS_URL (or 127.0.0.1:6379)"
        return
    with tempfile.TemporaryDirectory(prefix="engagehook-bench-redis-") as tmp:
        port = free_port()
        # Production durability for the broker: append-only file, fsync every second.
        process = start(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                tmp,
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--maxmemory-policy",
                "noeviction",
            ],
            {},
            Path(tmp, "redis.log"),
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            import redis

            def answers() -> bool:
                try:
                    return bool(redis.Redis.from_url(url, socket_connect_timeout=0.2).ping())
                except redis.RedisError:
                    return False

            wait_until(answers, 10, "the benchmark's own redis-server answering")
            yield url, "its own redis-server (appendonly yes, appendfsync everysec)"
        finally:
            stop(process)


@contextmanager
def private_redis_db() -> Iterator[str]:
    """A Redis DB number nobody uses right now, emptied again afterwards."""
    import redis

    base = redis.Redis.from_url(REDIS_URL)
    try:
        databases = int(base.config_get("databases").get("databases", 16))
    except redis.ResponseError:  # CONFIG disabled: assume the default
        databases = 16
    base.close()
    # Highest numbers first: the test suite spreads over the low ones.
    for db in range(databases - 1, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_URL}/{db}")
        if client.dbsize() == 0:
            break
        client.close()
    else:
        raise BenchError(
            f"every Redis DB at {REDIS_URL} holds keys; the benchmark needs an empty one"
        )
    try:
        yield f"{REDIS_URL}/{db}"
    finally:
        client.flushdb()
        client.close()


@contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A store URL whose search path is a new PostgreSQL schema, dropped afterwards."""
    import sqlalchemy

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(DATABASE_URL)
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in DATABASE_URL else "?"
    try:
        yield f"{DATABASE_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# -- processes ---------------------------------------------------------------------------------


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Run ``argv`` from the repository root in its own process group, output to ``log``."""
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            argv,
            cwd=REPO,
            env={**os.environ, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group we started and wait; SIGKILL it after ``timeout``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents first."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [pid] + [child.pid for child in root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_times(pids: list[int]) -> dict[int, float]:
    """User plus system CPU seconds each of the given processes has used so far."""
    import psutil

    out = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[pid] = times.user + times.system
    return out


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two snapshots; a process that appeared in between counts whole."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def with_application_name(url: str, name: str) -> str:
    """The store URL with a PostgreSQL application_name, so its server processes can be found."""
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def postgres_backends(application_name: str) -> list[int]:
    """PIDs of the PostgreSQL server processes serving connections named ``application_name``."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(DATABASE_URL)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sqlalchemy.text(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
                    ),
                    {"name": application_name},
                ).scalars()
            )
    finally:
        engine.dispose()


def peak_rss_mib(pid: int) -> float | None:
    """The highest resident memory ``pid`` ever had (the kernel's VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def command_line(pid: int) -> str:
    """A short description of a process: its program and role, without machine paths."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [Path(a.decode(errors="replace")).name for a in args if a][:8]
    return " ".join(words)
