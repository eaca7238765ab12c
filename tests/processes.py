"""Start and stop real engagehook processes for integration tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

ENGAGEHOOK = [sys.executable, "-m", "engagehook.cli"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Run ``engagehook <args>`` in its own process group, output to ``log``."""
    full_env = {**os.environ, **env}
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            ENGAGEHOOK + args,
            env=full_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def migrate(env: dict[str, str], timeout: float = 120) -> None:
    """Run `engagehook migrate` the way an operator does before starting web and workers."""
    result = subprocess.run(
        ENGAGEHOOK + ["migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal the whole process group and wait; SIGKILL what is left after ``timeout``."""
    stop_all([process], sig, timeout)
    return process.returncode


def stop_all(
    processes: Iterable[subprocess.Popen], sig: int = signal.SIGTERM, timeout: float = 30
) -> None:
    """``stop`` for several at once: every group is signalled before any is waited for."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (the Celery pool processes of a worker, say)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` and every descendant, in whatever session each one runs.

    For processes stuck on purpose: a supervisor's children in sessions of their own would
    outlive a SIGKILL of its process group.
    """
    tree, unseen = [], [process.pid]
    while unseen:  # collected before any dies: orphans would be re-parented out of reach
        pid = unseen.pop()
        tree.append(pid)
        unseen += children(pid)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=10)


def poll(predicate: Callable[[], Any], timeout: float, interval: float) -> Any:
    """The first truthy value of ``predicate`` within ``timeout`` seconds, else its last one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_until(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    value = poll(predicate, timeout, interval)
    if not value:
        raise AssertionError(f"condition not met within {timeout} s")
    return value


def answers_ok(url: str) -> bool:
    """True when ``url`` answers 200 right now (a server has started)."""
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_http_ok(url: str, timeout: float = 30) -> None:
    """Wait until ``url`` answers 200."""
    wait_until(lambda: answers_ok(url), timeout=timeout, interval=0.2)


def cli_json(args: list[str], env: dict[str, str]) -> tuple[int, Any]:
    """Run a read-side CLI command; return its exit code and parsed JSON (or None)."""
    result = subprocess.run(
        ENGAGEHOOK + args, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    try:
        return result.returncode, json.loads(result.stdout) if result.stdout.strip() else None
    except json.JSONDecodeError:
        return result.returncode, None
