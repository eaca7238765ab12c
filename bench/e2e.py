"""The whole pipeline: duplicated, shuffled deliveries through web and workers into the store.

Real ``engagehook web`` (2 gunicorn workers) and ``engagehook worker --concurrency 2`` on
Redis and PostgreSQL. A pool of sender threads posts every delivery the way the sender
does (3 s timeout; retried after 2 s and after 10 s, then given up), and the clock runs
from the first POST until the store holds one outcome per event. Then the store must equal
the newest snapshot of every appointment, with every duplicate seen and nothing lost.
"""

from __future__ import annotations

import http.client
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import redis
from sqlalchemy import text

from bench.support import ENGAGEHOOK
from bench.support import command_line
from bench.support import free_port
from bench.support import peak_rss_mib
from bench.support import process_tree
from bench.support import start
from bench.support import stop
from bench.support import wait_http_ok
from bench.support import wait_until
from bench.workload import Delivery
from bench.workload import Workload
from bench.workload import generate
from core.names import EVENTS_QUEUE

EVENTS = 20_000
APPOINTMENTS = 2_000
DUPLICATE_SHARE = 0.10
SENDERS = 8  # concurrent deliveries in flight, like a sender with a few delivery workers
SENDER_TIMEOUT_SECONDS = 3.0  # the sender gives up on a delivery after 3-5 s
SENDER_RETRY_DELAYS = (2.0, 10.0)  # then retries after 2 s and after 10 s
WEB_WORKERS = 2
WORKER_CONCURRENCY = 2
DRAIN_TIMEOUT = 600
TOKEN = "bench-token"


class Sender:
    """Posts deliveries like the sender: one connection per POST, its timeout and retries."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = threading.Lock()
        self.answers: Counter[str] = Counter()
        self.latencies_ms: list[float] = []
        self.retries = 0
        self.given_up: list[str] = []

    def deliver(self, delivery: Delivery) -> None:
        """Post until a 2xx or until the retry schedule is used up."""
        for attempt, delay in enumerate((0.0, *SENDER_RETRY_DELAYS)):
            if delay:
                time.sleep(delay)
            outcome = self._post(delivery.body)
            with self.lock:
                self.answers[outcome] += 1
                self.retries += attempt > 0
            if outcome in ("queued", "spooled", "duplicate"):
                return
        with self.lock:
            self.given_up.append(delivery.event_id)

    def _post(self, body: str) -> str:
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=SENDER_TIMEOUT_SECONDS)
        try:
            conn.request(
                "POST",
                "/webhooks",
                body=body.encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
            )
            response = conn.getresponse()
            answer = response.read()
        except OSError as exc:
            return f"error:{exc.__class__.__name__}"
        finally:
            conn.close()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status // 100 != 2:
            return f"http_{response.status}"
        with self.lock:
            self.latencies_ms.append(elapsed)
        document = orjson.loads(answer)
        return document.get("stored") or document.get("status") or "queued"


def _outcomes(engine) -> tuple[int, int, int]:
    """(events with a final outcome, duplicate deliveries seen, dead letters) in the store."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE state IN ('processed', 'stale')), "
                "coalesce(sum(duplicates), 0), count(*) FILTER (WHERE state = 'dead_lettered') "
                "FROM events"
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _broker_empty(client: redis.Redis) -> bool:
    return client.llen(EVENTS_QUEUE) == 0 and client.hlen("unacked") == 0


ROLE_NAMES = {
    "web": ("gunicorn master", "gunicorn worker"),
    "worker": ("celery main process", "celery pool child"),
}


def _memory(processes: dict[str, int]) -> list[dict[str, object]]:
    """Peak resident memory of every process of each role (the root first, then its children)."""
    out = []
    for role, root in processes.items():
        for pid in process_tree(root):
            name = ROLE_NAMES[role][0 if pid == root else 1]
            out.append(
                {
                    "role": role,
                    "process": name,
                    "command": command_line(pid),
                    "pid": pid,
                    "peak_rss_mib": round(peak_rss_mib(pid) or 0, 1),
                }
            )
    return out


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2) if ordered else 0.0


def run(
    redis_url: str, store_url: str, *, events: int = EVENTS, appointments: int = APPOINTMENTS
) -> dict[str, object]:
    """Send the workload through web and workers; return timings, memory and the checks."""
    from handlers.store import Store

    workload = generate(
        events=events, appointments=appointments, duplicate_share=DUPLICATE_SHARE, tag="e2e"
    )
    store = Store(store_url)
    client = redis.Redis.from_url(redis_url)
    port = free_port()
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": store_url,
        "WEBHOOK_TOKEN": TOKEN,
        "ENGAGEHOOK_SKIP_MIGRATE": "1",
    }
    with tempfile.TemporaryDirectory(prefix="engagehook-bench-e2e-") as tmp:
        env["ENGAGEHOOK_DATA_DIR"] = str(Path(tmp, "var"))
        web = start(
            ENGAGEHOOK
            + ["web", "--host", "127.0.0.1", "--port", str(port), "--workers", str(WEB_WORKERS)],
            env,
            Path(tmp, "web.log"),
        )
        worker = start(
            ENGAGEHOOK + ["worker", "--concurrency", str(WORKER_CONCURRENCY)],
            env,
            Path(tmp, "worker.log"),
        )
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/readyz")
            timings, sender = _send_and_drain(workload, port, store, client)
            memory = _memory({"web": web.pid, "worker": worker.pid})
        finally:
            stop(worker)
            stop(web)
    checks = _check(workload, store, sender)
    store.engine.dispose()
    client.close()
    return {
        "settings": {
            "events": len(workload.deliveries),
            "unique_events": workload.unique_events,
            "duplicates": workload.duplicates,
            "appointments": workload.appointments,
            "senders": SENDERS,
            "web_workers": WEB_WORKERS,
            "worker_concurrency": WORKER_CONCURRENCY,
        },
        **timings,
        "ack_p50_ms": _percentile(sender.latencies_ms, 0.50),
        "ack_p99_ms": _percentile(sender.latencies_ms, 0.99),
        "answers": dict(sender.answers),
        "sender_retries": sender.retries,
        "memory": memory,
        "checks": checks,
    }


def _send_and_drain(workload: Workload, port: int, store, client) -> tuple[dict, Sender]:
    sender = Sender(port)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="sender") as pool:
        list(pool.map(sender.deliver, workload.deliveries))
    posted = time.perf_counter()

    def drained() -> bool:
        final, _duplicates, dead = _outcomes(store.engine)
        return final + dead >= workload.unique_events and _broker_empty(client)

    wait_until(drained, DRAIN_TIMEOUT, "the pipeline draining", interval=0.2)
    finished = time.perf_counter()
    total = finished - started
    return {
        "post_seconds": round(posted - started, 2),
        "drain_seconds": round(total, 2),
        "ingest_per_second": round(len(workload.deliveries) / (posted - started), 1),
        "events_per_second": round(len(workload.deliveries) / total, 1),
        "unique_events_per_second": round(workload.unique_events / total, 1),
        "drain_after_last_post_seconds": round(finished - posted, 2),
    }, sender


def _check(workload: Workload, store, sender: Sender) -> dict[str, object]:
    """The store against the workload: one outcome each, newest snapshot, nothing lost."""
    final, duplicates, dead = _outcomes(store.engine)
    mismatched = [
        appointment_id
        for appointment_id, snapshot in workload.newest.items()
        if store.snapshot(appointment_id) != snapshot
    ]
    expected_ids = {d.event_id for d in workload.deliveries}
    with store.engine.connect() as conn:
        stored_ids = set(conn.execute(text("SELECT id FROM events")).scalars())
    checks = {
        # Anything here came from outside this workload: a leak the counts would hide.
        "unexpected_event_ids": sorted(stored_ids - expected_ids)[:5],
        "events_with_one_outcome": final,
        "expected_events": workload.unique_events,
        "duplicates_seen": duplicates,
        "expected_duplicates": workload.duplicates,
        "dead_lettered": dead,
        "appointments_matching_newest_snapshot": len(workload.newest) - len(mismatched),
        "appointments": len(workload.newest),
        "deliveries_given_up_by_sender": len(sender.given_up),
    }
    checks["ok"] = (
        final == workload.unique_events
        and duplicates == workload.duplicates
        and dead == 0
        and not mismatched
        and not sender.given_up
        and stored_ids == expected_ids
    )
    return checks
