"""Fault (c): `engagehook serve` (embedded mode) restarted mid-stream; nothing acknowledged is lost.

Each restart is one of the ways a real host stops it: SIGTERM (graceful: gunicorn and the
Celery worker finish in-flight work), SIGKILL of the supervisor alone (its children get
SIGTERM through PR_SET_PDEATHSIG) or SIGKILL of every process at once (a power cut, short of
the disk). Requests sent while it is down are refused, which the sender retries; every one
answered 2xx must end processed exactly once.

How many requests a restart refuses is a matter of how fast the host boots Python, not of
the contract, so the test does not count them against a share of the stream: it streams
until the last restart is behind it and asserts that serve acknowledged events in every
stretch it was up (before the first restart, between each two, after the last), so each kind
of restart happened with acknowledged events on both sides.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.harness import Ledger
from tests.faults.harness import Stream
from tests.faults.harness import scale
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok
from tests.processes import wait_until

pytestmark = pytest.mark.slow

RESTARTS = ["sigterm", "sigkill-supervisor", "sigkill-all"] * int(scale(1, 4))
RATE = scale(20, 40)
SECONDS_BETWEEN_RESTARTS = scale(2, 10)


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def take_down(serve, how: str) -> None:
    """Stop `serve` the way ``how`` says and wait until none of its processes is left."""
    if how == "sigterm":
        serve.send_signal(signal.SIGTERM)
    elif how == "sigkill-supervisor":
        serve.kill()
    else:
        os.killpg(serve.pid, signal.SIGKILL)
    serve.wait(timeout=90)
    wait_until(lambda: group_gone(serve.pid), timeout=90, interval=0.2)


def test_events_acknowledged_across_serve_restarts_are_processed_exactly_once(tmp_path):
    port = free_port()
    data_dir = tmp_path / "var"
    env = {"ENGAGEHOOK_DATA_DIR": str(data_dir)}
    ready = f"http://127.0.0.1:{port}/readyz"
    serve = start(["serve", "--port", str(port)], env, tmp_path / "serve.log")
    ledger = Ledger(f"sqlite:///{(data_dir / 'engagehook.sqlite3').resolve()}")
    try:
        wait_http_ok(ready, timeout=60)
        stream = Stream(f"http://127.0.0.1:{port}/webhooks", prefix="restart", rate=RATE)
        stream.start(int(RATE * 3600))  # stopped below, once the last restart is behind it
        stretches = []  # (acknowledged when serve was up, when it was taken down)
        up = 0
        for how in RESTARTS:
            time.sleep(SECONDS_BETWEEN_RESTARTS)
            stretches.append((up, len(stream.acked)))
            take_down(serve, how)
            serve = start(["serve", "--port", str(port)], env, tmp_path / "serve.log")
            wait_http_ok(ready, timeout=60)
            up = len(stream.acked)
        time.sleep(SECONDS_BETWEEN_RESTARTS)
        stretches.append((up, len(stream.acked)))
        stream.stop()

        acked_per_stretch = [down - up for up, down in stretches]
        assert all(acked_per_stretch), (
            f"acknowledged while up: {acked_per_stretch} {stream.refused}"
        )
        ledger.assert_exactly_once(stream.acked, timeout=scale(90, 300))
    finally:
        stop(serve)
        ledger.close()
