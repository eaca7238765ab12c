"""A real `engagehook serve` (gunicorn and a Celery worker) never writes a webhook token out:
not in our log lines, gunicorn's access or error lines, Celery's, a metric or an error body."""

from __future__ import annotations

import socket

import httpx
import pytest

from core.config import Settings
from handlers.store import Store
from tests.builders import body
from tests.builders import envelope
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok
from tests.processes import wait_until

OLD = "old-tok-3e8b2f6a1c9d"
NEW = "new-tok-5b1f0c7e4d2a"
JSON = {"Content-Type": "application/json"}


def raw_request(port: int, data: bytes) -> bytes:
    """Send bytes no HTTP client would, and read what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


@pytest.mark.slow
def test_no_token_reaches_any_output(tmp_path):
    port = free_port()
    env = {
        "ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"),
        "WEBHOOK_TOKEN": f"{OLD},{NEW}",
        "LOG_LEVEL": "DEBUG",
    }
    log = tmp_path / "serve.log"
    serve = start(["serve", "--port", str(port)], env, log)
    base = f"http://127.0.0.1:{port}"
    answers: list[str] = []
    try:
        wait_http_ok(f"{base}/healthz", timeout=90)
        accepted = []
        for number, (token, carrier) in enumerate(
            [(OLD, "query"), (NEW, "query"), (NEW, "bearer")]
        ):
            event_id = f"evt-token-{number}"
            payload = body(envelope(event_id=event_id, appointment_id=f"appt-token-{number}"))
            if carrier == "query":
                response = httpx.post(
                    f"{base}/webhooks?token={token}", content=payload, headers=JSON, timeout=10
                )
            else:
                headers = {**JSON, "Authorization": f"Bearer {token}"}
                response = httpx.post(f"{base}/webhooks", content=payload, headers=headers)
            assert response.status_code == 202, response.text
            accepted.append(event_id)
        # Refusals and other routes, each with a token in the query string.
        for method, path, content in [
            ("POST", f"/webhooks?token={OLD}", b"not json"),
            ("POST", f"/webhooks?token={OLD}x", body(envelope(event_id="evt-wrong"))),
            ("POST", f"/webhooks?token={NEW}&token={OLD}", b"[]"),
            ("GET", f"/webhooks?token={OLD}", None),
            ("GET", f"/healthz?token={OLD}", None),
            ("GET", f"/readyz?token={NEW}", None),
            ("GET", f"/nowhere?token={NEW}", None),
            ("GET", f"/nowhere%3Ftoken={NEW}", None),
            ("GET", f"/admin/events/x?token={NEW}", None),
        ]:
            response = httpx.request(method, base + path, content=content, headers=JSON)
            answers.append(response.text)
        # A request line gunicorn itself refuses (it logs the line it could not parse).
        raw_request(port, f"GET /webhooks?token={OLD} HTTP/1.1 junk\r\n\r\n".encode())
        raw_request(port, f"POST /webhooks?token={NEW} HTTP/1.1\r\nBad Header: x\r\n\r\n".encode())
        store = Store(Settings.from_env(env).store_url)
        try:
            for event_id in accepted:
                wait_until(
                    lambda e=event_id: (store.get_event(e) or {}).get("state") == "processed",
                    timeout=90,
                )
        finally:
            store.engine.dispose()
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        stop(serve)
    output = log.read_text(errors="replace")
    assert "webhook queued" in output  # the log was written, at DEBUG, by every role
    assert '"role":"worker"' in output and '"logger":"gunicorn.access"' in output
    for token in (OLD, NEW):
        assert token not in output
        assert token not in metrics
        for answer in answers:
            assert token not in answer
    assert "?<redacted>" in output or '"query":"<redacted>"' in output
