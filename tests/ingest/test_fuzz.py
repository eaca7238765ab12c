"""Fuzzing the endpoint: whatever arrives, ingest answers in its JSON error shape, never 5xx.

Hypothesis throws raw bytes, JSON documents and near-miss envelopes with random headers at
the Flask app; schemathesis generates requests from the app's own /openapi.json.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ingest.app import create_app
from ingest.auth import sign
from tests.fakes import RecordingQueue

TOKEN = "fuzz-token"
SECRET = "fuzz-secret"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
envelopes = st.fixed_dictionaries(
    {"id": st.text(max_size=300) | json_values},
    optional={
        "data": st.fixed_dictionaries(
            {},
            optional={
                "eventType": json_values,
                "appointment": st.dictionaries(st.text(max_size=8), json_values),
            },
        )
    },
)
bodies = (
    st.binary(max_size=512)
    | json_values.map(lambda v: json.dumps(v).encode())
    | envelopes.map(lambda e: json.dumps(e).encode())
)
content_types = (
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "",
            "application/x-www-form-urlencoded",
        ]
    )
    | printable
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """One app with both secrets configured, and the queue it records into."""
    queue = RecordingQueue()
    env = {
        "ENGAGEHOOK_DATA_DIR": str(tmp_path_factory.mktemp("fuzz")),
        "WEBHOOK_TOKEN": TOKEN,
        "WEBHOOK_HMAC_SECRET": SECRET,
        "MAX_BODY_BYTES": "256",
    }
    return create_app(env, queue=queue).test_client(), queue


def well_formed(raw: bytes) -> bool:
    """What ingest promises to accept: a JSON object with a usable string id."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(document, dict)
        and isinstance(document.get("id"), str)
        and bool(document["id"].strip())
        and len(document["id"]) <= 255
        and document["id"].isprintable()
    )


class TestRawRequests:
    @FUZZ
    @given(
        raw=bodies,
        content_type=content_types,
        with_token=st.booleans(),
        with_signature=st.booleans(),
        junk_header=printable,
    )
    def test_no_request_gets_a_5xx_and_only_well_formed_authentic_ones_are_queued(
        self, fuzzed, raw, content_type, with_token, with_signature, junk_header
    ):
        client, queue = fuzzed
        queue.bodies.clear()
        headers = {"Content-Type": content_type, "X-Junk": junk_header}
        headers["Authorization"] = f"Bearer {TOKEN}" if with_token else f"Bearer {junk_header}"
        headers["X-Webhook-Signature"] = sign(raw, SECRET) if with_signature else junk_header
        response = client.post("/webhooks", data=raw, headers=headers)

        assert response.status_code < 500
        if response.status_code >= 400:
            assert set(response.get_json()) >= {"error", "message"}
        accepted = 200 <= response.status_code < 300
        expected = (
            with_token
            and with_signature
            and len(raw) <= 256
            and well_formed(raw)
            and content_type.split(";")[0].strip().lower() == "application/json"
        )
        assert accepted == expected
        assert queue.bodies == ([raw.decode()] if accepted else [])

    @FUZZ
    @given(
        method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
        path=st.sampled_from(
            ["/webhooks", "/healthz", "/readyz", "/openapi.json", "/admin/events/x", "/nowhere"]
        )
        | printable.map(lambda p: "/" + quote(p, safe="/")),
        query=printable,
    )
    @example(method="GET", path="//.", query="")
    @example(method="POST", path="//example.com/webhooks", query="")
    def test_any_method_and_path_is_answered_without_a_5xx(self, fuzzed, method, path, query):
        client, queue = fuzzed
        # The path goes in as the server would hand it over; given as a URL, a
        # path like "//." would be read by the test client as a host name.
        response = client.open(
            "/", method=method, query_string=query, environ_overrides={"PATH_INFO": path}
        )
        assert response.status_code < 500 or path == "/readyz"  # 503 there means "not ready"
        if response.status_code >= 400 and method != "HEAD":
            assert set(response.get_json()) >= {"error", "message"}


class TestOpenAPI:
    """Requests generated from the app's own OpenAPI document (schemathesis)."""

    def test_generated_requests_get_no_5xx(self, tmp_path):
        schemathesis = pytest.importorskip("schemathesis")
        queue = RecordingQueue()
        app = create_app({"ENGAGEHOOK_DATA_DIR": str(tmp_path)}, queue=queue)
        schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
        failures = []

        @given(case=schema["/webhooks"]["POST"].as_strategy())
        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        def post_webhooks(case):
            response = case.call()
            if response.status_code >= 500:
                failures.append((case.body, response.status_code))
            assert response.status_code in (200, 202, 400, 401, 413, 415)

        post_webhooks()
        assert failures == []
