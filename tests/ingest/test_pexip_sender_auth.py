"""What the real Pexip Engage sender can do: a token in the URL, rotated without a gap, and a
webhookConfigurationId allowlist. Every refusal is JSON, enqueues nothing and is counted."""

from __future__ import annotations

import hmac

import pytest

from core.config import ConfigError
from core.config import Settings
from ingest import auth
from ingest.app import create_app
from tests.builders import body
from tests.builders import envelope
from tests.test_metrics import scrape
from tests.test_metrics import value

OLD = "old-token-7c1e5b2d"
NEW = "new-token-4a9f0e6b"
CONFIG_ID = "cfg-2f6a1c9d"
JSON = {"Content-Type": "application/json"}


def make_client(env, queue, **settings):
    return create_app({**env, **settings}, queue=queue).test_client()


def rejected(client, reason: str) -> float | None:
    return value(
        scrape(client), "engagehook_webhooks_received_total", outcome="rejected", reason=reason
    )


class TestSeveralTokens:
    @pytest.fixture
    def client(self, env, queue):
        return make_client(env, queue, WEBHOOK_TOKEN=f" {OLD} , {NEW},")

    @pytest.mark.parametrize("token", [OLD, NEW])
    @pytest.mark.parametrize("carrier", ["query", "bearer"])
    def test_every_listed_token_is_accepted(self, client, queue, token, carrier):
        raw = body(envelope(event_id=f"evt-{carrier}-{token}"))
        if carrier == "query":
            response = client.post(f"/webhooks?token={token}", data=raw, headers=JSON)
        else:
            headers = {**JSON, "Authorization": f"Bearer {token}"}
            response = client.post("/webhooks", data=raw, headers=headers)
        assert response.status_code == 202
        assert queue.bodies == [raw]

    @pytest.mark.parametrize(
        "query",
        ["", "?token=", f"?token={OLD},{NEW}", f"?token={OLD[:-1]}", "?token=retired-token"],
        ids=["none", "empty", "the-whole-list", "prefix", "retired"],
    )
    def test_anything_else_gets_401_without_naming_a_token(self, client, queue, query):
        response = client.post(f"/webhooks{query}", data=body(envelope()), headers=JSON)
        assert response.status_code == 401
        assert set(response.json) == {"error", "message"}
        assert response.json["error"] == "unauthorized"
        assert "?token=" in response.json["message"]
        text = response.get_data(as_text=True)
        assert OLD not in text and NEW not in text
        assert queue.bodies == []
        assert rejected(client, "unauthorized") == 1

    def test_rotation_leaves_no_gap(self, env, queue):
        """Add the new token, switch the sender, remove the old one: every step is accepted."""
        steps = [(OLD, OLD), (f"{OLD},{NEW}", OLD), (f"{OLD},{NEW}", NEW), (NEW, NEW)]
        for number, (configured, sent) in enumerate(steps):
            client = make_client(env, queue, WEBHOOK_TOKEN=configured)
            raw = body(envelope(event_id=f"evt-rotation-{number}"))
            response = client.post(f"/webhooks?token={sent}", data=raw, headers=JSON)
            assert response.status_code == 202, (configured, sent)
        retired = make_client(env, queue, WEBHOOK_TOKEN=NEW)
        response = retired.post(f"/webhooks?token={OLD}", data=body(envelope()), headers=JSON)
        assert response.status_code == 401


class TestConstantTime:
    """The comparisons made do not depend on which token matched, nor on the presented value."""

    @pytest.fixture
    def comparisons(self, monkeypatch):
        calls: list[tuple[int, int]] = []
        real = hmac.compare_digest

        def counting(a, b):
            calls.append((len(a), len(b)))
            return real(a, b)

        monkeypatch.setattr(auth.hmac, "compare_digest", counting)
        return calls

    @pytest.mark.parametrize(
        "presented", ["first-token", "third-token", "wrong", "x" * 5000, ""], ids=str.__len__
    )
    def test_every_configured_token_is_compared_as_a_fixed_length_digest(
        self, app, comparisons, presented
    ):
        tokens = ("first-token", "second-token", "third-token")
        with app.test_request_context(f"/webhooks?token={presented}"):
            from flask import request

            auth.token_ok(request, tokens)
        assert comparisons == [(32, 32)] * len(tokens)


class TestTokenConfiguration:
    def test_tokens_are_read_as_a_comma_separated_list(self):
        settings = Settings.from_env({"WEBHOOK_TOKEN": f"{OLD}, {NEW}"})
        assert settings.webhook_tokens == (OLD, NEW)
        assert settings.masked()["webhook_tokens"] == ["***", "***"]

    def test_a_token_that_a_url_would_mangle_is_refused_without_being_echoed(self):
        with pytest.raises(ConfigError) as error:
            Settings.from_env({"WEBHOOK_TOKEN": f"{OLD},bad&token=x"})
        assert "token 2" in str(error.value)
        assert "bad&token" not in str(error.value)


class TestConfigurationAllowlist:
    @pytest.fixture
    def client(self, env, queue):
        return make_client(env, queue, WEBHOOK_CONFIGURATION_IDS=f"{CONFIG_ID}, cfg-other")

    def payload(self, configuration_id=CONFIG_ID, *, drop=False):
        payload = envelope(event_id="evt-allowlist")
        if drop:
            del payload["webhookConfigurationId"]
        else:
            payload["webhookConfigurationId"] = configuration_id
        return body(payload)

    def test_a_listed_configuration_is_queued(self, client, queue):
        raw = self.payload()
        assert client.post("/webhooks", data=raw, headers=JSON).status_code == 202
        assert queue.bodies == [raw]

    @pytest.mark.parametrize(
        ("configuration_id", "drop"),
        [("cfg-stranger", False), (None, False), (42, False), (f"{CONFIG_ID} ", False), (0, True)],
        ids=["unlisted", "null", "not-a-string", "near-miss", "absent"],
    )
    def test_anything_else_gets_403_json_and_nothing_is_enqueued(
        self, client, queue, configuration_id, drop
    ):
        response = client.post(
            "/webhooks", data=self.payload(configuration_id, drop=drop), headers=JSON
        )
        assert response.status_code == 403
        assert response.json == {
            "error": "configuration_not_allowed",
            "message": response.json["message"],
        }
        assert "WEBHOOK_CONFIGURATION_IDS" in response.json["message"]
        assert "cfg-stranger" not in response.json["message"]
        assert queue.bodies == []
        assert rejected(client, "configuration_not_allowed") == 1

    def test_unset_allowlist_accepts_any_configuration(self, env, queue):
        client = make_client(env, queue)
        assert client.post("/webhooks", data=self.payload("any"), headers=JSON).status_code == 202

    def test_token_is_checked_before_the_configuration(self, env, queue):
        client = make_client(env, queue, WEBHOOK_TOKEN=NEW, WEBHOOK_CONFIGURATION_IDS=CONFIG_ID)
        response = client.post("/webhooks", data=self.payload("cfg-stranger"), headers=JSON)
        assert response.status_code == 401
        assert rejected(client, "unauthorized") == 1
        assert rejected(client, "configuration_not_allowed") is None
