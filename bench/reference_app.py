"""Reference endpoints run under the same gunicorn settings as ``engagehook web``.

- ``create_bare()``: parse the body and answer 202; nothing is stored (the ceiling).
- ``create_lpush()``: the same plus one raw Redis LPUSH of the body (the cheapest durable write).
- ``create_naive()``: the same plus ``celery.send_task(name, args=[body])`` on a default
  Celery app, which is what most webhook receivers write.

Each parses with orjson, as ingest does, so the rows differ only in what happens to the body.
"""

from __future__ import annotations

import os

import orjson
from flask import Flask
from flask import jsonify
from flask import request

TASK_NAME = "workers.process_webhook"
LPUSH_KEY = "bench.raw"


def _parsed_id() -> tuple[bytes, str]:
    """The raw body and its event id, checked as ingest checks them."""
    body = request.get_data(cache=False)
    envelope = orjson.loads(body)
    if not isinstance(envelope, dict) or not isinstance(envelope.get("id"), str):
        raise ValueError("not an envelope")
    return body, envelope["id"]


def _app(enqueue) -> Flask:
    app = Flask("bench.reference")

    @app.post("/webhooks")
    def receive():
        body, event_id = _parsed_id()
        enqueue(body)
        return jsonify(status="queued", id=event_id), 202

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    return app


def create_bare() -> Flask:
    """Parse and answer 202 without storing anything: no endpoint can be faster."""
    return _app(lambda body: None)


def create_lpush() -> Flask:
    """Parse, LPUSH the raw body to Redis, answer 202."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _app(lambda body: client.lpush(LPUSH_KEY, body))


def create_naive() -> Flask:
    """Parse, ``send_task`` the body on a Celery app with default settings, answer 202."""
    from celery import Celery

    celery = Celery("naive", broker=os.environ["REDIS_URL"])
    return _app(lambda body: celery.send_task(TASK_NAME, args=[body.decode("utf-8")]))
