"""Events per second of one worker process: process_webhook on PostgreSQL beside a no-op task.

Both run as real ``celery worker --concurrency 1`` processes with engagehook's settings on the
same Redis. The messages are staged in a side list first; once the worker announces itself
(``worker-online``), one atomic RENAME hands them all over and the clock runs until the
queue and kombu's unacked hash are both empty. Runs alternate so drift hits both alike.
Then the stages of one event are timed in-process to show where the time goes.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from bench.noop_worker import NOOP_TASK
from bench.support import ENGAGEHOOK
from bench.support import BenchError
from bench.support import command_line
from bench.support import cpu_times
from bench.support import cpu_used
from bench.support import peak_rss_mib
from bench.support import postgres_backends
from bench.support import process_tree
from bench.support import start
from bench.support import stop
from bench.support import wait_until
from bench.support import with_application_name
from bench.workload import Delivery
from bench.workload import generate
from core.config import Settings
from core.names import EVENTS_QUEUE
from core.names import INFLIGHT_BODIES
from core.names import INFLIGHT_SINCE
from core.names import PROCESS_WEBHOOK
from ingest.publisher import RedisPublisher
from workers.celery_app import create_celery_app

STAGING_KEY = "bench.staging"
NOOP_EVENTS = 5000
ENGAGEHOOK_EVENTS = 1500
ROUNDS = 2
STAGE_SAMPLES = 400
WORKER_START_TIMEOUT = 60
DRAIN_TIMEOUT = 120


def _argv(kind: str, concurrency: int) -> list[str]:
    if kind == "engagehook":
        return ENGAGEHOOK + ["worker", "--concurrency", str(concurrency), "--loglevel", "INFO"]
    # The flags `engagehook worker` passes to celery, on the no-op app.
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.noop_worker",
        "worker",
        "--queues",
        EVENTS_QUEUE,
        "--loglevel",
        "INFO",
        "--task-events",
        "--concurrency",
        str(concurrency),
    ]


def _stage(
    client: redis.Redis, publisher: RedisPublisher, deliveries: list[Delivery], *, in_flight: bool
) -> None:
    """Put the task messages in a side list the worker does not read.

    With ``in_flight`` each is also registered the way ingest registers what it publishes,
    so the worker's clean-up of that registry is part of what is measured.
    """
    client.delete(STAGING_KEY)
    pipe = client.pipeline(transaction=False)
    for index, delivery in enumerate(deliveries, 1):
        argsrepr = f"(event_id={delivery.event_id!r})"
        event_id = delivery.event_id if in_flight else None
        pipe.lpush(
            STAGING_KEY,
            publisher.task_message(str(uuid.uuid4()), delivery.body, argsrepr, event_id=event_id),
        )
        if in_flight:
            pipe.hset(INFLIGHT_BODIES, delivery.event_id, delivery.body)
            pipe.zadd(INFLIGHT_SINCE, {delivery.event_id: time.time()}, nx=True)
        if index % 500 == 0:
            pipe.execute()
    pipe.execute()


def _empty(client: redis.Redis) -> bool:
    pipe = client.pipeline(transaction=False)
    pipe.llen(EVENTS_QUEUE)
    pipe.hlen("unacked")  # kombu's hash of delivered, not yet acknowledged messages
    waiting, held = pipe.execute()
    return waiting == 0 and held == 0


def _drain(
    kind: str,
    deliveries: list[Delivery],
    redis_url: str,
    env: dict[str, str],
    log_dir: Path,
    concurrency: int = 1,
) -> dict[str, object]:
    """Start one worker, hand it the staged messages, time it until the queue is empty."""
    settings = Settings.from_env({"REDIS_URL": redis_url})
    app = create_celery_app(settings)
    task = PROCESS_WEBHOOK if kind == "engagehook" else NOOP_TASK
    client = redis.Redis.from_url(redis_url)
    publisher = RedisPublisher(app, redis_url, task, timeout=5)
    _stage(client, publisher, deliveries, in_flight=kind == "engagehook")
    online = client.pubsub()
    db = client.connection_pool.connection_kwargs.get("db", 0)
    online.subscribe(f"/{db}.celeryev/worker.online")
    online.get_message(timeout=1)
    application_name = f"engagehook-bench-{kind}-{uuid.uuid4().hex[:8]}"
    env = {**env, "DATABASE_URL": with_application_name(env["DATABASE_URL"], application_name)}
    worker = start(_argv(kind, concurrency), env, log_dir / f"worker-{kind}.log")
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while online.get_message(timeout=1) is None:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the {kind} worker did not come online; see its log")
        pids = process_tree(worker.pid)
        cpu_before = cpu_times(pids)
        started = time.perf_counter()
        client.rename(STAGING_KEY, EVENTS_QUEUE)
        wait_until(
            lambda: _empty(client), DRAIN_TIMEOUT, f"the {kind} worker draining", interval=0.005
        )
        seconds = time.perf_counter() - started
        cpu_after = cpu_times(pids)
        cpu = cpu_used(cpu_before, cpu_after)
        main_cpu = cpu_used(
            {worker.pid: cpu_before.get(worker.pid, 0.0)},
            {worker.pid: cpu_after.get(worker.pid, 0.0)},
        )
        # The worker connects after it came online: its server process's whole CPU is this run's.
        postgres_cpu = cpu_used({}, cpu_times(postgres_backends(application_name)))
        memory = [
            {"process": command_line(pid), "pid": pid, "peak_rss_mib": peak_rss_mib(pid)}
            for pid in process_tree(worker.pid)
        ]
    finally:
        stop(worker)
        online.close()
        publisher.close()
        client.close()
    return {
        "events": len(deliveries),
        "seconds": round(seconds, 3),
        "events_per_second": round(len(deliveries) / seconds, 1),
        "worker_cpu_us_per_event": round(cpu / len(deliveries) * 1e6),
        # Celery's main process (broker, acks, events) and the pool child (the task).
        "main_cpu_us_per_event": round(main_cpu / len(deliveries) * 1e6),
        "child_cpu_us_per_event": round((cpu - main_cpu) / len(deliveries) * 1e6),
        "postgres_cpu_us_per_event": round(postgres_cpu / len(deliveries) * 1e6),
        "peak_rss_mib": memory,
    }


def run(
    redis_url: str, store_url: str, *, rounds: int = ROUNDS, scale: float = 1.0
) -> dict[str, object]:
    """Alternate no-op and engagehook drains; return rates, their ratio and the stage costs."""
    from handlers.store import Store

    noop_events, engagehook_events = int(NOOP_EVENTS * scale), int(ENGAGEHOOK_EVENTS * scale)

    store = Store(store_url)
    env = {"REDIS_URL": redis_url, "DATABASE_URL": store_url, "ENGAGEHOOK_SKIP_MIGRATE": "1"}
    with tempfile.TemporaryDirectory(prefix="engagehook-bench-workers-") as tmp:
        env["ENGAGEHOOK_DATA_DIR"] = str(Path(tmp, "var"))
        runs = _alternate(
            store,
            env,
            redis_url,
            Path(tmp),
            rounds=rounds,
            concurrency=1,
            noop_events=noop_events,
            engagehook_events=engagehook_events,
        )
        # The same comparison for a whole worker at its default concurrency (one pool process
        # per core): the main process then fetches for one child while the other works.
        cores = os.cpu_count() or 1
        full = _alternate(
            store,
            env,
            redis_url,
            Path(tmp),
            rounds=1,
            concurrency=cores,
            noop_events=noop_events,
            engagehook_events=engagehook_events * cores,
            tag="c",
        )
    stages = measure_stages(store)
    store.engine.dispose()
    return {
        "settings": {
            "pool": "prefork, --concurrency 1",
            "broker": "Redis (loopback)",
            "store": "PostgreSQL (loopback)",
            "rounds": rounds,
            "noop_events": noop_events,
            "engagehook_events": engagehook_events,
        },
        **_compare(runs),
        "whole_worker": {
            "concurrency": cores,
            "engagehook_events": engagehook_events * cores,
            **_compare(full),
        },
        "stages": stages,
    }


def _alternate(
    store,
    env: dict[str, str],
    redis_url: str,
    log_dir: Path,
    *,
    rounds: int,
    concurrency: int,
    noop_events: int,
    engagehook_events: int,
    tag: str = "",
) -> dict[str, list[dict[str, object]]]:
    """Drain no-op and engagehook messages in turn, checking every event was processed."""
    runs: dict[str, list[dict[str, object]]] = {"noop": [], "engagehook": []}
    for round_ in range(rounds):
        noop = generate(events=noop_events, appointments=noop_events // 10, tag=f"n{tag}{round_}")
        runs["noop"].append(_drain("noop", noop.deliveries, redis_url, env, log_dir, concurrency))
        work = generate(
            events=engagehook_events, appointments=engagehook_events // 10, tag=f"w{tag}{round_}"
        )
        # Oldest first: every event is applied, the costly path (a stale one is cheaper).
        in_order = sorted(work.deliveries, key=lambda d: d.updated_at)
        before = store.count_events("processed")
        runs["engagehook"].append(
            _drain("engagehook", in_order, redis_url, env, log_dir, concurrency)
        )
        processed = store.count_events("processed") - before
        if processed != work.unique_events:
            raise BenchError(
                f"the engagehook worker processed {processed} of {work.unique_events} events"
            )
    return runs


def _compare(runs: dict[str, list[dict[str, object]]]) -> dict[str, object]:
    noop_rate = statistics.median(r["events_per_second"] for r in runs["noop"])
    ours = statistics.median(r["events_per_second"] for r in runs["engagehook"])
    return {
        "noop": {"events_per_second": noop_rate, "runs": runs["noop"]},
        "engagehook": {"events_per_second": ours, "runs": runs["engagehook"]},
        "ratio": round(ours / noop_rate, 3) if noop_rate else None,
        # Less sensitive to other load on the machine than the rates: CPU per event, no-op/ours.
        "cpu_ratio": round(_best_cpu(runs["noop"]) / _best_cpu(runs["engagehook"]), 3),
    }


def _best_cpu(runs: list[dict[str, object]]) -> float:
    return float(min(r["worker_cpu_us_per_event"] for r in runs))


def measure_stages(store) -> dict[str, float]:
    """Microseconds per event of validation, the store commit and the whole of process()."""
    from handlers import HANDLERS
    from handlers.hooks import registry
    from workers.processing import process
    from workers.validation import parse_event

    def ordered(tag: str) -> list[Delivery]:
        # In updatedAt order per appointment, so every event is applied (none is stale).
        work = generate(events=STAGE_SAMPLES, appointments=STAGE_SAMPLES // 8, tag=tag)
        return sorted(work.deliveries, key=lambda d: (d.appointment_id, d.updated_at))

    first, second, third = ordered("stage-v"), ordered("stage-s"), ordered("stage-p")

    def timed(items, fn) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for item in items:
            fn(item)
        return (
            (time.perf_counter() - wall) / len(items) * 1e6,
            (time.process_time() - cpu) / len(items) * 1e6,
        )

    validate_wall, validate_cpu = timed(first, lambda d: parse_event(d.body))
    events = [(parse_event(d.body), d.body) for d in second]
    store_wall, store_cpu = timed(
        events, lambda pair: store.apply(pair[0], pair[1], HANDLERS[pair[0].event_type])
    )
    process_wall, process_cpu = timed(third, lambda d: process(d.body, store, registry))
    commit_wall = _commit_latency(store)
    return {
        "validate_us": round(validate_wall),
        "validate_cpu_us": round(validate_cpu),
        "store_us": round(store_wall),
        "store_cpu_us": round(store_cpu),
        "process_us": round(process_wall),
        "process_cpu_us": round(process_cpu),
        "bare_commit_us": round(commit_wall),
        "samples": len(first),
    }


def _commit_latency(store, samples: int = 200) -> float:
    """Microseconds of one tiny durable commit: the floor under any per-event transaction."""
    from sqlalchemy import text

    # A regular table: writes to a temporary one skip the WAL and so the flush at commit.
    with store.engine.connect() as conn:
        conn.execute(text("CREATE TABLE bench_commit_probe (x integer)"))
        conn.commit()
        started = time.perf_counter()
        for i in range(samples):
            conn.execute(text("INSERT INTO bench_commit_probe VALUES (:x)"), {"x": i})
            conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute(text("DROP TABLE bench_commit_probe"))
        conn.commit()
    return elapsed / samples * 1e6
