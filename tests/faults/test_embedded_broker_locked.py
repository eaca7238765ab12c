"""Fault (e): the embedded broker's SQLite file is write-locked; ingest spools within a second.

Real processes: `engagehook serve` in embedded mode. Another connection holds the broker
file's write lock (BEGIN IMMEDIATE), as a backup tool or a stuck process would. A webhook
posted meanwhile must be answered within the sender's timeout, from the spool, instead of
waiting out SQLite's busy timeout; once the lock is released it must be published and
processed like any other.
"""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest

from tests.builders import envelope
from tests.builders import instant
from tests.faults.harness import Ledger
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok
from tests.processes import wait_until

pytestmark = pytest.mark.slow

# The publish gives up after about a second (ingest/queue.py); the rest is slack for a
# loaded machine, still well under the sender's 3 s.
ANSWER_WITHIN_SECONDS = 2.0
LOCKED_POSTS = 3


def _post(url: str, event_id: str, n: int) -> tuple[httpx.Response, float]:
    raw = json.dumps(
        envelope(event_id=event_id, appointment_id=f"{event_id}-appt", updated_at=instant(n))
    )
    began = time.monotonic()
    response = httpx.post(
        url, content=raw, headers={"Content-Type": "application/json"}, timeout=30
    )
    return response, time.monotonic() - began


def test_a_webhook_posted_while_the_broker_file_is_locked_is_spooled_and_then_processed(
    tmp_path,
):
    port = free_port()
    data_dir = tmp_path / "var"
    url = f"http://127.0.0.1:{port}/webhooks"
    serve = start(
        ["serve", "--port", str(port)], {"ENGAGEHOOK_DATA_DIR": str(data_dir)}, tmp_path / "s.log"
    )
    ledger = Ledger(f"sqlite:///{(data_dir / 'engagehook.sqlite3').resolve()}")
    lock = None
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout=60)
        first, _ = _post(url, "locked-before", 0)  # the broker file and its tables exist now
        assert first.status_code == 202 and first.json()["stored"] == "queued"
        ledger.assert_exactly_once(["locked-before"], timeout=60)

        lock = sqlite3.connect(data_dir / "broker.sqlite3", timeout=30, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the write lock, held until ROLLBACK
        answers = [_post(url, f"locked-{n}", n + 1) for n in range(LOCKED_POSTS)]
        held = list(data_dir.joinpath("spool").glob("*.json"))
        lock.execute("ROLLBACK")
        lock.close()
        lock = None

        for response, seconds in answers:
            assert response.status_code == 202, response.text
            assert response.json()["stored"] == "spooled"
            assert seconds < ANSWER_WITHIN_SECONDS, f"answered after {seconds:.1f} s"
        assert len(held) == LOCKED_POSTS
        ids = [f"locked-{n}" for n in range(LOCKED_POSTS)]
        ledger.assert_exactly_once(ids, timeout=90)
        wait_until(lambda: not list(data_dir.joinpath("spool").glob("*.json")), timeout=30)
    finally:
        if lock is not None:
            lock.close()
        stop(serve)
        ledger.close()
