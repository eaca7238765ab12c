"""Issue 14.8: what one queued webhook costs Redis, measured with MEMORY USAGE.

docs/operations.md sizes Redis from this: bytes per queued event = the queued message (about
1.55 × the body, JSON-escaped then base64 inside kombu's envelope, plus about 1 KB of headers)
+ the in-flight copy, now zlib-compressed (about 0.35 × the body) instead of a second full body.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from core.config import Settings
from core.names import EVENTS_QUEUE
from core.names import INFLIGHT_BODIES
from core.names import INFLIGHT_SINCE
from core.names import PROCESS_WEBHOOK
from ingest.publisher import RedisPublisher
from workers.celery_app import create_celery_app

EXAMPLE = Path(__file__).resolve().parents[1] / "payloads" / "CREATE.json"
EVENTS = 500


@pytest.mark.slow
def test_a_queued_event_costs_its_message_and_a_small_in_flight_copy(private_redis):
    publisher = RedisPublisher(
        create_celery_app(Settings.from_env({"REDIS_URL": private_redis.url})),
        private_redis.url,
        PROCESS_WEBHOOK,
        timeout=2,
    )
    example = json.loads(EXAMPLE.read_text())
    size = 0
    for n in range(EVENTS):
        example["id"] = f"size-{n:05d}"
        raw = json.dumps(example)
        size = len(raw.encode())
        publisher.publish(raw, f"(event_id={example['id']!r})", example["id"])
    client = redis.Redis.from_url(private_redis.url)
    usage = {
        key: client.memory_usage(key, samples=0)
        for key in (EVENTS_QUEUE, INFLIGHT_BODIES, INFLIGHT_SINCE)
    }
    publisher.close()
    per_event = {key: value / EVENTS for key, value in usage.items()}
    total = sum(per_event.values())
    print(f"body {size} B; per queued event {per_event} = {total:.0f} B ({total / size:.2f}×)")
    assert per_event[INFLIGHT_BODIES] < 0.5 * size  # no second full body
    assert total < 2.0 * size + 1_500  # was about 2.5 × the body
