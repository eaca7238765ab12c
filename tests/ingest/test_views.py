"""POST /webhooks: one test per answer the contract names."""

from __future__ import annotations

import json

import pytest

from ingest.app import create_app
from ingest.queue import SpoolingQueue
from ingest.spool import Spool
from tests.builders import body
from tests.builders import load_payload
from tests.fakes import RecordingQueue
from tests.fakes import UnreachableQueue
from tests.processes import free_port


def post(client, data, content_type="application/json", **kwargs):
    return client.post("/webhooks", data=data, content_type=content_type, **kwargs)


class TestAccepted:
    def test_valid_payload_is_queued_with_202_and_its_id(self, client, queue):
        raw = body(load_payload("CREATE"))
        response = post(client, raw)
        assert response.status_code == 202
        assert response.json["status"] == "queued"
        assert response.json["id"] == "4d2f8a6c-9e1b-4c3d-a5f7-000000001001"

    def test_raw_body_is_enqueued_byte_for_byte(self, client, queue):
        raw = '{"id": "e-1",   "data": {"eventType": "CANCEL", "appointment": {"id": "a-9"}}, "x": 1.50}'
        post(client, raw)
        assert queue.bodies == [raw]

    def test_identifiers_for_flower_are_extracted_without_the_payload(self, client, queue):
        post(client, body(load_payload("CREATE")))
        assert queue.identifiers == [
            (
                "4d2f8a6c-9e1b-4c3d-a5f7-000000001001",
                "CREATE",
                "7a1c3e5f-2b4d-4f6a-8c9e-000000000101",
            )
        ]

    def test_content_type_with_charset_is_accepted(self, client, queue):
        response = post(client, body({"id": "e-2"}), content_type="application/json; charset=utf-8")
        assert response.status_code == 202


class TestRejected:
    @pytest.mark.parametrize(
        ("raw", "error"),
        [
            ("not json", "invalid_json"),
            ("[1, 2]", "invalid_envelope"),
            ('"just a string"', "invalid_envelope"),
            ('{"data": {}}', "invalid_envelope"),
            ('{"id": 42}', "invalid_envelope"),
            ('{"id": ""}', "invalid_envelope"),
        ],
    )
    def test_bad_envelope_gets_400_json_error_and_nothing_is_enqueued(
        self, client, queue, raw, error
    ):
        response = post(client, raw)
        assert response.status_code == 400
        assert response.json["error"] == error
        assert response.json["message"]
        assert queue.bodies == []

    def test_wrong_content_type_gets_415(self, client, queue):
        response = post(client, body({"id": "e-1"}), content_type="text/plain")
        assert response.status_code == 415
        assert response.json["error"] == "unsupported_media_type"
        assert queue.bodies == []

    def test_body_over_the_limit_gets_413(self, env, queue):
        app = create_app({**env, "MAX_BODY_BYTES": "100"}, queue=queue)
        response = post(app.test_client(), json.dumps({"id": "e-1", "pad": "x" * 200}))
        assert response.status_code == 413
        assert response.json["error"] == "request_entity_too_large"
        assert queue.bodies == []

    def test_unknown_route_gets_json_404(self, client):
        response = client.get("/nowhere")
        assert response.status_code == 404
        assert response.json["error"] == "not_found"

    def test_wrong_method_gets_json_405(self, client):
        response = client.get("/webhooks")
        assert response.status_code == 405
        assert response.json["error"] == "method_not_allowed"


class TestBrokerDown:
    def test_unstorable_payload_gets_503_with_retry_after(self, env):
        app = create_app(env, queue=UnreachableQueue())
        response = post(app.test_client(), body({"id": "e-1"}))
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        assert response.json["error"] == "unavailable"


class TestHealth:
    def test_healthz_answers_200(self, client):
        assert client.get("/healthz").status_code == 200

    def test_readyz_stays_200_and_degraded_while_the_spool_takes_what_the_broker_cannot(
        self, env, data_dir
    ):
        response = readyz(env, UnreachableQueue(), Spool(data_dir / "spool", 1_000_000))
        assert response.status_code == 200
        assert response.json["status"] == "degraded"
        assert response.json["broker"] == {"status": "down", "error": "ConnectionError"}
        assert response.json["spool"]["status"] == "ok"
        assert response.json["store"] == {"status": "ok"}

    def test_readyz_is_503_when_the_broker_is_down_and_the_spool_not_writable(self, env, data_dir):
        (data_dir / "spool").write_text("a file where the spool directory should be")
        response = readyz(env, UnreachableQueue(), Spool(data_dir / "spool", 1_000_000))
        assert response.status_code == 503
        assert response.json["error"] == "not_ready"
        assert "neither the broker nor the spool" in response.json["message"]
        assert response.json["spool"]["status"] == "down"
        assert response.json["broker"]["status"] == "down"

    def test_readyz_is_503_when_the_broker_is_down_and_the_spool_full(self, env, data_dir):
        spool = Spool(data_dir / "spool", 100)
        (data_dir / "spool").mkdir()
        (data_dir / "spool" / "00000000000000000001-0000001-000001.json").write_bytes(b"x" * 100)
        response = readyz(env, UnreachableQueue(), spool)
        assert response.status_code == 503
        assert response.json["spool"] == {"status": "full", "bytes": 100, "max_bytes": 100}

    def test_a_full_spool_with_the_broker_up_is_only_degraded(self, env, data_dir):
        spool = Spool(data_dir / "spool", 100)
        (data_dir / "spool").mkdir()
        (data_dir / "spool" / "00000000000000000001-0000001-000001.json").write_bytes(b"x" * 100)
        response = readyz(env, RecordingQueue(), spool)
        assert response.status_code == 200
        assert response.json["status"] == "degraded"
        assert response.json["broker"] == {"status": "ok"}

    def test_a_store_that_is_down_alone_does_not_make_ingest_unready(self, env, data_dir):
        port = free_port()
        env = {**env, "DATABASE_URL": f"postgresql+psycopg://nobody@127.0.0.1:{port}/none"}
        response = readyz(env, RecordingQueue(), Spool(data_dir / "spool", 1_000_000))
        assert response.status_code == 200
        assert response.json["status"] == "degraded"
        assert response.json["store"] == {"status": "down", "error": "OperationalError"}

    def test_readyz_answers_200_when_broker_and_store_answer(self, env, data_dir):
        response = readyz(env, RecordingQueue(), Spool(data_dir / "spool", 1_000_000))
        assert response.status_code == 200
        assert response.json["status"] == "ready"
        assert {response.json[name]["status"] for name in ("broker", "spool", "store")} == {"ok"}


def readyz(env, broker, spool):
    """GET /readyz of an app whose broker is ``broker``, with ``spool`` behind it."""
    queue = SpoolingQueue(broker, spool)
    try:
        return create_app(env, queue=queue).test_client().get("/readyz")
    finally:
        queue.stop()
