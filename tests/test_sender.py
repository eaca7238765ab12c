"""`engagehook send`: the sender's timeout and retry schedule, and a line per file."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from engagehook import sender
from engagehook.cli import build_parser
from ingest.app import create_app
from ingest.auth import sign
from tests.builders import body
from tests.builders import envelope

URL = "http://ingest.test/webhooks"


class ScriptedServer:
    """Answers each attempt with the next scripted status (or exception); records requests."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(
            answer,
            json={"status": "queued", "id": "e-1"}
            if answer < 300
            else {"error": "unavailable", "message": "retry"},
        )


def run(tmp_path, server, *files_and_options: str, write: dict[str, str] | None = None):
    """Run `engagehook send` through its parser with no real waiting; return (status, sleeps)."""
    for name, content in (write or {"e-1.json": body(envelope(event_id="e-1"))}).items():
        (tmp_path / name).write_text(content)
    names = [str(tmp_path / n) for n in (write or {"e-1.json": ""})]
    args = build_parser().parse_args(["send", *names, "--url", URL, *files_and_options])
    sleeps: list[float] = []
    status = sender.main(args, sleep=sleeps.append, transport=httpx.MockTransport(server))
    return status, sleeps


class TestRetrySchedule:
    def test_first_2xx_is_delivered_without_waiting(self, tmp_path, capsys):
        server = ScriptedServer(202)
        status, sleeps = run(tmp_path, server)
        assert (status, sleeps, len(server.requests)) == (0, [], 1)
        assert (
            "e-1.json: delivered after 1 attempt(s), last HTTP 202: queued e-1"
            in capsys.readouterr().out
        )

    def test_failures_are_retried_after_2_then_10_seconds(self, tmp_path, capsys):
        server = ScriptedServer(503, 500, 202)
        status, sleeps = run(tmp_path, server)
        assert (status, sleeps, len(server.requests)) == (0, [2.0, 10.0], 3)
        assert "delivered after 3 attempt(s)" in capsys.readouterr().out

    @pytest.mark.parametrize(
        "answer",
        [503, 500, 401, 400, 302, httpx.ReadTimeout("slow"), httpx.ConnectError("refused")],
        ids=["503", "500", "401", "400", "302", "timeout", "refused"],
    )
    def test_three_failures_give_up_with_exit_1(self, tmp_path, capsys, answer):
        server = ScriptedServer(answer)
        status, sleeps = run(tmp_path, server)
        assert (status, sleeps, len(server.requests)) == (1, [2.0, 10.0], 3)
        assert "e-1.json: gave up after 3 attempt(s)" in capsys.readouterr().out

    def test_each_file_gets_its_own_schedule_and_line(self, tmp_path, capsys):
        server = ScriptedServer(202, 503, 503, 503)
        status, _ = run(tmp_path, server, write={"a.json": '{"id": "a"}', "b.json": '{"id": "b"}'})
        lines = capsys.readouterr().out.splitlines()
        assert status == 1
        assert [line.split(":")[0].rsplit("/", 1)[-1] for line in lines] == ["a.json", "b.json"]
        assert "delivered" in lines[0] and "gave up" in lines[1]

    def test_unreadable_file_is_reported_and_the_others_still_sent(self, tmp_path, capsys):
        server = ScriptedServer(202)
        (tmp_path / "ok.json").write_text('{"id": "ok"}')
        args = build_parser().parse_args(
            ["send", str(tmp_path / "missing.json"), str(tmp_path / "ok.json"), "--url", URL]
        )
        status = sender.main(args, sleep=lambda _: None, transport=httpx.MockTransport(server))
        out = capsys.readouterr().out
        assert status == 1
        assert "missing.json: cannot read" in out and "ok.json: delivered" in out


class TestRequest:
    def test_body_is_sent_byte_for_byte_as_json(self, tmp_path):
        raw = '{"id": "e-1",   "x": 1.50, "name": "Zoë"}'
        server = ScriptedServer(202)
        run(tmp_path, server, write={"e-1.json": raw})
        request = server.requests[0]
        assert request.content == raw.encode()
        assert request.headers["Content-Type"] == "application/json"
        assert "Authorization" not in request.headers
        assert "X-Webhook-Signature" not in request.headers

    def test_the_token_rides_in_the_url_and_no_header_is_added(self, tmp_path):
        server = ScriptedServer(202)
        run(tmp_path, server, "--token", "tok-1")
        request = server.requests[0]
        assert request.url.params["token"] == "tok-1"
        assert str(request.url) == f"{URL}?token=tok-1"
        assert "Authorization" not in request.headers
        assert "X-Webhook-Signature" not in request.headers

    def test_the_token_joins_a_query_the_url_already_has(self, tmp_path):
        server = ScriptedServer(202)
        args = build_parser().parse_args(
            ["send", str(tmp_path / "e.json"), "--url", f"{URL}?tenant=a", "--token", "tok-1"]
        )
        (tmp_path / "e.json").write_text('{"id": "e"}')
        sender.main(args, sleep=lambda _: None, transport=httpx.MockTransport(server))
        assert dict(server.requests[0].url.params) == {"tenant": "a", "token": "tok-1"}

    def test_relay_headers_are_added_only_when_asked(self, tmp_path):
        raw = body(envelope(event_id="e-1"))
        server = ScriptedServer(202)
        run(tmp_path, server, "--bearer", "tok", "--hmac-secret", "sec", write={"e-1.json": raw})
        request = server.requests[0]
        assert request.headers["Authorization"] == "Bearer tok"
        assert request.headers["X-Webhook-Signature"] == sign(raw.encode(), "sec")
        assert "token" not in request.url.params

    def test_a_token_never_appears_in_what_it_prints(self, tmp_path, capsys):
        server = ScriptedServer(httpx.ConnectError(f"cannot reach {URL}?token=tok-secret"))
        run(tmp_path, server, "--token", "tok-secret")
        out = capsys.readouterr().out
        assert "gave up" in out and "tok-secret" not in out


class TestSendersSchedule:
    """3 s for the first answer; after 2 s a second attempt with 5 s; after 10 s one with 30 s."""

    @staticmethod
    def timeouts(server) -> list[float]:
        return [request.extensions["timeout"]["read"] for request in server.requests]

    def test_each_attempt_waits_as_long_as_the_sender_does(self, tmp_path):
        server = ScriptedServer(503)
        status, sleeps = run(tmp_path, server)
        assert status == 1
        assert sleeps == [2.0, 10.0]
        assert self.timeouts(server) == [3.0, 5.0, 30.0]
        assert all(
            set(request.extensions["timeout"].values()) == {timeout}
            for request, timeout in zip(server.requests, [3.0, 5.0, 30.0], strict=True)
        )

    def test_timeouts_are_given_up_on_the_same_schedule(self, tmp_path, capsys):
        server = ScriptedServer(httpx.ReadTimeout("slow"))
        status, sleeps = run(tmp_path, server)
        assert (status, sleeps, self.timeouts(server)) == (1, [2.0, 10.0], [3.0, 5.0, 30.0])
        assert "no answer within 30 s" in capsys.readouterr().out

    def test_timeout_option_overrides_every_attempt(self, tmp_path):
        server = ScriptedServer(503)
        run(tmp_path, server, "--timeout", "0.5")
        assert self.timeouts(server) == [0.5, 0.5, 0.5]


class TestAgainstIngest:
    def test_credentials_it_sends_are_the_ones_ingest_accepts(self, tmp_path, env, queue, capsys):
        app = create_app({**env, "WEBHOOK_TOKEN": "tok", "WEBHOOK_HMAC_SECRET": "sec"}, queue=queue)
        raw = body(envelope(event_id="e-ingest"))
        (tmp_path / "e.json").write_text(raw)
        args = build_parser().parse_args(
            [
                "send",
                str(tmp_path / "e.json"),
                "--url",
                URL,
                "--token",
                "tok",
                "--hmac-secret",
                "sec",
            ]
        )
        status = sender.main(args, sleep=lambda _: None, transport=httpx.WSGITransport(app=app))
        assert status == 0
        assert queue.bodies == [raw]
        assert (
            "delivered after 1 attempt(s), last HTTP 202: queued e-ingest"
            in capsys.readouterr().out
        )

    def test_a_server_that_never_answers_times_out_and_is_given_up(self, tmp_path, capsys):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        held: list[socket.socket] = []
        stop = threading.Event()

        def accept_and_hang() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept_and_hang)
        thread.start()
        try:
            (tmp_path / "e.json").write_text(json.dumps({"id": "e-1"}))
            url = f"http://127.0.0.1:{listener.getsockname()[1]}/webhooks"
            args = build_parser().parse_args(
                ["send", str(tmp_path / "e.json"), "--url", url, "--timeout", "0.3"]
            )
            status = sender.main(args, sleep=lambda _: None)
        finally:
            stop.set()
            thread.join()
            for conn in held:
                conn.close()
            listener.close()
        assert status == 1
        assert len(held) == 3
        assert (
            "gave up after 3 attempt(s), last no answer: no answer within 0.3 s"
            in capsys.readouterr().out
        )
