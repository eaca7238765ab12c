"""A payload of another entity is acknowledged, kept and never applied; metrics tell it apart
from a broken payload (contract, semantics 11)."""

from __future__ import annotations

import json

import pytest

from core.config import Settings
from handlers.hooks import HookRegistry
from handlers.store import Store
from ingest.app import create_app
from tests.builders import body
from tests.builders import envelope
from tests.test_metrics import scrape
from tests.test_metrics import value
from workers import metrics as worker_metrics
from workers.processing import process
from workers.validation import InvalidPayload
from workers.validation import parse_event

JSON = {"Content-Type": "application/json"}


def callback_request_event(event_id: str = "evt-callback-1") -> dict:
    """What Pexip posts for a callback request: another entity, with a data of its own."""
    return {
        "id": event_id,
        "correlationId": "corr-callback-1",
        "webhookConfigurationId": "cfg-1",
        "version": "1",
        "entity": "Callback Request",
        "data": {"eventType": "CREATE", "callbackRequest": {"id": "cb-1", "phone": "+32 470"}},
    }


def test_another_entity_is_refused_as_unsupported_not_invalid():
    with pytest.raises(InvalidPayload) as error:
        parse_event(json.dumps(callback_request_event()))
    assert error.value.reason == "unsupported entity"
    assert error.value.errors == [
        {
            "path": "entity",
            "message": "unsupported entity 'Callback Request': expected 'Appointment'",
        }
    ]


@pytest.mark.parametrize("entity", [None, 42, ""])
def test_a_missing_or_malformed_entity_stays_invalid(entity):
    raw = envelope()
    raw["entity"] = entity
    with pytest.raises(InvalidPayload) as error:
        parse_event(json.dumps(raw))
    assert error.value.reason == "invalid"


def test_ingest_acknowledges_it(client, queue):
    raw = body(callback_request_event())
    assert client.post("/webhooks", data=raw, headers=JSON).status_code == 202
    assert queue.bodies == [raw]


def test_it_is_dead_lettered_with_its_body_never_applied_and_replayable(sqlite_store):
    raw = json.dumps(callback_request_event())
    outcome = process(raw, sqlite_store, HookRegistry())
    assert outcome.label == "dead_lettered:unsupported-entity"
    record = sqlite_store.get_event("evt-callback-1")
    assert record["state"] == "dead_lettered"
    assert record["reason"] == "unsupported entity"
    assert sqlite_store.requeue("evt-callback-1") == raw
    assert sqlite_store.snapshot("cb-1") is None


def test_worker_metrics_give_it_its_own_reason():
    assert worker_metrics.event_labels("dead_lettered:unsupported-entity", None) == (
        "unknown",
        "dead_lettered",
        "unsupported-entity",
    )


def test_the_dead_letter_gauge_counts_it_apart_from_broken_payloads(env, queue):
    store = Store(Settings.from_env(env).store_url)
    store.migrate()
    process(json.dumps(callback_request_event()), store, HookRegistry())
    process(json.dumps({"id": "evt-broken", "entity": "Appointment"}), store, HookRegistry())
    text = scrape(create_app(env, queue=queue).test_client())
    assert value(text, "engagehook_dead_letters", kind="event") == 1
    assert value(text, "engagehook_dead_letters", kind="unsupported_entity") == 1
    store.engine.dispose()
