"""The whole pipeline with real processes: post → broker → worker → store → CLI."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.builders import EXAMPLE_FILES
from tests.builders import load_payload
from tests.processes import cli_json
from tests.processes import free_port
from tests.processes import migrate
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok
from tests.processes import wait_until

pytestmark = pytest.mark.slow


def post_file(url: str, path) -> httpx.Response:
    return httpx.post(
        url, content=path.read_bytes(), headers={"Content-Type": "application/json"}, timeout=5
    )


def stored_appointment(env: dict[str, str], appointment_id: str):
    code, found = cli_json(["appointment", appointment_id], env)
    return found if code == 0 else None


def event_record(env: dict[str, str], event_id: str):
    code, found = cli_json(["event", event_id], env)
    return found if code == 0 else None


def check_examples_flow(url: str, env: dict[str, str]) -> None:
    """Every example is acknowledged, processed, and visible through the CLI."""
    for path in EXAMPLE_FILES:
        response = post_file(url, path)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
    for path in EXAMPLE_FILES:
        payload = json.loads(path.read_text())
        appointment_id = payload["data"]["appointment"]["id"]
        found = wait_until(lambda a=appointment_id: stored_appointment(env, a), timeout=30)
        assert found["status"] == payload["data"]["appointment"]["status"]
        assert found["lastEventId"] == payload["id"]
        assert found["snapshot"] == payload["data"]["appointment"]


def check_duplicate_is_processed_once(url: str, env: dict[str, str]) -> None:
    payload = load_payload("CREATE")
    payload["id"] = "dup-event-1"
    payload["data"]["appointment"]["id"] = "dup-appointment-1"
    raw = json.dumps(payload)
    for _ in range(2):
        response = httpx.post(
            url, content=raw, headers={"Content-Type": "application/json"}, timeout=5
        )
        assert response.status_code == 202
    record = wait_until(
        lambda: (r := event_record(env, "dup-event-1")) and r["duplicates"] == 1 and r, timeout=30
    )
    assert record["state"] == "processed"
    appointment = stored_appointment(env, "dup-appointment-1")
    assert [h["eventId"] for h in appointment["history"]] == ["dup-event-1"]


def check_not_json_is_refused(url: str, env: dict[str, str]) -> None:
    response = httpx.post(
        url, content=b"{not json", headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


class TestRedisAndPostgres:
    """`engagehook web` + `engagehook worker` on the real Redis and PostgreSQL."""

    @pytest.fixture
    def deployment(self, tmp_path, redis_url, postgres_url):
        port = free_port()
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": postgres_url,
            "ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"),
        }
        migrate(env)
        worker = start(["worker", "--concurrency", "2"], env, tmp_path / "worker.log")
        web = start(["web", "--port", str(port), "--workers", "2"], env, tmp_path / "web.log")
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/readyz")
            yield f"http://127.0.0.1:{port}/webhooks", env, redis_url
        finally:
            stop(web)
            stop(worker)

    def test_examples_are_queued_processed_and_visible(self, deployment):
        url, env, _ = deployment
        check_examples_flow(url, env)

    def test_same_id_posted_twice_is_processed_once(self, deployment):
        url, env, _ = deployment
        check_duplicate_is_processed_once(url, env)

    def test_not_json_gets_400_and_nothing_is_enqueued(self, deployment):
        import redis

        url, env, redis_url = deployment
        client = redis.Redis.from_url(redis_url)
        check_not_json_is_refused(url, env)
        assert client.llen("engagehook") == 0
        code, _ = cli_json(["event", "anything"], env)
        assert code == 1


class TestEmbeddedServe:
    """`engagehook serve` with nothing configured: broker and store are files."""

    @pytest.fixture
    def served(self, tmp_path):
        port = free_port()
        env = {"ENGAGEHOOK_DATA_DIR": str(tmp_path / "var")}
        serve = start(["serve", "--port", str(port)], env, tmp_path / "serve.log")
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/readyz", timeout=60)
            yield f"http://127.0.0.1:{port}/webhooks", env, serve
        finally:
            stop(serve)

    def test_examples_are_queued_processed_and_visible(self, served):
        url, env, _ = served
        check_examples_flow(url, env)
        check_duplicate_is_processed_once(url, env)
        check_not_json_is_refused(url, env)

    def test_sigterm_stops_web_and_worker(self, served):
        _, _, serve = served
        assert stop(serve) == 0
