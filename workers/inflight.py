"""The in-flight registry: webhooks the broker took but no worker has recorded yet (Redis mode).

kombu's Redis transport takes a message off the queue (BRPOP) and only then records it as
unacknowledged: a worker main process SIGKILLed between the two loses the message, although
the sender was already told 202. So ingest writes, in the same MULTI as the LPUSH, the raw
body, zlib-compressed, under the event id (``INFLIGHT_BODIES``) with its publish time
(``INFLIGHT_SINCE``);
the task forgets the id once the store holds an outcome; and the sweeper republishes ids
that are older than VISIBILITY_TIMEOUT, have left the queue, and still have no outcome.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import cast

import orjson
import redis

from core.names import EVENT_ID_HEADER
from core.names import EVENTS_QUEUE
from core.names import INFLIGHT_BODIES
from core.names import INFLIGHT_SINCE
from core.names import unpack_inflight_body

if TYPE_CHECKING:  # ingest reads oldest_since for /metrics and must not load the store
    from handlers.store import Store

logger = logging.getLogger(__name__)

BATCH = 500
# How far past untracked messages the sweeper looks for the oldest tracked one, per pass.
QUEUE_SCAN = 1000
SCAN_BATCH = 100


def forget(client: redis.Redis, event_id: str) -> None:
    """The store holds this event's outcome: stop watching it."""
    # No MULTI: a half-done forget only leaves work for the sweeper, which checks the store.
    pipe = client.pipeline(transaction=False)
    pipe.hdel(INFLIGHT_BODIES, event_id)
    pipe.zrem(INFLIGHT_SINCE, event_id)
    pipe.execute()


def oldest_since(client: redis.Redis) -> float | None:
    """Publish time (epoch seconds) of the oldest webhook no worker has recorded yet.

    None when nothing is in flight. A webhook the sweeper republished counts from then.
    """
    oldest = client.zrange(INFLIGHT_SINCE, 0, 0, withscores=True)
    return float(oldest[0][1]) if oldest else None


def postpone(client: redis.Redis, event_id: str, due: float) -> None:
    """Count the event as published at ``due`` (its retry's time), if it is watched at all."""
    client.zadd(INFLIGHT_SINCE, {event_id: due}, xx=True)


def _oldest_queued_since(client: redis.Redis) -> float | None:
    """Publish time of the oldest tracked message still in the queue; inf when there is none.

    Messages without a tracked id (a replay, a hook-less publish, anything odd) say nothing
    about the registry, so they are stepped over instead of stopping recovery: walking from
    the tail, the first tracked message bounds what has left the queue. None only when the
    first ``QUEUE_SCAN`` messages are all untracked and more follow (the next pass looks again).
    """
    scanned = 0
    while scanned < QUEUE_SCAN:
        # kombu LPUSHes and BRPOPs: the tail is the oldest. Negative indexes walk from it.
        batch = client.lrange(EVENTS_QUEUE, -(scanned + SCAN_BATCH), -(scanned + 1))
        if not batch:
            return float("inf")
        for raw in reversed(batch):
            event_id = _tracked_id(raw)
            score = client.zscore(INFLIGHT_SINCE, event_id) if event_id else None
            if score is not None:
                return float(score)
        if len(batch) < SCAN_BATCH:
            return float("inf")
        scanned += SCAN_BATCH
    return None


def _tracked_id(raw: bytes | str) -> str | None:
    """The event id a queued message carries in its header, if it is a usable one."""
    try:
        event_id = orjson.loads(raw)["headers"][EVENT_ID_HEADER]
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
        return None
    return event_id if isinstance(event_id, str) and event_id else None


def recover(
    client: redis.Redis,
    store: Store,
    republish: Callable[[str, str], None],
    older_than: float,
    now: float | None = None,
) -> dict[str, int]:
    """Republish lost webhooks and drop the ids the store already settled.

    An id is lost when it was published more than ``older_than`` seconds ago, before the
    oldest message still queued (so it left the queue), and the store has no outcome for it.
    A message that is merely slow is redelivered by the broker's own visibility timeout at
    about the same time; either way the store applies the event once.
    """
    now = time.time() if now is None else now
    oldest_queued = _oldest_queued_since(client)
    if oldest_queued is None:
        return {"settled": 0, "republished": 0}
    horizon = min(now - older_than, oldest_queued)
    ids = [
        i.decode() if isinstance(i, bytes) else str(i)
        for i in client.zrangebyscore(INFLIGHT_SINCE, "-inf", f"({horizon}", start=0, num=BATCH)
    ]
    if not ids:
        return {"settled": 0, "republished": 0}
    unfinished = store.unfinished_event_ids(ids)
    settled = [i for i in ids if i not in unfinished]
    if settled:
        # No MULTI: a full Redis (maxmemory, noeviction) refuses a MULTI's deletes, not plain ones.
        pipe = client.pipeline(transaction=False)
        pipe.hdel(INFLIGHT_BODIES, *settled)
        pipe.zrem(INFLIGHT_SINCE, *settled)
        pipe.execute()
    republished = 0
    for event_id in sorted(unfinished):
        body = client.hget(INFLIGHT_BODIES, event_id)
        if body is None:
            client.zrem(INFLIGHT_SINCE, event_id)
            continue
        try:
            # The registry's client returns bytes (no decode_responses): the copy may be zlib.
            text = unpack_inflight_body(cast(bytes, body))
        except (zlib.error, UnicodeDecodeError) as exc:
            # An odd entry must not stop the others; unwatched, it is logged once, not forever.
            client.zrem(INFLIGHT_SINCE, event_id)
            logger.error(
                "in-flight copy of an event is unreadable (%s); left in %s for a human",
                exc.__class__.__name__,
                INFLIGHT_BODIES,
                extra={"event_id": event_id},
            )
            continue
        republish(event_id, text)
        # Watch it again from now: it is back in the queue.
        client.zadd(INFLIGHT_SINCE, {event_id: time.time()}, xx=True)
        republished += 1
    if republished:
        logger.warning("republished %d webhooks lost between broker and worker", republished)
    return {"settled": len(settled), "republished": republished}
