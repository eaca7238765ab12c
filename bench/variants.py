"""Diagnostic variants of the ingest app, to price one feature at a time in the same run.

``create_without_inflight()`` is ``ingest.app:create_app()`` whose Redis publisher skips the
in-flight registry (the second copy of each body, written in the same MULTI). It is not a
configuration anyone should run: it exists so the benchmark can show what that copy costs.
"""

from __future__ import annotations

from flask import Flask

from ingest.app import create_app
from ingest.queue import EXTENSION_KEY


def create_without_inflight() -> Flask:
    """The shipped app, publishing without registering bodies in flight."""
    app = create_app()
    queue = app.extensions[EXTENSION_KEY]
    celery_queue = getattr(queue, "primary", queue)  # SpoolingQueue wraps CeleryQueue
    build = celery_queue._redis_publisher

    def publisher_without_registry():
        publisher = build()
        if publisher is not None and not getattr(publisher, "bench_without_inflight", False):
            publish = publisher.publish
            publisher.publish = lambda body, argsrepr, event_id=None: publish(body, argsrepr)
            publisher.bench_without_inflight = True
        return publisher

    celery_queue._redis_publisher = publisher_without_registry
    return app
