"""The whole pipeline with real processes: post → broker → worker → store → CLI."""

from __future__ import annotations

import json

import httpx
import pytest
import redis

from tests import services
from tests.builders import EXAMPLE_FILES
from tests.builders import load_payload
from tests.conftest import require_postgres
from tests.conftest import require_redis
from tests.processes import cli_json
from tests.processes import free_port
from tests.processes import migrate
from tests.processes import start
from tests.processes import stop
from tests.processes import stop_all
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


# What each handler records in the appointment's history for its example payload (the state
# before comes from the payload's previousAppointment; GENERIC_UPDATE compares with the store).
EXPECTED_CHANGES: dict[str, dict] = {
    "ACCEPT": {"status": {"old": "INCOMING_REQUEST", "new": "ACCEPTED"}},
    "REASSIGN": {
        "employees": {
            "old": [{"id": "e3f1a2b4-6c7d-4e8f-9a0b-0000000000d1", "role": "PRIMARY"}],
            "new": [{"id": "e3f1a2b4-6c7d-4e8f-9a0b-0000000000d2", "role": "PRIMARY"}],
        }
    },
    "CANCEL": {
        "status": {"old": "ACCEPTED", "new": "CANCELLED"},
        "answers": [
            {
                "id": "b1e2c3d4-0001-4f00-9000-000000000206",
                "answerType": "APPOINTMENT_CANCELLATION",
                "questionId": "9e8d7c6b-0001-4a00-8000-000000000306",
                "value": None,
                "selectedAnswerOptions": ["OPT-OTHER-OFFER"],
                "files": [],
            }
        ],
    },
    "COMPLETE": {
        "status": {"old": "ACCEPTED", "new": "COMPLETED"},
        "answers": [
            {
                "id": "b1e2c3d4-0001-4f00-9000-000000000207",
                "answerType": "APPOINTMENT_COMPLETION",
                "questionId": "9e8d7c6b-0001-4a00-8000-000000000307",
                "value": "Offerte opgemaakt, klant beslist volgende week.",
                "selectedAnswerOptions": [],
                "files": [],
            }
        ],
    },
    "CREATE": {"created": True, "status": {"old": None, "new": "ACCEPTED"}},
    "RESCHEDULE": {
        "start": {"old": "2024-10-08T08:00:00+00:00", "new": "2024-10-16T09:00:00+00:00"},
        "end": {"old": "2024-10-08T09:00:00+00:00", "new": "2024-10-16T10:00:00+00:00"},
    },
    "REQUEST_ALTERNATIVE_DATE": {
        "status": {"old": "OUTGOING_INVITE", "new": "ALTERNATIVE_DATE_REQUESTED"}
    },
    "CREATE_REQUEST": {"created": True, "status": {"old": None, "new": "INCOMING_REQUEST"}},
    "RESCHEDULE_REQUEST": {
        "status": {"old": "ACCEPTED", "new": "INCOMING_REQUEST"},
        "start": {"old": "2024-10-08T08:00:00+00:00", "new": "2024-10-17T14:00:00+00:00"},
        "end": {"old": "2024-10-08T09:00:00+00:00", "new": "2024-10-17T15:00:00+00:00"},
    },
    "REOPEN": {"status": {"old": "CANCELLED", "new": "ACCEPTED"}},
    "GENERIC_UPDATE": {"fields": ["internalNotes", "messageForCustomer"]},
}


def state_before_generic_update() -> dict:
    """The GENERIC_UPDATE example's appointment as first created: the notes it then changed."""
    payload = load_payload("GENERIC_UPDATE")
    create = load_payload("CREATE")["data"]["appointment"]
    payload["id"] += "-before"
    payload["data"]["eventType"] = "CREATE"
    payload["data"]["previousAppointment"] = None
    appointment = payload["data"]["appointment"]
    appointment["updatedAt"] = create["updatedAt"]
    for name in ("internalNotes", "messageForCustomer"):
        appointment[name] = create[name]
    return payload


def check_examples_flow(url: str, env: dict[str, str]) -> None:
    """Every example is acknowledged, applied by its handler, and visible through the CLI."""
    assert sorted(EXPECTED_CHANGES) == sorted(path.stem for path in EXAMPLE_FILES)
    before = state_before_generic_update()
    response = httpx.post(url, json=before, timeout=5)
    assert response.status_code == 202, response.text
    wait_until(lambda: stored_appointment(env, before["data"]["appointment"]["id"]), timeout=30)
    for path in EXAMPLE_FILES:
        response = post_file(url, path)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
    for path in EXAMPLE_FILES:
        payload = json.loads(path.read_text())
        appointment_id = payload["data"]["appointment"]["id"]
        found = wait_until(
            lambda a=appointment_id, e=payload["id"]: (
                (f := stored_appointment(env, a)) and f["lastEventId"] == e and f
            ),
            timeout=30,
        )
        assert found["status"] == payload["data"]["appointment"]["status"]
        assert found["snapshot"] == payload["data"]["appointment"]
        last = found["history"][-1]
        assert (last["eventId"], last["eventType"]) == (payload["id"], path.stem)
        assert last["changes"] == EXPECTED_CHANGES[path.stem], path.stem


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


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """One `web` and `worker` for TestRedisAndPostgres; its tests post ids of their own."""
    require_redis()
    require_postgres()
    tmp_path = tmp_path_factory.mktemp("pipeline")
    redis_url = services.redis_url(services.free_redis_db())
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    port = free_port()
    with services.fresh_postgres_schema() as postgres_url:
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
            yield f"http://127.0.0.1:{port}/webhooks", env, client
        finally:
            stop_all([web, worker])
            client.flushdb()
            client.close()


class TestRedisAndPostgres:
    """`engagehook web` + `engagehook worker` on the real Redis and PostgreSQL."""

    def test_examples_are_queued_processed_and_visible(self, deployment):
        url, env, _ = deployment
        check_examples_flow(url, env)

    def test_same_id_posted_twice_is_processed_once(self, deployment):
        url, env, _ = deployment
        check_duplicate_is_processed_once(url, env)

    def test_not_json_gets_400_and_nothing_is_enqueued(self, deployment):
        url, env, client = deployment
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
