"""POST /webhooks under gunicorn beside the bare, raw-LPUSH and naive send_task endpoints.

All servers run at once with the same gunicorn settings; wrk visits them in turn,
round after round, and each ratio is the median of the per-round ratios, so drift on a
shared machine hits both sides of a ratio alike. Then each is held at half of its own
maximum rate for the latency row (best of two tries: other load only ever adds latency).
Every 202 must be in Redis afterwards.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import redis

from bench import loadgen
from bench.support import ENGAGEHOOK
from bench.support import BenchError
from bench.support import example_body
from bench.support import free_port
from bench.support import start
from bench.support import stop
from bench.support import wait_http_ok
from core.names import INFLIGHT_BODIES
from core.names import INFLIGHT_SINCE
from engagehook.cli import gunicorn_argv
from ingest import gunicorn_conf

# Exactly what `engagehook web` passes to gunicorn (engagehook/cli.py, cmd_web).
WEB_WORKERS = 2
# The references run on the worker class `engagehook web` runs on (ingest/gunicorn_conf.py),
# so a ratio compares the apps, not two ways of serving them.
SERVING_FLAGS = [
    "--worker-class",
    gunicorn_conf.worker_class,
    "--threads",
    str(gunicorn_conf.threads),
    "--worker-connections",
    str(gunicorn_conf.worker_connections),
    "--keep-alive",
    str(gunicorn_conf.keepalive),
]
GUNICORN_FLAGS = [
    "--workers",
    str(WEB_WORKERS),
    "--timeout",
    "30",
    "--graceful-timeout",
    "30",
    "--access-logfile",
    "-",
    "--no-control-socket",
]
CONNECTIONS = 8
WARMUP_SECONDS = 2
ROUND_SECONDS = 3
ROUNDS = 5
HALF_RATE_SECONDS = 6
HALF_RATE_TRIES = 2
TOKEN = "bench-token"


@dataclass(frozen=True)
class Endpoint:
    """One server under test and the Redis list its accepted bodies land in."""

    name: str
    label: str
    queue_key: str | None  # None: the endpoint stores nothing
    app: str | None = None  # gunicorn app spec of a reference endpoint; None: engagehook web
    shipped_config: bool = False  # run the app with `engagehook web`'s gunicorn config
    sync_workers: bool = False  # gunicorn's sync workers instead of engagehook's worker class


ENDPOINTS = (
    Endpoint(
        "bare",
        "bare Flask: parse + 202, nothing stored (ceiling)",
        None,
        "bench.reference_app:create_bare()",
    ),
    Endpoint(
        "bare-sync",
        "diagnostic: bare Flask on gunicorn sync workers (one connection per process)",
        None,
        "bench.reference_app:create_bare()",
        sync_workers=True,
    ),
    Endpoint(
        "lpush",
        "reference: parse + raw Redis LPUSH",
        "bench.raw",
        "bench.reference_app:create_lpush()",
    ),
    Endpoint(
        "naive",
        "reference: parse + Celery send_task (default app)",
        "celery",
        "bench.reference_app:create_naive()",
    ),
    Endpoint("engagehook", "engagehook POST /webhooks (token auth, durable enqueue)", "engagehook"),
    Endpoint(
        "no-inflight",
        "diagnostic: engagehook without the in-flight copy of each body",
        "engagehook",
        "bench.variants:create_without_inflight()",
        shipped_config=True,
    ),
)


def _start(endpoint: Endpoint, port: int, env: dict[str, str], log_dir: Path):
    if endpoint.app is None:
        argv = ENGAGEHOOK + [
            "web",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(WEB_WORKERS),
        ]
    elif endpoint.shipped_config:
        # What `engagehook web` runs (engagehook/cli.py, cmd_web), with another app.
        metrics = log_dir / f"metrics-{endpoint.name}"
        metrics.mkdir()
        env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
        argv = gunicorn_argv(
            endpoint.app, f"127.0.0.1:{port}", workers=WEB_WORKERS, log_level="info"
        )
    else:
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            endpoint.app,
            "--bind",
            f"127.0.0.1:{port}",
            *GUNICORN_FLAGS,
            *([] if endpoint.sync_workers else SERVING_FLAGS),
        ]
    return start(argv, env, log_dir / f"{endpoint.name}.log")


def _drain(client: redis.Redis) -> dict[str, int]:
    """How many messages each endpoint's list holds; then empty the lists (not the bindings)."""
    counts = {e.name: int(client.llen(e.queue_key)) for e in ENDPOINTS if e.queue_key}
    # The in-flight registry too: no worker runs here to clear it, and it holds every body.
    client.unlink(*{e.queue_key for e in ENDPOINTS if e.queue_key}, INFLIGHT_BODIES, INFLIGHT_SINCE)
    return counts


def run(redis_url: str, store_url: str, *, rounds: int = ROUNDS) -> dict[str, object]:
    """Measure every endpoint; return rows with ratios to the bare endpoint."""
    body = example_body("CREATE")
    client = redis.Redis.from_url(redis_url)
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": store_url,
        "WEBHOOK_TOKEN": TOKEN,
        "ENGAGEHOOK_SKIP_MIGRATE": "1",
    }
    servers, urls = [], {}
    with tempfile.TemporaryDirectory(prefix="engagehook-bench-web-") as tmp:
        env["ENGAGEHOOK_DATA_DIR"] = str(Path(tmp, "var"))
        try:
            for endpoint in ENDPOINTS:
                port = free_port()
                servers.append(_start(endpoint, port, env, Path(tmp)))
                urls[endpoint.name] = f"http://127.0.0.1:{port}"
            for endpoint in ENDPOINTS:
                wait_http_ok(urls[endpoint.name] + "/healthz")
            for endpoint in ENDPOINTS:
                loadgen.post(
                    urls[endpoint.name] + "/webhooks",
                    body,
                    seconds=WARMUP_SECONDS,
                    connections=CONNECTIONS,
                    token=TOKEN,
                )
            _drain(client)
            maxima: dict[str, list[loadgen.LoadResult]] = {e.name: [] for e in ENDPOINTS}
            unstored: dict[str, int] = {e.name: 0 for e in ENDPOINTS}
            for _ in range(rounds):
                for endpoint in ENDPOINTS:
                    result = loadgen.post(
                        urls[endpoint.name] + "/webhooks",
                        body,
                        seconds=ROUND_SECONDS,
                        connections=CONNECTIONS,
                        token=TOKEN,
                    )
                    maxima[endpoint.name].append(result)
                    stored = _drain(client)
                    if endpoint.queue_key:
                        # Requests still in flight when wrk stopped may be stored unanswered;
                        # an answered 202 that is not stored would be a lost event.
                        unstored[endpoint.name] += max(
                            0, result.requests - result.non_2xx - stored[endpoint.name]
                        )
            halves: dict[str, list[loadgen.LoadResult]] = {e.name: [] for e in ENDPOINTS}
            for _ in range(HALF_RATE_TRIES):
                for endpoint in ENDPOINTS:
                    rate = round(_median_run(maxima[endpoint.name]).rps / 2)
                    halves[endpoint.name].append(
                        loadgen.post(
                            urls[endpoint.name] + "/webhooks",
                            body,
                            seconds=HALF_RATE_SECONDS,
                            connections=CONNECTIONS,
                            rate=rate,
                            token=TOKEN,
                        )
                    )
                    _drain(client)
        finally:
            for server in servers:
                stop(server)
            client.close()
    return _rows(maxima, halves, unstored, len(body))


def _median_run(runs: list[loadgen.LoadResult]) -> loadgen.LoadResult:
    """The run with the median throughput (its latencies come with it)."""
    return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]


def _rows(maxima, halves, unstored, body_bytes: int) -> dict[str, object]:
    rows = []
    for endpoint in ENDPOINTS:
        runs = maxima[endpoint.name]
        if any(r.errors or r.non_2xx for r in runs + halves[endpoint.name]):
            raise BenchError(
                f"{endpoint.name}: wrk saw errors or non-2xx answers: "
                f"{[r.as_dict() for r in runs + halves[endpoint.name]]}"
            )
        best = _median_run(runs)
        ratios = [r.rps / b.rps for r, b in zip(runs, maxima["bare"], strict=True) if b.rps]
        rows.append(
            {
                "name": endpoint.name,
                "label": endpoint.label,
                "rps": best.rps,
                "rps_runs": [r.rps for r in runs],
                "rps_spread": round(statistics.pstdev([r.rps for r in runs]), 1),
                "p50_ms": best.p50_ms,
                "p99_ms": best.p99_ms,
                "ratio_to_bare": round(statistics.median(ratios), 3) if ratios else None,
                "ratio_runs": [round(r, 3) for r in ratios],
                "half_rate": min(halves[endpoint.name], key=lambda r: r.p99_ms).as_dict(),
                "half_rate_tries": [r.as_dict() for r in halves[endpoint.name]],
                "answered_but_not_stored": unstored[endpoint.name] if endpoint.queue_key else None,
            }
        )
    return {
        "settings": {
            "gunicorn": f"{WEB_WORKERS} workers each of {gunicorn_conf.threads} threads "
            f"({gunicorn_conf.worker_class.rsplit('.', 1)[-1]}: gthread with a request read "
            "deadline, one connection per thread, no keep-alive; the bare-sync row: gunicorn's "
            "sync workers), 30 s timeout, access log on (engagehook: `engagehook web` as "
            "shipped, with one JSON log line per webhook and its metrics; references: "
            "gunicorn's plain access log)",
            "load": f"wrk, 1 thread, {CONNECTIONS} connections, loopback",
            "rounds": len(maxima["bare"]),
            "round_seconds": ROUND_SECONDS,
            "half_rate_seconds": HALF_RATE_SECONDS,
            "half_rate_tries": HALF_RATE_TRIES,
            "body_bytes": body_bytes,
        },
        "rows": rows,
    }
