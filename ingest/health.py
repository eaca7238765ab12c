"""Liveness, readiness and the OpenAPI document: open to load balancers and scrapers."""

from __future__ import annotations

from flask import Blueprint
from flask import current_app
from flask import jsonify
from sqlalchemy import create_engine
from sqlalchemy import text

from ingest.queue import get_queue

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 while the process can answer at all."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """200 when both the broker and the store answer; else 503 naming what is down."""
    down: dict[str, str] = {}
    try:
        get_queue().ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        down["broker"] = exc.__class__.__name__
    try:
        with _store_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        down["store"] = exc.__class__.__name__
    if down:
        message = f"down: {', '.join(sorted(down))}"
        return jsonify(error="not_ready", message=message, down=down), 503
    return jsonify(status="ready")


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document, generated from the same Marshmallow schemas the workers enforce."""
    document = current_app.extensions.get("engagehook.openapi")
    if document is None:
        from workers.openapi import build_openapi  # loaded on first use: ingest stays thin

        document = current_app.extensions["engagehook.openapi"] = build_openapi()
    return jsonify(document)


def _store_engine():
    engine = current_app.extensions.get("engagehook.readiness_engine")
    if engine is None:
        url = current_app.config["ENGAGEHOOK_SETTINGS"].store_url
        connect_args = {"connect_timeout": 1} if url.startswith("postgres") else {}
        engine = create_engine(
            url, pool_pre_ping=True, pool_size=1, max_overflow=0, connect_args=connect_args
        )
        current_app.extensions["engagehook.readiness_engine"] = engine
    return engine
