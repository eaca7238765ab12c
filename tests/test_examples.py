"""The README's hook example (examples/crm_cancellations.py) run through the real run_hook task."""

from __future__ import annotations

import importlib
import json
import sys

import httpx
import pytest

import handlers.hooks
from core.config import Settings
from handlers import HANDLERS
from handlers.hooks import HookRegistry
from tests.handlers.builders import from_payload
from tests.handlers.builders import payload
from workers import tasks
from workers.runtime import WorkerRuntime
from workers.runtime import set_runtime

HOOK = "examples.crm_cancellations:push_cancellation"


class FlakyCrm:
    """A CRM that answers the given statuses in turn, keeping the first request per key."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []
        self.kept: dict[str, dict] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 201
        if status < 300:
            self.kept.setdefault(request.headers["Idempotency-Key"], json.loads(request.content))
        return httpx.Response(status)


@pytest.fixture
def example(monkeypatch, sqlite_store, tmp_path):
    """The example module imported into a registry of its own, with a worker runtime."""
    registry = HookRegistry()
    monkeypatch.setattr(handlers.hooks, "on", registry.on)
    sys.modules.pop("examples.crm_cancellations", None)
    module = importlib.import_module("examples.crm_cancellations")
    settings = Settings(data_dir=tmp_path, hook_max_retries=3, hook_retry_backoff=0.0005)
    set_runtime(WorkerRuntime(settings, sqlite_store, registry))
    yield module, registry, sqlite_store
    set_runtime(None)
    sys.modules.pop("examples.crm_cancellations", None)


def cancel(store, crm, monkeypatch, module):
    monkeypatch.setattr(
        module,
        "crm_client",
        lambda: httpx.Client(base_url="https://crm.example", transport=httpx.MockTransport(crm)),
    )
    created = payload("CREATE", event_id="e-create")
    store.apply(from_payload(created), json.dumps(created), HANDLERS["CREATE"])
    body = payload("CANCEL", event_id="e-cancel", minutes=5)
    (run_id,) = store.apply(
        from_payload(body), json.dumps(body), HANDLERS["CANCEL"], [HOOK]
    ).hook_run_ids
    return tasks.run_hook.apply(args=[run_id])


def test_example_registers_for_cancel_only(example):
    _module, registry, _store = example
    assert registry.names_for("CANCEL") == [HOOK]
    assert registry.names_for("CREATE") == []


def test_cancellation_is_pushed_with_the_event_id_as_idempotency_key(example, monkeypatch):
    module, _registry, store = example
    crm = FlakyCrm(201)
    assert cancel(store, crm, monkeypatch, module).get() == f"hook:{HOOK}"
    (request,) = crm.requests
    assert request.url.path == "/appointments/appt-1/cancellation"
    assert request.headers["Idempotency-Key"] == "e-cancel"
    assert json.loads(request.content)["previousStatus"] == "ACCEPTED"


def test_crm_outage_is_retried_and_the_crm_acts_once(example, monkeypatch):
    module, _registry, store = example
    crm = FlakyCrm(503, 503, 201)
    assert cancel(store, crm, monkeypatch, module).get() == f"hook:{HOOK}"
    assert len(crm.requests) == 3
    assert list(crm.kept) == ["e-cancel"]
    (run,) = store.get_event("e-cancel")["hooks"]
    assert (run["state"], run["attempts"]) == ("done", 3)


def test_crm_refusal_is_dead_lettered_at_once(example, monkeypatch):
    module, _registry, store = example
    crm = FlakyCrm(404)
    assert cancel(store, crm, monkeypatch, module).state == "FAILURE"
    (run,) = store.get_event("e-cancel")["hooks"]
    assert (run["state"], run["attempts"]) == ("dead_lettered", 1)
    assert run["lastError"] == "PermanentError: CRM refused the cancellation: HTTP 404"
