"""One targeted fix to kombu's Redis transport, so a Redis restart cannot end the worker.

When the broker connection drops, Celery closes it (kombu sets the transport's ``client`` to
None) and reconnects on a new one. A late ack or reject that arrives afterwards for a message
of the old connection (a task that finished just then) goes to the old channel, which builds a
new redis-py pool from ``self.connection.client.hostname``: AttributeError on None. Celery
catches only the transport's connection errors around acks, so the AttributeError escapes the
event loop and the worker process exits; processing stops until something restarts it.

Raised as a redis ConnectionError instead, the ack fails the way Celery expects ("Couldn't
ack", logged), the message stays in Redis's unacked set, and kombu delivers it again after
VISIBILITY_TIMEOUT; the store takes each event id once. kombu 5.7.0 has the defect;
tests/workers/test_broker_patches.py fails once a kombu release no longer needs this.
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

_PATCHED = "_engagehook_closed_connection_guard"


def install() -> None:
    """Make the Redis channel of a closed connection raise a connection error (idempotent)."""
    original = kombu_redis.Channel._connparams
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    def _connparams(self: Any, *args: Any, **kwargs: Any) -> dict:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection of this channel was closed")
        return original(self, *args, **kwargs)

    setattr(_connparams, _PATCHED, True)
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]  # the patch
