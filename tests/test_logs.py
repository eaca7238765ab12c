"""Structured logs: one JSON object per line, identifiers only, no personal data anywhere."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
from datetime import timedelta
from typing import Any

import httpx
import pytest
from gunicorn.config import Config

from core import logs
from core.config import Settings
from handlers.store import Store
from ingest.gunicorn_conf import JsonLogger
from tests.builders import EXAMPLE_FILES
from tests.builders import body
from tests.builders import envelope
from tests.builders import load_payload
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok
from tests.processes import wait_until

# Fields of the sender's payload that name, reach or describe a person, or are free text.
PERSONAL_KEYS = frozenset(
    {
        "email",
        "communicationEmail",
        "firstName",
        "lastName",
        "phoneNumber",
        "name",
        "internalNotes",
        "messageForCustomer",
        "message",
        "value",
        "description",
        "token",
        "videoUrl",
        "cancelUrl",
        "editUrl",
        "inviteUrl",
        "googleCalendarUrl",
        "icalUrl",
        "office365CalendarUrl",
        "profilePictureUrl",
        "staticVideoUrl",
    }
)
MIN_LENGTH = 5  # shorter strings ("nl", "Gent") could match unrelated text by chance


def personal_values(payload: Any) -> set[str]:
    """Every personal or free-text string in a payload."""
    found: set[str] = set()
    if isinstance(payload, dict):
        for key, item in payload.items():
            if key in PERSONAL_KEYS and isinstance(item, str) and len(item) >= MIN_LENGTH:
                found.add(item)
            found |= personal_values(item)
    elif isinstance(payload, list):
        for item in payload:
            found |= personal_values(item)
    return found


def record(
    message: str = "hello", *args: object, exc_info=None, **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord("engagehook.test", logging.INFO, __file__, 1, message, args, exc_info)
    made.__dict__.update(extra)
    return made


def formatted(made: logging.LogRecord, role: str | None = "worker") -> dict[str, Any]:
    line = logs.JsonFormatter(role).format(made)
    assert "\n" not in line
    return json.loads(line)


@pytest.fixture(autouse=True)
def no_bound_identifiers():
    logs.clear()
    yield
    logs.clear()


@pytest.fixture
def restored_logging():
    """Undo what configuring a role does to this test process's loggers."""
    saved = {
        name: (list(lg.handlers), lg.level)
        for name, lg in (
            ("", logging.getLogger()),
            ("multiprocessing", logging.getLogger("multiprocessing")),
        )
    }
    yield
    for name, (handlers, level) in saved.items():
        logger = logging.getLogger(name or None)
        logger.handlers[:] = handlers
        logger.setLevel(level)


class TestPersonalValues:
    """The test's own detector finds what it must look for."""

    def test_customer_and_employee_details_and_free_text_are_found(self):
        found = personal_values(load_payload("CREATE"))
        assert {
            "jan.janssens@example.com",
            "Janssens",
            "+32 470 00 00 01",
            "Klant heeft al een offerte van een andere bank.",
        } <= found
        assert "CREATE" not in found and load_payload("CREATE")["id"] not in found


class TestJsonFormatter:
    """A record becomes one JSON object with allowed fields only."""

    def test_record_is_one_json_object_on_one_line(self):
        out = formatted(record("two\nlines"))
        assert out["message"] == "two\nlines"
        assert out["level"] == "info"
        assert out["logger"] == "engagehook.test"
        assert out["role"] == "worker"
        assert out["ts"].endswith("+00:00")

    def test_identifiers_are_kept_and_unknown_extras_dropped(self):
        out = formatted(
            record(
                event_id="e-1",
                event_type="CREATE",
                outcome="processed",
                data={"args": "the raw body"},
                customer="Jan",
            )
        )
        assert out["event_id"] == "e-1"
        assert out["event_type"] == "CREATE"
        assert out["outcome"] == "processed"
        assert "data" not in out and "customer" not in out

    def test_identifier_that_is_not_a_string_is_dropped(self):
        out = formatted(record(event_id={"email": "jan@example.com"}, appointment_id="a" * 999))
        assert "event_id" not in out
        assert len(out["appointment_id"]) == logs.MAX_IDENTIFIER_LENGTH

    def test_bound_identifiers_appear_on_every_line_until_cleared(self):
        logs.bind(event_id="e-2", correlation_id="c-2", event_type="CANCEL", appointment_id="a-2")
        assert {k: formatted(record())[k] for k in logs.IDENTIFIERS} == {
            "event_id": "e-2",
            "correlation_id": "c-2",
            "event_type": "CANCEL",
            "appointment_id": "a-2",
        }
        logs.clear()
        assert "event_id" not in formatted(record())

    def test_binding_none_unsets_an_identifier_of_the_previous_event(self):
        logs.bind(event_id="e-3", correlation_id="c-3")
        logs.bind(event_id="e-4", correlation_id=None)
        out = formatted(record())
        assert out["event_id"] == "e-4"
        assert "correlation_id" not in out

    def test_bound_block_restores_the_outer_identifiers(self):
        logs.bind(event_id="outer")
        with logs.bound(event_id="inner"):
            assert formatted(record())["event_id"] == "inner"
        assert formatted(record())["event_id"] == "outer"

    @pytest.mark.parametrize(
        "text,leak",
        [
            ("customer jan.janssens@example.com wrote", "jan.janssens@example.com"),
            ("call +32 470 00 00 01 now", "+32 470 00 00 01"),
            ("GET /webhooks?token=s3cr3t-token HTTP/1.1", "s3cr3t-token"),
            ("https://video.example.com/meet/1?t=pQ7vN2xK9mR4", "pQ7vN2xK9mR4"),
            ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ],
    )
    def test_personal_values_in_a_message_are_masked(self, text, leak):
        assert leak not in formatted(record("%s", text))["message"]

    def test_ids_and_timestamps_survive_redaction(self):
        text = "event 4d2f8a6c-9e1b-4c3d-a5f7-000000001001 at 2024-10-01T07:58:12+00:00"
        assert formatted(record(text))["message"] == text

    def test_exception_is_logged_redacted(self):
        try:
            raise KeyError("jan.janssens@example.com")
        except KeyError:
            out = formatted(record("failed", exc_info=sys.exc_info()))
        assert out["exc_type"] == "KeyError"
        assert "Traceback" in out["exc"]
        assert "jan.janssens@example.com" not in out["exc"]

    def test_library_debug_lines_with_task_arguments_are_dropped(self):
        drop = logs.DropPayloadEcho()
        pool_line = logging.LogRecord(
            "celery.pool",
            logging.DEBUG,
            __file__,
            1,
            "TaskPool: Apply (args:%s)",
            ("the raw body",),
            None,
        )
        assert drop.filter(pool_line) is False
        assert drop.filter(record()) is True


class TestConfigure:
    """Each role's process logs JSON to stderr through one handler of its own."""

    def test_configure_twice_keeps_one_engagehook_handler(self, capsys, restored_logging):
        logs.configure("serve", "INFO")
        logs.configure("serve", "INFO")
        for name in (None, "multiprocessing"):
            handlers = logging.getLogger(name).handlers
            assert len([h for h in handlers if getattr(h, "_engagehook", False)]) == 1
        logging.getLogger("engagehook.test").info("started", extra={"port": 8000})
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert json.loads(line)["port"] == 8000

    def test_process_pool_errors_are_json_lines(self, capsys, restored_logging):
        logs.configure("worker", "INFO")
        logging.getLogger("multiprocessing").error("Process %r exited with %r", "Pool-1", 15)
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["message"] == "Process 'Pool-1' exited with 15"

    def test_celery_notice_is_a_json_line(self):
        read, write = os.pipe()
        with os.fdopen(write, "w") as stream:
            logs.say_json("worker: Warm shutdown (MainProcess)", stream)
        with os.fdopen(read) as stream:
            line = stream.read()
        assert line.endswith("\n") and line.count("\n") == 1
        assert json.loads(line)["message"] == "worker: Warm shutdown (MainProcess)"


class Resp:
    status_code = 202


class TestGunicornAccessLog:
    """Access lines carry method, path, status and duration; never the query string."""

    def access_lines(self, environ: dict[str, str]) -> list[dict[str, Any]]:
        config = Config()
        config.set("accesslog", "-")
        logger = JsonLogger(config)
        stream = io.StringIO()
        handler = logs.json_handler("web", logging.StreamHandler(stream))
        logger.access_log.addHandler(handler)
        try:
            logger.access(Resp(), None, environ, timedelta(milliseconds=12))
        finally:
            logger.access_log.removeHandler(handler)
        assert "s3cr3t" not in stream.getvalue()
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    def test_access_line_has_the_path_without_the_token(self, restored_logging):
        [line] = self.access_lines(
            {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": "/admin/events/e-1",
                "QUERY_STRING": "token=s3cr3t",
            }
        )
        assert (line["http_method"], line["path"], line["status"]) == (
            "GET",
            "/admin/events/e-1",
            202,
        )
        assert line["duration_ms"] == 12.0

    def test_webhook_requests_get_no_access_line(self, restored_logging):
        # The app's own "webhook <outcome>" line is the one line of such a request.
        assert (
            self.access_lines(
                {"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks", "QUERY_STRING": "token=s3cr3t"}
            )
            == []
        )


class TestWebhookLogLine:
    """Each POST /webhooks is logged once by the app, with the request and the identifiers."""

    def webhook_lines(
        self, client, caplog, data: bytes, content_type: str = "application/json"
    ) -> list[dict[str, Any]]:
        with caplog.at_level(logging.INFO, logger="ingest"):
            client.post("/webhooks?token=s3cr3t", data=data, headers={"Content-Type": content_type})
        formatter = logs.JsonFormatter("web")
        return [
            json.loads(formatter.format(r)) for r in caplog.records if r.name == "ingest.metrics"
        ]

    def test_queued_webhook_line_has_request_and_identifiers(self, client, caplog):
        payload = load_payload("CREATE")
        [line] = self.webhook_lines(client, caplog, body(payload))
        assert line["message"] == "webhook queued"
        assert (line["http_method"], line["path"], line["status"]) == ("POST", "/webhooks", 202)
        assert line["duration_ms"] >= 0
        assert (
            line["event_id"],
            line["correlation_id"],
            line["event_type"],
            line["appointment_id"],
        ) == (
            payload["id"],
            payload["correlationId"],
            payload["data"]["eventType"],
            payload["data"]["appointment"]["id"],
        )
        assert not personal_values(payload) & set(map(str, line.values()))

    def test_rejected_webhook_line_is_a_warning_with_its_reason(self, client, caplog):
        [line] = self.webhook_lines(client, caplog, b"{}", content_type="text/plain")
        assert (line["level"], line["message"]) == ("warning", "webhook rejected")
        assert (line["status"], line["reason"]) == (415, "unsupported_media_type")
        assert line["path"] == "/webhooks"


@pytest.mark.slow
class TestNoPersonalDataInLogs:
    """The examples go through `engagehook serve`; no log line carries a personal value."""

    TOKEN = "tok-9f3a7c1e5b2d-secret"
    ADMIN = "adm-4e8b2f6a1c9d-secret"

    def test_whole_pipeline_logs_identifiers_and_no_personal_data(self, tmp_path):
        port = free_port()
        env = {
            "ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"),
            "WEBHOOK_TOKEN": self.TOKEN,
            "ADMIN_TOKEN": self.ADMIN,
            "LOG_LEVEL": "INFO",
        }
        log = tmp_path / "serve.log"
        serve = start(["serve", "--port", str(port)], env, log)
        base = f"http://127.0.0.1:{port}"
        payloads = [json.loads(path.read_text()) for path in EXAMPLE_FILES]
        unknown = load_payload()
        unknown["id"], unknown["data"]["appointment"]["id"] = "evt-unknown", "appt-unknown"
        unknown["data"]["appointment"]["nickname"] = "Janneke de Vries"
        invalid = envelope(event_id="evt-invalid", appointment_id="appt-invalid", status=12345)
        try:
            wait_http_ok(f"{base}/readyz", timeout=60)
            for payload in [*payloads, payloads[0], unknown, invalid]:
                response = httpx.post(
                    f"{base}/webhooks?token={self.TOKEN}",
                    content=body(payload),
                    headers={"Content-Type": "application/json"},
                    timeout=10,
                )
                assert response.status_code == 202, response.text
            httpx.post(
                f"{base}/webhooks?token={self.TOKEN}",
                content=b'{"email": "leak.in.broken.json@example.com"',
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            # Polled in the store itself: a CLI process per poll costs a second each.
            store = Store(Settings.from_env(env).store_url)
            try:
                for payload in [*payloads, unknown, invalid]:
                    wait_until(
                        lambda p=payload: (
                            (store.get_event(p["id"]) or {}).get("state")
                            in ("processed", "dead_lettered")
                        ),
                        timeout=60,
                        interval=0.3,
                    )
            finally:
                store.engine.dispose()
            admin = httpx.get(
                f"{base}/admin/events/{payloads[0]['id']}",
                headers={"Authorization": f"Bearer {self.ADMIN}"},
                timeout=10,
            )
            assert admin.status_code == 200
        finally:
            # The supervisor alone is signalled, as a service manager would: it stops its
            # children itself. stop() signals the whole group and is only the fallback here.
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=60)
            finally:
                stop(serve)
        assert serve.returncode == 0
        text = log.read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert all(isinstance(line, dict) for line in lines)

        leaks = set()
        for payload in [*payloads, unknown, invalid]:
            leaks |= {value for value in personal_values(payload) if value in text}
        leaks |= {
            value
            for value in (
                self.TOKEN,
                self.ADMIN,
                "Janneke de Vries",
                "leak.in.broken.json@example.com",
            )
            if value in text
        }
        assert leaks == set()

        assert {"serve", "web", "worker"} <= {line.get("role") for line in lines}
        for payload in payloads:
            ids = {
                "event_id": payload["id"],
                "correlation_id": payload["correlationId"],
                "event_type": payload["data"]["eventType"],
                "appointment_id": payload["data"]["appointment"]["id"],
            }
            carrying = [line for line in lines if all(line.get(k) == v for k, v in ids.items())]
            assert {line["role"] for line in carrying} == {"web", "worker"}
        dead = [
            line
            for line in lines
            if line.get("event_id") == "evt-invalid" and line.get("reason") == "invalid"
        ]
        assert dead and all("error_paths" in line for line in dead)


class TestQueryStringsAreRedacted:
    """Wherever a URL or request target reaches a log line, its query string does not."""

    @pytest.mark.parametrize(
        ("message", "shown"),
        [
            ("POST /webhooks?token=tok-1 HTTP/1.1", "POST /webhooks?<redacted> HTTP/1.1"),
            ("GET /nowhere%3Ftoken=tok-1", "GET /nowhere?<redacted>"),
            (
                "posting to https://h.example/webhooks?a=1&token=tok-1",
                "posting to https://h.example/webhooks?<redacted>",
            ),
            (
                "Error handling request /metrics?x=tok-1",
                "Error handling request /metrics?<redacted>",
            ),
        ],
    )
    def test_the_query_of_a_url_is_redacted(self, message, shown):
        assert logs.redact(message) == shown

    def test_a_question_in_prose_is_left_alone(self):
        assert logs.redact("is 3/4 enough? yes") == "is 3/4 enough? yes"

    def test_redact_url_keeps_the_path_only(self):
        assert logs.redact_url("/webhooks?token=tok-1") == "/webhooks?<redacted>"
        assert logs.redact_url("/healthz") == "/healthz"
