"""Prometheus metrics: webhook and event outcomes, state gauges, correct across processes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.config import Settings
from core.names import PROCESS_WEBHOOK
from core.names import RUN_HOOK
from handlers.hook_runner import HookRunDeadLettered
from handlers.store import Store
from ingest import metrics as ingest_metrics
from ingest.app import create_app
from ingest.queue import CeleryQueue
from ingest.queue import SpoolingQueue
from ingest.spool import Spool
from tests.builders import EXAMPLE_FILES
from tests.builders import body
from tests.builders import envelope
from tests.builders import load_payload
from tests.fakes import SwitchableQueue
from tests.fakes import UnreachableQueue
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok
from tests.processes import wait_until
from workers import metrics as worker_metrics
from workers.celery_app import create_celery_app

JSON = {"Content-Type": "application/json"}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text exposition, keyed by name and labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def total(text: str, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples(text).items() if n == name and wanted <= lbls)


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.get_data(as_text=True)


class TestClassify:
    """Each answer of POST /webhooks maps to one bounded (outcome, reason) pair."""

    @pytest.mark.parametrize(
        "status,document,expected",
        [
            (202, {"status": "queued", "stored": "queued"}, ("queued", "")),
            (202, {"status": "queued", "stored": "spooled"}, ("spooled", "")),
            (200, {"status": "duplicate", "id": "e"}, ("duplicate", "")),
            (400, {"error": "invalid_json", "message": "..."}, ("rejected", "invalid_json")),
            (401, {"error": "unauthorized", "message": "..."}, ("rejected", "unauthorized")),
            (503, {"error": "unavailable", "message": "..."}, ("rejected", "unavailable")),
            (400, {"error": "Not A Code <script>", "message": "..."}, ("rejected", "http_400")),
            (500, None, ("rejected", "http_500")),
        ],
    )
    def test_answer_is_classified(self, status, document, expected):
        assert ingest_metrics.classify(status, document) == expected


class TestWebhookCounters:
    """The ingest app counts every answer of POST /webhooks by outcome and reason."""

    def test_queued_webhook_is_counted(self, client):
        assert client.post("/webhooks", data=body(load_payload()), headers=JSON).status_code == 202
        text = scrape(client)
        assert value(text, "engagehook_webhooks_received_total", outcome="queued", reason="") == 1
        assert value(text, "engagehook_webhook_ack_seconds_count", outcome="queued") == 1

    @pytest.mark.parametrize(
        "data,headers,reason",
        [
            (b"{not json", JSON, "invalid_json"),
            (b"[1, 2]", JSON, "invalid_envelope"),
            (b'{"no": "id"}', JSON, "invalid_envelope"),
            (b"{}", {"Content-Type": "text/plain"}, "unsupported_media_type"),
        ],
    )
    def test_rejection_is_counted_by_its_error_code(self, client, data, headers, reason):
        assert client.post("/webhooks", data=data, headers=headers).status_code >= 400
        text = scrape(client)
        assert (
            value(text, "engagehook_webhooks_received_total", outcome="rejected", reason=reason)
            == 1
        )
        assert total(text, "engagehook_webhooks_received_total", outcome="queued") == 0

    def test_wrong_token_is_counted_as_unauthorized(self, env, queue):
        client = create_app({**env, "WEBHOOK_TOKEN": "right"}, queue=queue).test_client()
        client.post("/webhooks?token=wrong", data=body(load_payload()), headers=JSON)
        assert (
            value(
                scrape(client),
                "engagehook_webhooks_received_total",
                outcome="rejected",
                reason="unauthorized",
            )
            == 1
        )

    def test_metrics_needs_no_webhook_token(self, env, queue):
        client = create_app({**env, "WEBHOOK_TOKEN": "right"}, queue=queue).test_client()
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.mimetype == "text/plain"

    def test_broker_down_without_spool_is_counted_as_unavailable(self, env):
        client = create_app(env, queue=UnreachableQueue()).test_client()
        assert client.post("/webhooks", data=body(load_payload()), headers=JSON).status_code == 503
        assert (
            value(
                scrape(client),
                "engagehook_webhooks_received_total",
                outcome="rejected",
                reason="unavailable",
            )
            == 1
        )

    def test_spooled_webhook_is_counted_and_shows_in_spool_depth(self, env, data_dir):
        settings = Settings.from_env(env)
        queue = SpoolingQueue(SwitchableQueue(down=True), Spool(settings.spool_dir, 10_000_000))
        client = create_app(env, queue=queue).test_client()
        response = client.post("/webhooks", data=body(load_payload()), headers=JSON)
        assert response.json["stored"] == "spooled"
        text = scrape(client)
        assert value(text, "engagehook_webhooks_received_total", outcome="spooled", reason="") == 1
        assert value(text, "engagehook_spool_depth") == 1
        assert value(text, "engagehook_spool_bytes") > 0

    def test_other_routes_are_not_counted(self, client):
        client.get("/healthz")
        client.get("/metrics")
        assert total(scrape(client), "engagehook_webhooks_received_total") == 0


class TestStateGauges:
    """Queue, spool and dead-letter gauges are read when scraped; a dead source never fails it."""

    def test_embedded_queue_depth_counts_waiting_messages(self, env, client):
        settings = Settings.from_env(env)
        CeleryQueue(create_celery_app(settings)).enqueue(
            body(load_payload()), event_id="e-1", event_type="CREATE", appointment_id="a-1"
        )
        text = scrape(client)
        assert value(text, "engagehook_queue_depth", queue="engagehook") == 1
        assert value(text, "engagehook_queue_depth", queue="engagehook.hooks") == 0
        assert value(text, "engagehook_source_up", source="broker") == 1

    def test_dead_letters_are_counted_from_the_store(self, env, client):
        store = Store(Settings.from_env(env).store_url)
        store.migrate()
        store.dead_letter(
            event_id="bad-1",
            raw_body="{}",
            reason="invalid",
            errors=[{"path": "id", "message": "missing"}],
        )
        text = scrape(client)
        assert value(text, "engagehook_dead_letters", kind="event") == 1
        assert value(text, "engagehook_dead_letters", kind="hook") == 0
        store.engine.dispose()

    def test_spool_depth_ignores_half_written_files(self, env, client):
        spool_dir = Settings.from_env(env).spool_dir
        spool_dir.mkdir(parents=True, exist_ok=True)
        Spool(spool_dir, 10_000_000).put("{}", event_id="e", event_type=None, appointment_id=None)
        (spool_dir / ".tmp-half-written").write_text("{")
        assert value(scrape(client), "engagehook_spool_depth") == 1

    def test_unreachable_broker_and_store_are_reported_not_fatal(self, env, queue):
        closed = free_port()
        client = create_app(
            {
                **env,
                "REDIS_URL": f"redis://127.0.0.1:{closed}/0",
                "DATABASE_URL": f"postgresql+psycopg://u@127.0.0.1:{closed}/db",
            },
            queue=queue,
        ).test_client()
        text = scrape(client)
        assert value(text, "engagehook_source_up", source="broker") == 0
        assert value(text, "engagehook_source_up", source="store") == 0
        assert value(text, "engagehook_source_up", source="spool") == 1
        assert value(text, "engagehook_queue_depth", queue="engagehook") is None

    @pytest.mark.real
    def test_redis_queue_depth_counts_every_priority_list_and_unacked(self, env, queue, redis_url):
        import redis

        client = create_app({**env, "REDIS_URL": redis_url}, queue=queue).test_client()
        broker = redis.Redis.from_url(redis_url)
        broker.lpush("engagehook", "m1", "m2")
        broker.lpush("engagehook\x06\x163", "m3")
        broker.lpush("engagehook.hooks", "h1")
        broker.hset("unacked", "tag", "m0")
        text = scrape(client)
        assert value(text, "engagehook_queue_depth", queue="engagehook") == 3
        assert value(text, "engagehook_queue_depth", queue="engagehook.hooks") == 1
        assert value(text, "engagehook_queue_unacked") == 1
        broker.close()


class FakeTask:
    """Just what the signal receivers read of a Celery task."""

    def __init__(self, name: str, argsrepr: str | None = None) -> None:
        self.name = name
        self.request = type("Request", (), {"argsrepr": argsrepr})()


def counted(name: str, **labels: str) -> float:
    return worker_metrics.REGISTRY.get_sample_value(name, labels) or 0.0


class TestWorkerMetrics:
    """Task signals count outcomes by eventType with bounded labels."""

    @pytest.mark.parametrize(
        "label,argsrepr,expected",
        [
            ("processed:CREATE", None, ("CREATE", "processed", "")),
            ("stale:RESCHEDULE", None, ("RESCHEDULE", "stale", "")),
            (
                "duplicate",
                "(event_id='e', eventType='CANCEL', appointment_id='a')",
                ("CANCEL", "duplicate", ""),
            ),
            (
                "dead_lettered:invalid",
                "(event_id='e', eventType=None, appointment_id=None)",
                ("unknown", "dead_lettered", "invalid"),
            ),
            (
                "dead_lettered:unsupported-eventType",
                "(event_id='e', eventType='BRAND_NEW', appointment_id='a')",
                ("unknown", "dead_lettered", "unsupported-eventType"),
            ),
            (
                "dead_lettered:transient",
                "(event_id='e', eventType='COMPLETE', appointment_id='a')",
                ("COMPLETE", "dead_lettered", "transient"),
            ),
            ("something else", None, ("unknown", "other", "")),
        ],
    )
    def test_outcome_label_maps_to_bounded_labels(self, label, argsrepr, expected):
        assert worker_metrics.event_labels(label, argsrepr) == expected

    def test_finished_task_is_counted_with_its_latency(self):
        task = FakeTask(PROCESS_WEBHOOK, "(event_id='e', eventType='ACCEPT', appointment_id='a')")
        before = counted(
            "engagehook_events_processed_total", event_type="ACCEPT", outcome="duplicate", reason=""
        )
        observed = counted("engagehook_event_processing_seconds_count", event_type="ACCEPT")
        worker_metrics._on_prerun(task_id="t-1", task=task)
        worker_metrics._on_postrun(task_id="t-1", task=task, retval="duplicate", state="SUCCESS")
        assert (
            counted(
                "engagehook_events_processed_total",
                event_type="ACCEPT",
                outcome="duplicate",
                reason="",
            )
            == before + 1
        )
        assert (
            counted("engagehook_event_processing_seconds_count", event_type="ACCEPT")
            == observed + 1
        )

    def test_retrying_task_is_counted_as_retry_not_outcome(self):
        task = FakeTask(PROCESS_WEBHOOK, "(event_id='e', eventType='REOPEN', appointment_id='a')")
        retries = counted("engagehook_task_retries_total", task=PROCESS_WEBHOOK)
        worker_metrics._on_prerun(task_id="t-2", task=task)
        worker_metrics._on_retry(sender=task)
        worker_metrics._on_postrun(task_id="t-2", task=task, retval=None, state="RETRY")
        assert counted("engagehook_task_retries_total", task=PROCESS_WEBHOOK) == retries + 1
        assert (
            counted(
                "engagehook_events_processed_total", event_type="REOPEN", outcome="other", reason=""
            )
            == 0
        )

    @pytest.mark.parametrize(
        "retval,outcome",
        [
            ("hook:sync_crm", "hook"),
            ("skipped", "skipped"),
            ("dead_lettered:hook", "dead_lettered"),
        ],
    )
    def test_hook_runs_are_counted_by_outcome(self, retval, outcome):
        before = counted("engagehook_hook_runs_total", outcome=outcome)
        worker_metrics._on_postrun(
            task_id="h", task=FakeTask(RUN_HOOK), retval=retval, state="SUCCESS"
        )
        assert counted("engagehook_hook_runs_total", outcome=outcome) == before + 1

    def test_dead_lettered_hook_run_is_a_hook_outcome_not_a_failure(self):
        dead = counted("engagehook_hook_runs_total", outcome="dead_lettered")
        failures = counted("engagehook_task_failures_total", task=RUN_HOOK)
        worker_metrics._on_failure(
            sender=FakeTask(RUN_HOOK), exception=HookRunDeadLettered("m:f", "e-1", 3, "ValueError")
        )
        assert counted("engagehook_hook_runs_total", outcome="dead_lettered") == dead + 1
        assert counted("engagehook_task_failures_total", task=RUN_HOOK) == failures

    def test_failed_task_is_counted(self):
        before = counted("engagehook_task_failures_total", task=RUN_HOOK)
        worker_metrics._on_failure(sender=FakeTask(RUN_HOOK))
        assert counted("engagehook_task_failures_total", task=RUN_HOOK) == before + 1

    def test_worker_serves_its_metrics_on_a_port(self):
        port = free_port()
        assert worker_metrics.serve(port, host="127.0.0.1")
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "engagehook_events_processed_total" in text

    def test_taken_metrics_port_is_logged_not_fatal(self, caplog):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            assert worker_metrics.serve(taken.getsockname()[1], host="127.0.0.1") is False
        assert "worker metrics not served" in caplog.text


def post(url: str, content: bytes | str) -> httpx.Response:
    return httpx.post(url, content=content, headers=JSON, timeout=10)


@pytest.mark.slow
class TestMultiprocessDeployment:
    """`engagehook web --workers 3` and `engagehook worker --metrics-port` on the real Redis."""

    @pytest.fixture
    def deployment(self, tmp_path, redis_url, postgres_url):
        web_port, metrics_port = free_port(), free_port()
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": postgres_url,
            "ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"),
            "ENGAGEHOOK_METRICS_DIR": str(tmp_path / "metrics"),
        }
        migrate = start(["migrate"], env, tmp_path / "migrate.log")
        assert migrate.wait(timeout=60) == 0
        worker = start(
            ["worker", "--concurrency", "2", "--metrics-port", str(metrics_port)],
            env,
            tmp_path / "worker.log",
        )
        web = start(["web", "--port", str(web_port), "--workers", "3"], env, tmp_path / "web.log")
        try:
            wait_http_ok(f"http://127.0.0.1:{web_port}/readyz", timeout=60)
            wait_http_ok(f"http://127.0.0.1:{metrics_port}/metrics", timeout=60)
            yield f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{metrics_port}", tmp_path
        finally:
            stop(web)
            stop(worker)

    def test_counts_are_exact_whichever_process_answers(self, deployment):
        web, worker, tmp_path = deployment
        sent: dict[str, int] = {}
        for n in range(3):
            for path in EXAMPLE_FILES:
                event_type = json.loads(path.read_text())["data"]["eventType"]
                payload = envelope(
                    event_type,
                    base=path.stem,
                    event_id=f"m-{path.stem}-{n}",
                    appointment_id=f"ma-{path.stem}-{n}",
                )
                assert post(f"{web}/webhooks", body(payload)).status_code == 202
                sent[event_type] = sent.get(event_type, 0) + 1
        first = envelope(
            base=EXAMPLE_FILES[0].stem,
            event_type=json.loads(EXAMPLE_FILES[0].read_text())["data"]["eventType"],
            event_id=f"m-{EXAMPLE_FILES[0].stem}-0",
            appointment_id=f"ma-{EXAMPLE_FILES[0].stem}-0",
        )
        post(f"{web}/webhooks", body(first))  # the same id again: a duplicate for the worker
        invalid = envelope(event_id="m-invalid", appointment_id="ma-invalid", status=12345)
        assert post(f"{web}/webhooks", body(invalid)).status_code == 202
        for _ in range(2):
            assert post(f"{web}/webhooks", b"{not json").status_code == 400
        accepted = sum(sent.values()) + 2

        def worker_done() -> str | None:
            text = httpx.get(f"{worker}/metrics", timeout=5).text
            done = total(text, "engagehook_events_processed_total")
            return text if done >= accepted else None

        text = wait_until(worker_done, timeout=60, interval=0.5)
        for event_type, count in sent.items():
            assert (
                value(
                    text,
                    "engagehook_events_processed_total",
                    event_type=event_type,
                    outcome="processed",
                    reason="",
                )
                == count
            )
        assert total(text, "engagehook_events_processed_total", outcome="duplicate") == 1
        assert (
            total(
                text, "engagehook_events_processed_total", outcome="dead_lettered", reason="invalid"
            )
            == 1
        )
        assert total(text, "engagehook_event_processing_seconds_count") == accepted

        # Each scrape may be answered by a different gunicorn worker: all must agree.
        for _ in range(6):
            text = httpx.get(f"{web}/metrics", timeout=5).text
            assert (
                total(text, "engagehook_webhooks_received_total", outcome="queued")
                + total(text, "engagehook_webhooks_received_total", outcome="duplicate")
                == accepted
            )
            assert (
                value(
                    text,
                    "engagehook_webhooks_received_total",
                    outcome="rejected",
                    reason="invalid_json",
                )
                == 2
            )
            assert value(text, "engagehook_dead_letters", kind="event") == 1
            assert value(text, "engagehook_queue_depth", queue="engagehook") == 0
            assert value(text, "engagehook_source_up", source="store") == 1
        metric_dirs = list(Path(tmp_path / "metrics").glob("web-*"))
        assert len(metric_dirs) == 1 and any(metric_dirs[0].glob("counter_*.db"))


class TestOldestPendingAndBuildInfo:
    """How long the oldest acknowledged webhook has waited, per source, and what build runs."""

    def test_nothing_pending_reads_zero_for_broker_and_spool(self, client):
        text = scrape(client)
        assert value(text, "engagehook_oldest_pending_seconds", source="broker") == 0
        assert value(text, "engagehook_oldest_pending_seconds", source="spool") == 0

    def test_embedded_broker_reports_the_age_of_its_oldest_message(self, env, client):
        settings = Settings.from_env(env)
        queue = CeleryQueue(create_celery_app(settings))
        queue.enqueue(body(load_payload()), event_id="e-1", event_type="CREATE", appointment_id="a")
        queue.enqueue(body(load_payload()), event_id="e-2", event_type="CREATE", appointment_id="a")
        import sqlite3

        path = settings.broker_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:  # the first message was queued 120 s ago
            conn.execute(
                "UPDATE kombu_message SET timestamp = datetime(timestamp, '-120 seconds')"
                " WHERE id = (SELECT min(id) FROM kombu_message)"
            )
        age = value(scrape(client), "engagehook_oldest_pending_seconds", source="broker")
        assert 119 <= age < 180

    def test_spool_reports_the_age_of_its_oldest_file(self, env, client):
        spool_dir = Settings.from_env(env).spool_dir
        spool_dir.mkdir(parents=True, exist_ok=True)
        spool = Spool(spool_dir, 10_000_000)
        first = spool.put("{}", event_id="e-1", event_type=None, appointment_id=None)
        spool.put("{}", event_id="e-2", event_type=None, appointment_id=None)
        # An arrival 300 s earlier, named the way put names files.
        stamp, rest = first.name.split("-", 1)
        first.rename(first.with_name(f"{int(stamp) - 300 * 10**9:020d}-{rest}"))
        age = value(scrape(client), "engagehook_oldest_pending_seconds", source="spool")
        assert 299 <= age < 360

    @pytest.mark.real
    def test_redis_mode_reports_the_oldest_in_flight_webhook(self, env, queue, redis_url):
        import time

        import redis

        from core.names import INFLIGHT_SINCE

        client = create_app({**env, "REDIS_URL": redis_url}, queue=queue).test_client()
        broker = redis.Redis.from_url(redis_url)
        now = time.time()
        broker.zadd(INFLIGHT_SINCE, {"e-new": now - 5, "e-old": now - 240})
        age = value(scrape(client), "engagehook_oldest_pending_seconds", source="broker")
        assert 239 <= age < 300
        broker.delete(INFLIGHT_SINCE)
        assert value(scrape(client), "engagehook_oldest_pending_seconds", source="broker") == 0
        broker.close()

    def test_web_serves_build_info(self, client):
        import platform

        from core.build import version

        text = scrape(client)
        labels = {"version": version(), "python": platform.python_version(), "role": "web"}
        assert value(text, "engagehook_build_info", **labels) == 1
        assert version() != "unknown"

    def test_worker_serves_build_info(self):
        assert (
            total(
                generate_text(worker_metrics.exposition_registry()),
                "engagehook_build_info",
                role="worker",
            )
            == 1
        )

    def test_worker_serves_build_info_in_multiprocess_mode(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        text = generate_text(worker_metrics.exposition_registry())
        assert total(text, "engagehook_build_info", role="worker") == 1


def generate_text(registry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def test_every_metric_family_appears_once_per_scrape(env, data_dir):
    """Prometheus rejects a scrape that repeats a family's HELP or TYPE line."""
    settings = Settings.from_env(env)
    Spool(settings.spool_dir, 10_000_000).put(
        "{}", event_id="e", event_type=None, appointment_id=None
    )
    CeleryQueue(create_celery_app(settings)).enqueue(
        body(load_payload()), event_id="e-1", event_type="CREATE", appointment_id="a-1"
    )
    text = scrape(create_app(env, queue=UnreachableQueue()).test_client())
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), sorted(t for t in types if types.count(t) > 1)
    assert value(text, "engagehook_oldest_pending_seconds", source="spool") >= 0
    assert value(text, "engagehook_oldest_pending_seconds", source="broker") >= 0
