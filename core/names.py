"""Wire names and timeouts shared by ingest, the workers and the CLI, with no side effects.

Task names, queue names, message header names, the in-flight registry's Redis keys and the
publish timeouts: what a published message and its bookkeeping are called on the broker. Each
process imports them from here, so none has to build a Celery app to learn a name.
"""

from __future__ import annotations

import zlib

PROCESS_WEBHOOK = "workers.process_webhook"
RUN_HOOK = "workers.run_hook"
EVENTS_QUEUE = "engagehook"
# Redis mode: ingest keeps each published body here until a worker recorded its outcome, so a
# message lost between kombu's BRPOP and its unacked bookkeeping is found and republished
# (see workers/inflight.py). The header names the event inside the queued message.
INFLIGHT_BODIES = "engagehook.inflight"
INFLIGHT_SINCE = "engagehook.inflight.since"
EVENT_ID_HEADER = "engagehook_event_id"


def pack_inflight_body(body: str) -> bytes:
    """The in-flight copy of a body, zlib-compressed: it only waits in Redis memory for recovery.

    A webhook's JSON shrinks to about a fifth, so a queued event costs Redis its message and a
    small copy rather than two full bodies (see docs/operations.md, sizing Redis).
    """
    return zlib.compress(body.encode("utf-8"), 1)


def unpack_inflight_body(raw: bytes) -> str:
    """The body back from its in-flight copy (also a plain JSON copy an older ingest wrote)."""
    if raw[:1] in (b"{", b"["):
        return raw.decode("utf-8")
    return zlib.decompress(raw).decode("utf-8")


HOOKS_QUEUE = "engagehook.hooks"
# The worker roles and the queues each consumes: events and user hooks never share a pool, so
# a hook that hangs or crashes cannot hold up the store (`engagehook worker --events-only` /
# `--hooks-only`; plain `engagehook worker` and `serve` run one of each).
WORKER_ROLES: dict[str, tuple[str, ...]] = {"events": (EVENTS_QUEUE,), "hooks": (HOOKS_QUEUE,)}
# Bounds every publish: the sender gives up after 3 s, so ingest must know well before that
# whether the broker took the message (and spool it otherwise).
PUBLISH_TIMEOUT_SECONDS = 1.0
# Ingest's own publishes (ingest/publisher.py): each socket operation at most this long, with
# one immediate retry. Measured against a private redis-server: a refused connection fails in
# about 5 ms, a SIGSTOPped (hung) one in about 1 s; with Celery's default retry policy a hung
# broker cost 4 s, longer than the sender waits. The spool takes what the broker did not.
INGEST_PUBLISH_TIMEOUT_SECONDS = 0.5
# The embedded (SQLite) broker's transport option for how long an operation waits for the
# file's write lock (workers/embedded_broker.py); ingest passes a short one (ingest/queue.py).
BUSY_TIMEOUT_OPTION = "busy_timeout"
# The dead-letter reason of a payload whose entity is not Appointment: kept, replayable, and
# counted apart from broken payloads (workers/validation.py writes it, /metrics counts it).
UNSUPPORTED_ENTITY = "unsupported entity"
