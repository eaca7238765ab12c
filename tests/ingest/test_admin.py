"""GET /admin/appointments/<id> and /admin/events/<id>: behind ADMIN_TOKEN, 404 without it."""

from __future__ import annotations

import pytest

from handlers import HANDLERS
from ingest.app import create_app
from tests.handlers.builders import event

TOKEN = "admin-secret-for-tests"
PATHS = ["/admin/appointments/appt-1", "/admin/events/e-1"]


@pytest.fixture
def filled_store(sqlite_store):
    """A store holding one applied event (e-1 on appt-1) and one dead letter (bad-1)."""
    evt = event("CANCEL", event_id="e-1")
    sqlite_store.apply(evt, '{"id": "e-1"}', HANDLERS["CANCEL"])
    sqlite_store.dead_letter(
        event_id="bad-1",
        raw_body="{oops",
        reason="invalid",
        errors=[{"path": "", "message": "not JSON"}],
    )
    return sqlite_store


def admin_client(env, queue, store, token=TOKEN):
    config = {**env, "DATABASE_URL": store.url}
    if token is not None:
        config["ADMIN_TOKEN"] = token
    return create_app(config, queue=queue).test_client()


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


class TestAccess:
    @pytest.mark.parametrize("path", PATHS)
    def test_without_admin_token_configured_the_routes_do_not_exist(
        self, env, queue, filled_store, path
    ):
        client = admin_client(env, queue, filled_store, token=None)
        response = client.get(path, headers=bearer())
        assert response.status_code == 404
        assert response.json["error"] == "not_found"
        assert "ADMIN_TOKEN" in response.json["message"]

    @pytest.mark.parametrize("path", PATHS)
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": TOKEN},
        ],
        ids=["none", "wrong-token", "wrong-scheme", "no-scheme"],
    )
    def test_missing_or_wrong_token_gets_401(self, env, queue, filled_store, path, headers):
        response = admin_client(env, queue, filled_store).get(path, headers=headers)
        assert response.status_code == 401
        assert response.json == {
            "error": "unauthorized",
            "message": "send Authorization: Bearer <ADMIN_TOKEN>",
        }

    def test_token_in_the_query_string_is_not_enough(self, env, queue, filled_store):
        response = admin_client(env, queue, filled_store).get(f"{PATHS[0]}?token={TOKEN}")
        assert response.status_code == 401


class TestAppointment:
    def test_stored_appointment_is_returned_as_json(self, env, queue, filled_store):
        response = admin_client(env, queue, filled_store).get(PATHS[0], headers=bearer())
        assert response.status_code == 200
        found = response.json
        assert (found["id"], found["status"], found["lastEventId"]) == (
            "appt-1",
            "CANCELLED",
            "e-1",
        )
        assert found["snapshot"]["status"] == "CANCELLED"
        assert [h["eventId"] for h in found["history"]] == ["e-1"]

    def test_unknown_appointment_is_404(self, env, queue, filled_store):
        response = admin_client(env, queue, filled_store).get(
            "/admin/appointments/nope", headers=bearer()
        )
        assert response.status_code == 404
        assert response.json["error"] == "not_found"


class TestEvent:
    def test_processed_event_record_is_returned_as_json(self, env, queue, filled_store):
        response = admin_client(env, queue, filled_store).get(PATHS[1], headers=bearer())
        assert response.status_code == 200
        assert response.json["state"] == "processed"
        assert response.json["errors"] == []
        assert response.json["appointmentId"] == "appt-1"

    def test_dead_letter_lists_its_errors_with_path_and_message(self, env, queue, filled_store):
        response = admin_client(env, queue, filled_store).get(
            "/admin/events/bad-1", headers=bearer()
        )
        assert response.status_code == 200
        assert response.json["state"] == "dead_lettered"
        assert response.json["errors"] == [{"path": "", "message": "not JSON"}]

    def test_unknown_event_is_404(self, env, queue, filled_store):
        response = admin_client(env, queue, filled_store).get(
            "/admin/events/nope", headers=bearer()
        )
        assert response.status_code == 404
        assert response.json["error"] == "not_found"


class TestTokenComparison:
    def test_the_token_is_compared_as_fixed_length_digests(
        self, env, queue, sqlite_store, monkeypatch
    ):
        import hmac

        compared: list[tuple[int, int]] = []
        real = hmac.compare_digest

        def spy(a, b):
            compared.append((len(a), len(b)))
            return real(a, b)

        monkeypatch.setattr(hmac, "compare_digest", spy)
        client = admin_client(env, queue, sqlite_store)
        for presented in ("x", TOKEN + "-and-longer", TOKEN):
            client.get("/admin/events/e-1", headers=bearer(presented))
        # Equal lengths whatever was presented: the time taken cannot reveal the token's length.
        assert compared and all(a == b == 32 for a, b in compared)
