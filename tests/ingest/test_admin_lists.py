"""The admin listing and replay routes: the shared query functions behind Bearer ADMIN_TOKEN."""

from __future__ import annotations

import pytest

from handlers import HANDLERS
from ingest.app import create_app
from tests.fakes import RecordingQueue
from tests.fakes import SwitchableQueue
from tests.handlers.builders import dead_letter_hook_run
from tests.handlers.builders import event

TOKEN = "admin-secret-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def filled(sqlite_store):
    """Two applied events (one with a hook run) and three dead letters."""
    sqlite_store.apply(
        event("CREATE", event_id="ok-1", appointment_id="ap-1"), "{}", HANDLERS["CREATE"]
    )
    result = sqlite_store.apply(
        event("CANCEL", event_id="ok-2", appointment_id="ap-1", minutes=5),
        "{}",
        HANDLERS["CANCEL"],
        hook_names=["crm"],
    )
    dead_letter_hook_run(sqlite_store, result.hook_run_ids[0])
    for event_id, reason, event_type in [
        ("bad-1", "invalid", "CREATE"),
        ("bad-2", "unsupported eventType", "MOVE"),
        ("bad-3", "invalid", "CANCEL"),
    ]:
        sqlite_store.dead_letter(
            event_id=event_id,
            raw_body=f'{{"id": "{event_id}"}}',
            reason=reason,
            errors=[{"path": "data", "message": "bad"}],
            event_type=event_type,
        )
    return sqlite_store


def client_for(env, store, queue, token=TOKEN):
    config = {**env, "DATABASE_URL": store.url}
    if token:
        config["ADMIN_TOKEN"] = token
    return create_app(config, queue=queue).test_client()


@pytest.fixture
def queue():
    return SwitchableQueue()


@pytest.fixture
def client(env, filled, queue):
    return client_for(env, filled, queue)


ROUTES = [
    ("get", "/admin/events"),
    ("get", "/admin/dead-letters"),
    ("post", "/admin/dead-letters/replay"),
    ("get", "/admin/hook-runs"),
    ("post", "/admin/hook-runs/1/replay"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_routes_do_not_exist_without_admin_token(env, filled, method, path):
    client = client_for(env, filled, RecordingQueue(), token=None)
    assert getattr(client, method)(path, headers=BEARER, json={}).status_code == 404


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_routes_need_the_bearer_token(env, filled, method, path):
    client = client_for(env, filled, RecordingQueue())
    assert getattr(client, method)(path, json={}).status_code == 401


class TestEvents:
    def test_a_page_newest_first_without_bodies(self, client):
        answer = client.get("/admin/events?limit=2", headers=BEARER)
        assert answer.status_code == 200
        assert [item["id"] for item in answer.json["items"]] == ["bad-3", "bad-2"]
        assert "rawBody" not in answer.json["items"][0]
        rest = client.get(f"/admin/events?limit=10&cursor={answer.json['next']}", headers=BEARER)
        assert [item["id"] for item in rest.json["items"]] == ["bad-1", "ok-2", "ok-1"]
        assert rest.json["next"] is None

    def test_filters(self, client):
        answer = client.get(
            "/admin/events?state=processed&event_type=CANCEL&appointment_id=ap-1", headers=BEARER
        )
        assert [item["id"] for item in answer.json["items"]] == ["ok-2"]

    @pytest.mark.parametrize(
        ("query", "named"),
        [
            ("state=lost", "state"),
            ("since=last-tuesday", "since"),
            ("limit=0", "limit"),
            ("limit=100000", "limit"),
            ("cursor=%%%", "cursor"),
        ],
    )
    def test_bad_parameters_get_a_400_naming_them(self, client, query, named):
        answer = client.get(f"/admin/events?{query}", headers=BEARER)
        assert answer.status_code == 400
        assert answer.json["error"] == "invalid_query"
        assert answer.json["message"].startswith(f"{named}:")


class TestDeadLetters:
    def test_filtered_by_reason_and_type(self, client):
        answer = client.get("/admin/dead-letters?reason=invalid&event_type=CANCEL", headers=BEARER)
        assert [item["id"] for item in answer.json["items"]] == ["bad-3"]
        assert answer.json["next"] is None

    def test_dry_run_of_a_filter_lists_without_publishing(self, client, queue, filled):
        answer = client.post(
            "/admin/dead-letters/replay",
            json={"reason": "invalid", "dry_run": True},
            headers=BEARER,
        )
        assert answer.status_code == 200
        assert answer.json == {"dry_run": True, "replayed": ["bad-3", "bad-1"], "failed": []}
        assert queue.bodies == []
        assert filled.get_event("bad-1")["state"] == "dead_lettered"

    def test_replay_of_ids_publishes_and_queues(self, client, queue, filled):
        answer = client.post("/admin/dead-letters/replay", json={"ids": ["bad-2"]}, headers=BEARER)
        assert answer.status_code == 200
        assert answer.json["replayed"] == ["bad-2"]
        assert queue.identifiers == [("bad-2", "MOVE", None)]
        assert filled.get_event("bad-2")["state"] == "queued"

    def test_broker_down_answers_502_with_the_failed_ids(self, client, queue, filled):
        queue.down = True
        answer = client.post("/admin/dead-letters/replay", json={"ids": ["bad-1"]}, headers=BEARER)
        assert answer.status_code == 502
        assert [f["id"] for f in answer.json["failed"]] == ["bad-1"]
        assert filled.get_event("bad-1")["state"] == "dead_lettered"

    def test_the_spool_is_not_used_for_replays(self, env, filled, tmp_path):
        from ingest.queue import SpoolingQueue
        from ingest.spool import Spool

        spool = Spool(tmp_path / "spool", 1 << 20)
        client = client_for(env, filled, SpoolingQueue(SwitchableQueue(down=True), spool))
        answer = client.post("/admin/dead-letters/replay", json={"ids": ["bad-1"]}, headers=BEARER)
        assert answer.status_code == 502
        assert len(spool) == 0

    @pytest.mark.parametrize(
        "document",
        [{"ids": "bad-1"}, {"ids": []}, {"ids": [1]}, {"dry_run": "yes"}, {"since": "soon"}],
    )
    def test_bad_replay_requests_get_400(self, client, document):
        answer = client.post("/admin/dead-letters/replay", json=document, headers=BEARER)
        assert answer.status_code == 400
        assert set(answer.json) == {"error", "message"}

    def test_replay_needs_a_json_object(self, client):
        answer = client.post("/admin/dead-letters/replay", data="ids", headers=BEARER)
        assert answer.status_code == 400


class TestHookRuns:
    def test_dead_runs_listed_and_replayed(self, client, queue):
        listed = client.get("/admin/hook-runs?state=dead_lettered", headers=BEARER).json
        assert [(run["eventId"], run["lastError"]) for run in listed["items"]] == [
            ("ok-2", "CRM said 500")
        ]
        run_id = listed["items"][0]["id"]
        answer = client.post(f"/admin/hook-runs/{run_id}/replay", headers=BEARER)
        assert answer.status_code == 200
        assert queue.hook_runs == [run_id]
        again = client.post(f"/admin/hook-runs/{run_id}/replay", headers=BEARER)
        assert again.status_code == 404

    def test_bad_state_gets_400(self, client):
        assert client.get("/admin/hook-runs?state=broken", headers=BEARER).status_code == 400
