"""Broken and hostile requests get a clear JSON error, never a crash, an enqueue or a huge read."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from ingest.app import create_app
from tests.builders import body
from tests.builders import envelope
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok

LIMIT = 64 * 1024
DEEP = 50_000  # levels of nesting: far past any recursion limit
NESTED = [
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b'{"id": "e-1", "data": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    b'{"id": "e-1", "data": ' + b'{"a":' * DEEP + b"}" * DEEP + b"}",
]


def post(client, data, content_type="application/json"):
    return client.post("/webhooks", data=data, content_type=content_type)


def assert_json_error(response, status: int, error: str | None = None) -> None:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert set(response.json) >= {"error", "message"}
    assert response.json["message"]
    if error:
        assert response.json["error"] == error


@pytest.fixture
def app(env, queue):
    return create_app({**env, "MAX_BODY_BYTES": str(LIMIT)}, queue=queue)


class TestMalformedBodies:
    @pytest.mark.parametrize(
        ("raw", "error"),
        [
            (b"", "invalid_json"),
            (b"not json", "invalid_json"),
            (b'{"id": "e-1"', "invalid_json"),
            (b'{"id": "e-1"} trailing', "invalid_json"),
            (b'{"id": "\xff\xfe"}', "invalid_json"),
            (b'{"id": "e-1", "x": "\xc3"}', "invalid_json"),
            (b'{"id": "\\ud800"}', "invalid_json"),
            (b"\xef\xbb\xbf" + b'{"id": "e-1"}', "invalid_json"),
            (b'{"id": "e-1", "n": NaN}', "invalid_json"),
            (b'{"id": "e-1", "n": 1e999}', "invalid_json"),
            (b"[]", "invalid_envelope"),
            (b'[{"id": "e-1"}]', "invalid_envelope"),
            (b'"e-1"', "invalid_envelope"),
            (b"42", "invalid_envelope"),
            (b"null", "invalid_envelope"),
            (b"true", "invalid_envelope"),
            (b"{}", "invalid_envelope"),
            (b'{"data": {"eventType": "CREATE"}}', "invalid_envelope"),
            (b'{"id": 42}', "invalid_envelope"),
            (b'{"id": null}', "invalid_envelope"),
            (b'{"id": ["e-1"]}', "invalid_envelope"),
            (b'{"id": {"id": "e-1"}}', "invalid_envelope"),
            (b'{"id": true}', "invalid_envelope"),
            (b'{"id": ""}', "invalid_envelope"),
            (b'{"id": "   "}', "invalid_envelope"),
            (b'{"id": "e-\\u0000"}', "invalid_envelope"),
            (b'{"id": "e-\\n1"}', "invalid_envelope"),
            (json.dumps({"id": "e" * 256}).encode(), "invalid_envelope"),
        ],
        ids=lambda v: v if isinstance(v, str) else None,
    )
    def test_bad_body_gets_400_and_nothing_is_enqueued(self, client, queue, raw, error):
        assert_json_error(post(client, raw), 400, error)
        assert queue.bodies == []

    @pytest.mark.parametrize("raw", NESTED, ids=["array", "object", "inner-array", "unclosed"])
    def test_deeply_nested_json_gets_400_without_a_crash(self, env, queue, raw):
        client = create_app(env, queue=queue).test_client()  # default limit: 1 MiB
        assert len(raw) < 1_048_576
        assert_json_error(post(client, raw), 400, "invalid_json")
        assert queue.bodies == []

    def test_message_names_what_is_wrong_without_echoing_the_body(self, client):
        response = post(client, b'{"id": "e-1", "secret": "personal-data-value"')
        assert "personal-data-value" not in response.get_data(as_text=True)

    def test_huge_string_within_the_limit_is_accepted_whole(self, client, queue):
        raw = json.dumps({"id": "e-1", "pad": "ü" * (LIMIT // 2 - 100)}, ensure_ascii=False)
        assert post(client, raw.encode()).status_code == 202
        assert queue.bodies == [raw]

    def test_huge_string_past_the_limit_gets_413(self, client, queue):
        raw = json.dumps({"id": "e-1", "pad": "x" * LIMIT})
        assert_json_error(post(client, raw), 413, "request_entity_too_large")
        assert queue.bodies == []

    def test_id_of_exactly_255_characters_is_accepted(self, client, queue):
        assert post(client, json.dumps({"id": "e" * 255})).status_code == 202

    def test_duplicate_keys_take_the_last_value_as_json_parsers_do(self, client, queue):
        raw = b'{"id": "first", "id": "second"}'
        response = post(client, raw)
        assert response.status_code == 202
        assert response.json["id"] == "second"


class TestWrongRequests:
    @pytest.mark.parametrize(
        "content_type",
        [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "json",
            "",
        ],
    )
    def test_wrong_content_type_gets_415_and_nothing_is_enqueued(self, client, queue, content_type):
        raw = body(envelope(event_id="e-1"))
        assert_json_error(
            post(client, raw, content_type=content_type), 415, "unsupported_media_type"
        )
        assert queue.bodies == []

    @pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
    def test_wrong_method_gets_405_with_allow(self, client, queue, method):
        response = client.open(
            "/webhooks", method=method, data=b'{"id": "e-1"}', content_type="application/json"
        )
        assert_json_error(response, 405, "method_not_allowed")
        assert "POST" in response.headers["Allow"]
        assert queue.bodies == []

    def test_declared_length_past_the_limit_gets_413_without_reading(self, client, queue):
        response = client.post(
            "/webhooks",
            input_stream=_Unreadable(),
            content_type="application/json",
            environ_overrides={"CONTENT_LENGTH": str(LIMIT * 1000)},
        )
        assert_json_error(response, 413)
        assert queue.bodies == []

    def test_body_cut_off_by_the_server_gets_408_and_nothing_is_enqueued(self, client, queue):
        response = client.post(
            "/webhooks",
            input_stream=_CutOff(),
            content_type="application/json",
            environ_overrides={"CONTENT_LENGTH": "1000"},
        )
        assert_json_error(response, 408, "request_timeout")
        assert queue.bodies == []


class _CutOff:
    """A body stream that the server cut off (the read deadline passed) after a few bytes."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, *args) -> bytes:
        self.calls += 1
        if self.calls == 1:
            return b'{"id": "e-1"'
        raise TimeoutError("the request did not arrive within 10 s")

    readline = read

    def tell(self) -> int:
        return 0

    def seek(self, *args) -> int:
        return 0


class _Unreadable:
    """A request body that fails the test if anyone reads it."""

    def read(self, *args):
        raise AssertionError("the body was read although its declared length is too large")

    readline = read

    def tell(self) -> int:
        return 0

    def seek(self, *args) -> int:
        return 0


# -- the same against a real gunicorn (`engagehook web`), over raw sockets --------------------


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """`engagehook web` in embedded mode with a small body limit; yields its port and data dir."""
    root = tmp_path_factory.mktemp("hostile")
    port = free_port()
    env = {"ENGAGEHOOK_DATA_DIR": str(root / "var"), "MAX_BODY_BYTES": str(LIMIT)}
    process = start(["web", "--port", str(port), "--workers", "1"], env, root / "web.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/healthz")
        yield port, root / "var"
    finally:
        stop(process)


def exchange(port: int, head: bytes, chunks=(), shutdown: bool = False) -> tuple[bytes, int]:
    """Send a raw request; return the raw response and how many body bytes were sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    received: list[bytes] = []

    def read() -> None:
        # Read concurrently: the server answers and closes while we may still be sending.
        try:
            while data := sock.recv(65536):
                received.append(data)
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    sent = 0
    try:
        sock.sendall(head)
        for chunk in chunks:
            if received:
                break  # the server has answered: stop sending, as a sane client would
            sock.sendall(chunk)
            sent += len(chunk)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server closed the connection on us: what it answered is what counts
    reader.join(timeout=20)
    sock.close()
    return b"".join(received), sent


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def json_of(response: bytes) -> dict:
    return json.loads(response.partition(b"\r\n\r\n")[2])


def head(port: int, *headers: str) -> bytes:
    lines = [
        "POST /webhooks HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        *headers,
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def queued(data_dir) -> int:
    """Messages in the embedded broker plus payloads in the spool."""
    from workers.embedded_broker import pending_messages

    broker = f"sqlite:///{(data_dir / 'broker.sqlite3').resolve()}"
    return pending_messages(broker) + len(list((data_dir / "spool").glob("*.json")))


@pytest.mark.slow
class TestUnderGunicorn:
    def test_declared_length_past_the_limit_gets_413_before_any_body_is_sent(self, web):
        port, data_dir = web
        before = queued(data_dir)
        response, _ = exchange(port, head(port, f"Content-Length: {10 * 1024**3}"))
        assert status_of(response) == 413
        assert json_of(response)["error"] == "request_entity_too_large"
        assert queued(data_dir) == before

    def test_chunked_body_past_the_limit_gets_413_long_before_it_ends(self, web):
        port, data_dir = web
        before = queued(data_dir)
        chunk = b"%x\r\n%s\r\n" % (8192, b"x" * 8192)
        total = 64 * 1024 * 1024
        response, sent = exchange(
            port, head(port, "Transfer-Encoding: chunked"), (chunk for _ in range(total // 8192))
        )
        assert status_of(response) == 413
        assert sent < total // 4  # refused once past the limit, not after reading it all
        assert queued(data_dir) == before

    def test_content_length_shorter_than_the_body_reads_only_what_was_declared(self, web):
        port, data_dir = web
        before = queued(data_dir)
        raw = body(envelope(event_id="e-lying")).encode()
        response, _ = exchange(port, head(port, "Content-Length: 10") + raw)
        assert status_of(response) == 400
        assert json_of(response)["error"] == "invalid_json"
        assert queued(data_dir) == before

    def test_body_shorter_than_its_content_length_gets_400_when_the_client_stops(self, web):
        port, data_dir = web
        before = queued(data_dir)
        response, _ = exchange(
            port, head(port, "Content-Length: 1000") + b'{"id": "e-short"}', shutdown=True
        )
        assert status_of(response) == 400
        assert json_of(response)["error"] == "incomplete_body"
        assert queued(data_dir) == before

    def test_content_length_together_with_chunked_is_refused(self, web):
        port, data_dir = web
        before = queued(data_dir)
        raw = body(envelope(event_id="e-smuggle")).encode()
        request = head(
            port, "Content-Length: 5", "Transfer-Encoding: chunked"
        ) + b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw)
        response, _ = exchange(port, request)
        assert status_of(response) == 400
        assert queued(data_dir) == before

    def test_deeply_nested_chunked_json_gets_400(self, web):
        port, data_dir = web
        before = queued(data_dir)
        nested = b"[" * (LIMIT // 4) + b"]" * (LIMIT // 4)
        response, _ = exchange(
            port,
            head(port, "Transfer-Encoding: chunked")
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(nested), nested),
        )
        assert status_of(response) == 400
        assert json_of(response)["error"] == "invalid_json"
        assert queued(data_dir) == before

    def test_server_still_accepts_a_valid_webhook_afterwards(self, web):
        port, data_dir = web
        before = queued(data_dir)
        raw = body(envelope(event_id="e-after")).encode()
        response, _ = exchange(port, head(port, f"Content-Length: {len(raw)}") + raw)
        assert status_of(response) == 202
        assert queued(data_dir) == before + 1
