"""The console at /console/: closed without ADMIN_TOKEN, a session login, CSRF on every POST."""

from __future__ import annotations

import re

import pytest

from handlers import HANDLERS
from ingest.app import create_app
from tests.fakes import RecordingQueue
from tests.handlers.builders import employee_participant
from tests.handlers.builders import event
from tests.handlers.builders import from_payload
from tests.handlers.builders import payload

TOKEN = "console-token-for-tests"


@pytest.fixture
def store(sqlite_store):
    """An appointment created then reassigned, and one dead letter."""
    sqlite_store.apply(
        event("CREATE", event_id="c-1", appointment_id="ap-1"), "{}", HANDLERS["CREATE"]
    )
    reassign = payload(
        "REASSIGN",
        event_id="r-1",
        appointment_id="ap-1",
        minutes=5,
        participants=[employee_participant("emp-new")],
    )
    sqlite_store.apply(from_payload(reassign), "{}", HANDLERS["REASSIGN"])
    sqlite_store.dead_letter(
        event_id="bad-1",
        raw_body='{"id": "bad-1", "customer": {"firstName": "Ada"}}',
        reason="invalid",
        errors=[{"path": "data.appointment.start", "message": "Not a valid datetime."}],
        event_type="CREATE",
    )
    return sqlite_store


@pytest.fixture
def queue():
    return RecordingQueue()


def console(env, store, queue, token=TOKEN):
    config = {**env, "DATABASE_URL": store.url}
    if token:
        config["ADMIN_TOKEN"] = token
    return create_app(config, queue=queue).test_client()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]


def log_in(client) -> str:
    form = client.get("/console/login").get_data(as_text=True)
    answer = client.post("/console/login", data={"token": TOKEN, "csrf_token": csrf_of(form)})
    assert answer.status_code == 302
    return csrf_of(client.get("/console/").get_data(as_text=True))


@pytest.fixture
def client(env, store, queue):
    return console(env, store, queue)


def test_console_does_not_exist_without_admin_token(env, store, queue):
    client = console(env, store, queue, token=None)
    for path in ("/console/", "/console/login", "/console/dead-letters"):
        assert client.get(path).status_code == 404


def test_pages_redirect_to_login_without_a_session(client):
    answer = client.get("/console/dead-letters?reason=invalid")
    assert answer.status_code == 302
    assert "/console/login" in answer.headers["Location"]


def test_wrong_token_is_refused(client):
    form = client.get("/console/login").get_data(as_text=True)
    answer = client.post("/console/login", data={"token": "nope", "csrf_token": csrf_of(form)})
    assert answer.status_code == 401
    assert client.get("/console/").status_code == 302


def test_session_cookie_is_httponly_and_samesite_strict(client):
    form = client.get("/console/login").get_data(as_text=True)
    answer = client.post("/console/login", data={"token": TOKEN, "csrf_token": csrf_of(form)})
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie


def test_replay_without_csrf_token_is_refused(client, store, queue):
    log_in(client)
    answer = client.post("/console/dead-letters/replay", data={"ids": "bad-1"})
    assert answer.status_code == 403
    assert answer.json["error"] == "csrf_failed"
    assert queue.bodies == []


def test_replay_from_another_origin_is_refused(client, store, queue):
    csrf = log_in(client)
    answer = client.post(
        "/console/dead-letters/replay",
        data={"ids": "bad-1", "csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert answer.json["error"] == "cross_origin"
    assert store.get_event("bad-1")["state"] == "dead_lettered"


def test_replay_without_a_session_is_refused(env, store, queue):
    client = console(env, store, queue)
    answer = client.post("/console/dead-letters/replay", data={"ids": "bad-1", "csrf_token": "x"})
    assert answer.status_code == 403
    assert queue.bodies == []


def test_dry_run_then_replay(client, store, queue):
    csrf = log_in(client)
    preview = client.post(
        "/console/dead-letters/replay",
        data={"scope": "matching_dry_run", "reason": "invalid", "csrf_token": csrf},
    )
    assert preview.status_code == 200
    assert "1 would be replayed" in preview.get_data(as_text=True)
    assert queue.bodies == []
    done = client.post("/console/dead-letters/replay", data={"ids": "bad-1", "csrf_token": csrf})
    assert done.status_code == 302
    assert store.get_event("bad-1")["state"] == "queued"
    assert queue.identifiers == [("bad-1", "CREATE", None)]
    assert "1 replayed" in client.get(done.headers["Location"]).get_data(as_text=True)


def test_pages_render(client):
    log_in(client)
    overview = client.get("/console/").get_data(as_text=True)
    assert "Dead letters" in overview and "Queue depth" in overview
    events = client.get("/console/events?state=processed").get_data(as_text=True)
    assert "r-1" in events and "bad-1" not in events
    dead = client.get("/console/dead-letters").get_data(as_text=True)
    assert "bad-1" in dead and "Ada" not in dead  # no personal data in lists
    detail = client.get("/console/events/bad-1").get_data(as_text=True)
    assert "data.appointment.start" in detail and "Ada" in detail  # the body, pretty-printed
    appointment = client.get("/console/appointments/ap-1").get_data(as_text=True)
    assert "emp-new" in appointment and "REASSIGN" in appointment
    assert client.get("/console/hook-runs?state=dead_lettered").status_code == 200


def test_bad_filter_is_shown_on_the_page(client):
    log_in(client)
    answer = client.get("/console/events?since=someday")
    assert answer.status_code == 400
    assert "since:" in answer.get_data(as_text=True)


def test_jump_to_an_event_id(client):
    log_in(client)
    answer = client.get("/console/events?jump=r-1")
    assert answer.headers["Location"].endswith("/console/events/r-1")


def test_logout_ends_the_session(client):
    csrf = log_in(client)
    client.post("/console/logout", data={"csrf_token": csrf})
    assert client.get("/console/").status_code == 302
