"""The one benchmark command: ``python -m bench.run`` writes bench/results.md and results.json.

Runs the endpoint, worker, validation and end-to-end benchmarks on this machine against
Redis and PostgreSQL on loopback, checks their correctness counts, prints the ratios and
writes both result files. Exit status 1 when a benchmark could not run or a check failed;
a missed performance target is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC
from datetime import datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/run.py` from a checkout
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.support import BenchError  # noqa: E402

SECTIONS = ("endpoint", "workers", "validation", "e2e")
VALIDATION_SCRIPT = ROOT / "bench" / "bench_validation.py"
# Other work on the machine skews every number; wait this long at most for it to calm down.
SETTLE_SECONDS = 30
PACKAGES = (
    "celery",
    "kombu",
    "redis",
    "flask",
    "gunicorn",
    "marshmallow",
    "sqlalchemy",
    "psycopg",
    "orjson",
)


def preflight(sections: list[str]) -> None:
    """Fail early, with what to do, when a tool or service the benchmarks need is missing."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        raise BenchError("psutil is missing: pip install -e '.[bench]'") from None
    if "endpoint" in sections:
        from bench.loadgen import require_wrk

        require_wrk()
    if {"endpoint", "workers", "e2e"} & set(sections):
        from bench.support import check_postgres

        check_postgres()


def settle(limit: float = SETTLE_SECONDS) -> float:
    """Wait up to ``limit`` s for the machine to quieten (1-minute load below the CPU count)."""
    cpus = os.cpu_count() or 1
    deadline = time.monotonic() + limit
    while os.getloadavg()[0] >= cpus and time.monotonic() < deadline:
        time.sleep(5)
    return round(os.getloadavg()[0], 2)


def environment(redis_url: str, redis_how: str) -> dict[str, object]:
    """What the numbers were measured on (no host names, no paths)."""
    import redis
    import sqlalchemy

    from bench.support import DATABASE_URL

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    engine = sqlalchemy.create_engine(DATABASE_URL)
    with engine.connect() as conn:
        postgres = conn.execute(sqlalchemy.text("SHOW server_version")).scalar()
        synchronous_commit = conn.execute(sqlalchemy.text("SHOW synchronous_commit")).scalar()
    engine.dispose()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "redis_server": redis.Redis.from_url(redis_url).info("server")["redis_version"],
        "redis": redis_how,
        "postgresql": postgres,
        "postgresql_synchronous_commit": synchronous_commit,
        "packages": versions,
    }


def run_validation() -> dict[str, object]:
    """The validation rows from bench/bench_validation.py (another benchmark, run as is)."""
    if not VALIDATION_SCRIPT.exists():
        return {"available": False, "reason": "bench/bench_validation.py is not in this checkout"}
    with tempfile.TemporaryDirectory(prefix="engagehook-bench-validation-") as tmp:
        out = Path(tmp, "validation.json")
        result = subprocess.run(
            [sys.executable, str(VALIDATION_SCRIPT), "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0 or not out.exists():
            return {
                "available": False,
                "reason": f"bench_validation.py failed: {result.stderr.strip()[-500:]}",
            }
        return {"available": True, **json.loads(out.read_text())}


def run_sections(sections: list[str], quick: bool) -> dict[str, object]:
    """Run each benchmark in turn; one that fails records why and the others still run."""
    import redis

    from bench.support import bench_redis
    from bench.support import fresh_postgres_schema

    results: dict[str, object] = {}
    with bench_redis() as (redis_url, redis_how):
        results["environment"] = environment(redis_url, redis_how)
        for section in sections:
            # Nothing one benchmark leaves in the broker (queues, in-flight registry) may
            # leak into the next: the Redis DB is the benchmark's own.
            redis.Redis.from_url(redis_url).flushdb()
            load = settle()
            started = time.monotonic()
            print(f"bench: {section} (load average {load}) ...", flush=True)
            try:
                if section == "validation":
                    results[section] = run_validation()
                else:
                    with fresh_postgres_schema() as store_url:
                        results[section] = _run_store_section(section, redis_url, store_url, quick)
            except BenchError as exc:
                results[section] = {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - report it and go on with the others
                traceback.print_exc()
                results[section] = {"error": f"{exc.__class__.__name__}: {exc}"}
            results[section]["wall_seconds"] = round(time.monotonic() - started, 1)
            results[section]["load_average_before"] = load
            print(f"bench: {section} done in {results[section]['wall_seconds']} s", flush=True)
    results["quick"] = quick
    return results


def _run_store_section(
    section: str, redis_url: str, store_url: str, quick: bool
) -> dict[str, object]:
    from handlers.store import Store

    store = Store(store_url)
    store.migrate()
    store.engine.dispose()
    if section == "endpoint":
        from bench import endpoint

        return endpoint.run(redis_url, store_url, rounds=1 if quick else endpoint.ROUNDS)
    if section == "workers":
        from bench import workers

        return workers.run(
            redis_url, store_url, rounds=1 if quick else workers.ROUNDS, scale=0.2 if quick else 1.0
        )
    from bench import e2e

    if quick:
        return e2e.run(redis_url, store_url, events=2_000, appointments=200)
    return e2e.run(redis_url, store_url)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named on the command line (all by default) and write the results."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this benchmark (repeatable)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller runs to check the harness (numbers not comparable)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=ROOT / "bench",
        help="where results.md and results.json go (default: bench/)",
    )
    args = parser.parse_args(argv)
    sections = args.only or list(SECTIONS)
    try:
        preflight(sections)
        results = run_sections(sections, args.quick)
    except BenchError as exc:
        print(f"bench: cannot run: {exc}", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report.render(results)
    (args.out_dir / "results.md").write_text(markdown)
    print(report.summary(results))
    print(f"bench: wrote {args.out_dir / 'results.md'} and results.json")
    return 0 if report.all_ran_and_checked(results) else 1


if __name__ == "__main__":
    sys.exit(main())
