"""Authentication of /webhooks (token, HMAC) and /admin (ADMIN_TOKEN): 401 enqueues nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import pytest

from handlers.store import Store
from ingest import auth
from ingest.app import create_app
from ingest.auth import sign
from tests.builders import body
from tests.builders import envelope
from tests.processes import free_port
from tests.processes import migrate
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_http_ok
from tests.processes import wait_until

TOKEN = "s3cret-token-4d2f8a6c"
SECRET = "hmac-secret-9e1b4c3d"
OLD_SECRET = "hmac-secret-retired"


def make_client(env, queue, **settings):
    return create_app({**env, **settings}, queue=queue).test_client()


def post(
    client, raw: str | bytes, headers=None, query: str = "", content_type: str = "application/json"
):
    return client.post(
        f"/webhooks{query}", data=raw, content_type=content_type, headers=headers or {}
    )


@pytest.fixture
def raw():
    return body(envelope(event_id="evt-auth-1"))


class TestNoSecretConfigured:
    def test_requests_are_accepted_without_credentials(self, client, queue, raw):
        assert post(client, raw).status_code == 202
        assert queue.bodies == [raw]


class TestToken:
    @pytest.fixture
    def client(self, env, queue):
        return make_client(env, queue, WEBHOOK_TOKEN=TOKEN)

    @pytest.mark.parametrize(
        ("headers", "query"),
        [
            ({"Authorization": f"Bearer {TOKEN}"}, ""),
            ({"Authorization": f"bearer {TOKEN}"}, ""),
            ({"Authorization": f"Bearer  {TOKEN} "}, ""),
            ({}, f"?token={TOKEN}"),
            ({"Authorization": "Bearer wrong"}, f"?token={TOKEN}"),
        ],
        ids=["bearer", "scheme-case", "whitespace", "query", "either-one-right"],
    )
    def test_right_token_is_accepted(self, client, queue, raw, headers, query):
        assert post(client, raw, headers, query).status_code == 202
        assert queue.bodies == [raw]

    @pytest.mark.parametrize(
        ("headers", "query"),
        [
            ({}, ""),
            ({"Authorization": "Bearer wrong"}, ""),
            ({"Authorization": f"Bearer {TOKEN[:-1]}"}, ""),
            ({"Authorization": f"Bearer {TOKEN}x"}, ""),
            ({"Authorization": f"Basic {TOKEN}"}, ""),
            ({"Authorization": TOKEN}, ""),
            ({"Authorization": "Bearer "}, "?token="),
            ({}, f"?tok={TOKEN}"),
            ({"Authorization": "Bearer tökén"}, ""),
        ],
        ids=[
            "none",
            "wrong",
            "prefix",
            "longer",
            "basic",
            "no-scheme",
            "empty",
            "other-param",
            "non-ascii",
        ],
    )
    def test_missing_or_wrong_token_gets_401_and_nothing_is_enqueued(
        self, client, queue, raw, headers, query
    ):
        response = post(client, raw, headers, query)
        assert response.status_code == 401
        assert response.json["error"] == "unauthorized"
        assert "WEBHOOK_TOKEN" in response.json["message"]
        assert queue.bodies == []

    def test_wrong_token_is_refused_before_the_body_is_judged(self, env, queue):
        client = make_client(env, queue, WEBHOOK_TOKEN=TOKEN, MAX_BODY_BYTES="100")
        response = post(
            client, json.dumps({"id": "x", "pad": "p" * 1_000}), content_type="text/plain"
        )
        assert response.status_code == 401

    def test_the_answer_never_echoes_the_presented_token(self, client, raw):
        response = post(client, raw, {"Authorization": "Bearer guess-0123456789"})
        assert b"guess-0123456789" not in response.data

    def test_health_and_openapi_routes_need_no_token(self, client):
        assert client.get("/healthz").status_code == 200


class TestSignature:
    @pytest.fixture
    def client(self, env, queue):
        return make_client(env, queue, WEBHOOK_HMAC_SECRET=f"{SECRET}, {OLD_SECRET}")

    @pytest.mark.parametrize("secret", [SECRET, OLD_SECRET], ids=["current", "rotated-out"])
    def test_signature_under_any_configured_secret_is_accepted(self, client, queue, raw, secret):
        response = post(client, raw, {"X-Webhook-Signature": sign(raw.encode(), secret)})
        assert response.status_code == 202
        assert queue.bodies == [raw]

    def test_signature_hex_is_accepted_in_upper_case(self, client, raw):
        value = (
            "SHA256=" + hmac.new(SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest().upper()
        )
        assert post(client, raw, {"X-Webhook-Signature": value}).status_code == 202

    @pytest.mark.parametrize(
        "signature",
        [
            None,
            "",
            "sha256=",
            "sha256=00",
            "sha1=" + hmac.new(SECRET.encode(), b"x", hashlib.sha1).hexdigest(),
            "sha256=" + hmac.new(b"another-secret", b"x", hashlib.sha256).hexdigest(),
            "sha256=zz-not-hex",
            "sha256=ünïcödé",
        ],
        ids=["missing", "empty", "no-hex", "short", "sha1", "other-secret", "not-hex", "non-ascii"],
    )
    def test_missing_or_wrong_signature_gets_401_and_nothing_is_enqueued(
        self, client, queue, raw, signature
    ):
        headers = {} if signature is None else {"X-Webhook-Signature": signature}
        response = post(client, raw, headers)
        assert response.status_code == 401
        assert "X-Webhook-Signature" in response.json["message"]
        assert queue.bodies == []

    def test_signature_covers_the_raw_bytes_not_the_parsed_json(self, client, queue, raw):
        reformatted = json.dumps(json.loads(raw), indent=2)
        response = post(client, reformatted, {"X-Webhook-Signature": sign(raw.encode(), SECRET)})
        assert response.status_code == 401
        assert queue.bodies == []

    def test_signature_of_a_non_ascii_body_is_checked_on_its_utf8_bytes(self, client, queue):
        raw = json.dumps({"id": "evt-ü", "note": "Zoë ✓"}, ensure_ascii=False)
        response = post(client, raw.encode(), {"X-Webhook-Signature": sign(raw.encode(), SECRET)})
        assert response.status_code == 202
        assert queue.bodies == [raw]


class TestTokenAndSignature:
    @pytest.fixture
    def client(self, env, queue):
        return make_client(env, queue, WEBHOOK_TOKEN=TOKEN, WEBHOOK_HMAC_SECRET=SECRET)

    @pytest.mark.parametrize(
        ("with_token", "with_signature", "status"),
        [(True, True, 202), (True, False, 401), (False, True, 401), (False, False, 401)],
    )
    def test_both_are_required_when_both_are_set(
        self, client, queue, raw, with_token, with_signature, status
    ):
        headers = {}
        if with_token:
            headers["Authorization"] = f"Bearer {TOKEN}"
        if with_signature:
            headers["X-Webhook-Signature"] = sign(raw.encode(), SECRET)
        assert post(client, raw, headers).status_code == status
        assert len(queue.bodies) == (1 if status == 202 else 0)


class TestConstantTime:
    def test_every_secret_is_compared_even_after_a_match(self, env, queue, raw, monkeypatch):
        compared = []
        real = hmac.compare_digest

        def spy(a, b):
            compared.append((len(a), len(b)))
            return real(a, b)

        monkeypatch.setattr(auth.hmac, "compare_digest", spy)
        client = make_client(env, queue, WEBHOOK_HMAC_SECRET=f"{SECRET},{OLD_SECRET},third")
        assert (
            post(client, raw, {"X-Webhook-Signature": sign(raw.encode(), SECRET)}).status_code
            == 202
        )
        assert len(compared) == 3

    @pytest.mark.parametrize("presented", ["x", TOKEN, TOKEN * 10])
    def test_tokens_are_compared_as_digests_of_one_length(
        self, env, queue, raw, monkeypatch, presented
    ):
        compared = []
        real = hmac.compare_digest
        monkeypatch.setattr(
            auth.hmac,
            "compare_digest",
            lambda a, b: compared.append((len(a), len(b))) or real(a, b),
        )
        post(
            make_client(env, queue, WEBHOOK_TOKEN=TOKEN),
            raw,
            {"Authorization": f"Bearer {presented}"},
        )
        assert compared == [(32, 32)]


class TestSecretsAreNotLogged:
    def test_rejected_and_accepted_requests_log_no_secret(self, env, queue, raw, caplog):
        caplog.set_level(logging.DEBUG)
        client = make_client(env, queue, WEBHOOK_TOKEN=TOKEN, WEBHOOK_HMAC_SECRET=SECRET)
        post(client, raw, {"Authorization": "Bearer wrong-guess"})
        post(
            client,
            raw,
            {"Authorization": f"Bearer {TOKEN}", "X-Webhook-Signature": sign(raw.encode(), SECRET)},
        )
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert TOKEN not in logged and SECRET not in logged and "wrong-guess" not in logged


class TestAdmin:
    ADMIN = "admin-token-7a1c"

    @pytest.fixture
    def migrated_env(self, env, data_dir):
        store = Store(f"sqlite:///{data_dir / 'engagehook.sqlite3'}")
        store.migrate()
        store.engine.dispose()
        return env

    @pytest.mark.parametrize("path", ["/admin/appointments/a-1", "/admin/events/e-1"])
    def test_admin_routes_do_not_exist_without_admin_token(self, client, path):
        response = client.get(path, headers={"Authorization": "Bearer anything"})
        assert response.status_code == 404
        assert "ADMIN_TOKEN" in response.json["message"]

    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN}"}],
        ids=["none", "wrong", "basic"],
    )
    def test_admin_routes_need_the_admin_token(self, env, queue, headers):
        client = make_client(env, queue, ADMIN_TOKEN=self.ADMIN)
        response = client.get("/admin/events/e-1", headers=headers)
        assert response.status_code == 401
        assert response.json["error"] == "unauthorized"

    def test_webhook_token_does_not_open_the_admin_routes(self, env, queue):
        client = make_client(env, queue, ADMIN_TOKEN=self.ADMIN, WEBHOOK_TOKEN=TOKEN)
        response = client.get("/admin/events/e-1", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 401

    def test_admin_token_opens_the_admin_routes(self, migrated_env, queue):
        client = make_client(migrated_env, queue, ADMIN_TOKEN=self.ADMIN)
        response = client.get(
            "/admin/events/e-1", headers={"Authorization": f"Bearer {self.ADMIN}"}
        )
        assert response.status_code == 404
        assert response.json["error"] == "not_found"
        assert "e-1" in response.json["message"]


class TestStartWarning:
    """`serve`, `web` and `worker` say so at start when /webhooks is open to anyone."""

    @pytest.mark.slow
    @pytest.mark.parametrize("role", ["serve", "web", "worker"])
    def test_role_warns_when_no_secret_is_set(self, tmp_path, role):
        log = tmp_path / f"{role}.log"
        args = [role] if role == "worker" else [role, "--port", str(free_port())]
        env = {"ENGAGEHOOK_DATA_DIR": str(tmp_path / "var")}
        if role == "worker":
            migrate(env)  # a worker refuses a store without the schema
        process = start(args, env, log)
        try:
            wait_until(lambda: "WEBHOOK_TOKEN" in log.read_text(errors="replace"), timeout=30)
        finally:
            stop(process)
        line = next(x for x in log.read_text().splitlines() if "WEBHOOK_TOKEN" in x)
        assert "warning" in line.lower() and "WEBHOOK_HMAC_SECRET" in line

    @pytest.mark.slow
    def test_web_does_not_warn_when_a_token_is_set(self, tmp_path):
        port = free_port()
        log = tmp_path / "web.log"
        process = start(
            ["web", "--port", str(port)],
            {"ENGAGEHOOK_DATA_DIR": str(tmp_path / "var"), "WEBHOOK_TOKEN": TOKEN},
            log,
        )
        try:
            wait_http_ok(f"http://127.0.0.1:{port}/healthz")
        finally:
            stop(process)
        assert "WEBHOOK_TOKEN" not in log.read_text()
        assert TOKEN not in log.read_text()
