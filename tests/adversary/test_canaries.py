"""Canary names sent through every path of real processes never appear in a log (semantics 8).

Each path gets its own canary in the customer's name: processed (its hook fails), invalid,
unstorable (a NUL in the name), a handler bug, transient failures until the dead letter.
The handler bug and the transient failures are provoked by a test plugin that the workers
load as a hook module: it replaces two handlers and shortens the retry waits, so that the
exception texts, which quote the canary, go through the real failure paths.
"""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest

from tests.adversary.deployments import embedded
from tests.adversary.deployments import redis_postgres
from tests.builders import envelope
from tests.processes import wait_until

pytestmark = [pytest.mark.slow]

CANARIES = {
    "processed": "Zwanette-Processed-Vandersmissen",
    "invalid": "Zwanette-Invalid-Vandersmissen",
    "unstorable": "Zwanette-Unstorable-Vandersmissen",
    "handler": "Zwanette-Handler-Vandersmissen",
    "transient": "Zwanette-Transient-Vandersmissen",
}

PLUGIN = """
    from handlers import HANDLERS
    from handlers.errors import TransientError
    from handlers.hooks import on
    from workers import tasks


    def _name(event):
        return event.appointment["participants"][1]["customer"]["firstName"]


    def _broken(event, tx):
        raise ValueError(f"cannot handle {_name(event)}")


    def _locked(event, tx):
        raise TransientError(f"lock held while storing {_name(event)}")


    @on("CREATE")
    def crm_refuses(event):
        raise ConnectionError(f"CRM refused {_name(event)}")


    HANDLERS["REOPEN"] = _broken
    HANDLERS["REASSIGN"] = _locked
    tasks.retry_countdown = lambda retries: 0.05
"""


def canary_payload(path: str, event_type: str = "CREATE", **overrides) -> dict:
    payload = envelope(
        event_type,
        event_id=f"evt-{path}-{uuid.uuid4().hex[:8]}",
        appointment_id=f"appt-{path}-{uuid.uuid4().hex[:8]}",
        **overrides,
    )
    customer = payload["data"]["appointment"]["participants"][1]["customer"]
    customer["firstName"] = CANARIES[path]
    customer["lastName"] = CANARIES[path] + "-Last"
    return payload


def hostile_set() -> list[tuple[dict, str]]:
    """(payload, expected final state) for every path."""
    unstorable = canary_payload("unstorable")
    customer = unstorable["data"]["appointment"]["participants"][1]["customer"]
    customer["firstName"] = CANARIES["unstorable"] + "\x00"
    return [
        (canary_payload("processed"), "processed"),
        (canary_payload("invalid", status=12345), "dead_lettered"),
        (unstorable, "dead_lettered"),
        (canary_payload("handler", "REOPEN"), "dead_lettered"),
        (canary_payload("transient", "REASSIGN"), "dead_lettered"),
    ]


@pytest.fixture
def plugin_env(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "ehtest_canary_plugin.py").write_text(textwrap.dedent(PLUGIN))
    return {
        "PYTHONPATH": str(site),
        "ENGAGEHOOK_HOOK_MODULES": "ehtest_canary_plugin",
        "ENGAGEHOOK_HOOK_MAX_RETRIES": "1",
        "ENGAGEHOOK_HOOK_RETRY_BACKOFF": "0.05",
    }


def run_canaries(deployment) -> None:
    cases = hostile_set()
    for payload, _ in cases:
        response = deployment.post(json.dumps(payload).encode())
        assert response.status_code == 202, response.text
    states = deployment.wait_final([p["id"] for p, _ in cases], timeout=180)
    assert states == {p["id"]: expected for p, expected in cases}
    processed = cases[0][0]["id"]
    wait_until(
        lambda: (
            [h["state"] for h in deployment.store.get_event(processed)["hooks"]]
            == ["dead_lettered"]
        ),
        timeout=120,
        interval=0.3,
    )


def assert_no_canary(text: str) -> None:
    assert text.strip(), "the processes logged nothing: the test would prove nothing"
    leaked = {path for path, canary in CANARIES.items() if canary in text}
    assert leaked == set(), f"canaries of {sorted(leaked)} found in the logs"


def test_embedded_serve_logs_no_canary(tmp_path, plugin_env):
    with embedded(tmp_path, plugin_env) as deployment:
        run_canaries(deployment)
    assert_no_canary(deployment.log_text())


@pytest.mark.real
def test_web_and_worker_on_postgres_and_redis_log_no_canary(tmp_path, plugin_env, postgres_url):
    from tests.conftest import require_redis

    require_redis()
    with redis_postgres(tmp_path, postgres_url, plugin_env) as deployment:
        run_canaries(deployment)
    assert_no_canary(deployment.log_text())
