"""Liveness, readiness and the OpenAPI document: open to load balancers and scrapers."""

from __future__ import annotations

import os
from collections.abc import Callable

from flask import Blueprint
from flask import current_app
from flask import jsonify

from ingest.queue import get_queue
from ingest.spool import Spool

bp = Blueprint("health", __name__)

# Below this much free disk under the spool, it counts as full (a payload would not fit).
MIN_FREE_DISK_BYTES = 1_048_576
# The store check gives up after about this long: a load balancer waits a few seconds at most.
READINESS_TIMEOUT_SECONDS = 1.0


@bp.get("/healthz")
def healthz():
    """200 while the process can answer at all."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """200 while the broker or the local spool can take a webhook; 503 only when neither can.

    A broker outage is what the spool is for, so it makes this instance "degraded", not
    unready: pulling every ingest instance out of the load balancer then would turn away the
    senders the spool keeps safe. The store is reported but never decides: ingest does not
    write to it.
    """
    queue = get_queue()
    spool = getattr(queue, "spool", None)  # a SpoolingQueue: the broker is its primary
    dependencies: dict[str, dict[str, object]] = {
        "broker": _status_of(getattr(queue, "primary", queue).ping),
        "spool": _spool_status(spool),
        "store": _status_of(_ping_store),
    }
    can_accept = dependencies["broker"]["status"] == "ok" or dependencies["spool"]["status"] == "ok"
    if not can_accept:
        why = "; ".join(
            f"{name}: {dependencies[name].get('error', dependencies[name]['status'])}"
            for name in ("broker", "spool")
        )
        message = f"neither the broker nor the spool can take a webhook ({why})"
        return jsonify(error="not_ready", message=message, status="down", **dependencies), 503
    healthy = all(dependency["status"] == "ok" for dependency in dependencies.values())
    return jsonify(status="ready" if healthy else "degraded", **dependencies)


def _status_of(check: Callable[[], object]) -> dict[str, object]:
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the class says why
        return {"status": "down", "error": exc.__class__.__name__}
    return {"status": "ok"}


def _spool_status(spool: Spool | None) -> dict[str, object]:
    """Whether the spool could take a payload now: a writable directory with room left."""
    if spool is None:
        return {"status": "absent"}
    try:
        spool.directory.mkdir(parents=True, exist_ok=True)
        writable = os.access(spool.directory, os.W_OK | os.X_OK)
        disk = os.statvfs(spool.directory)
        usage = spool.usage()
    except OSError as exc:
        return {"status": "down", "error": exc.__class__.__name__}
    status: dict[str, object] = {"bytes": usage, "max_bytes": spool.max_bytes}
    if not writable:
        return {"status": "down", "error": "not writable", **status}
    if usage >= spool.max_bytes or disk.f_bavail * disk.f_frsize < MIN_FREE_DISK_BYTES:
        return {"status": "full", **status}
    return {"status": "ok", **status}


def _ping_store() -> None:
    store = current_app.extensions.get("engagehook.readiness_store")
    if store is None:
        from handlers.reads import open_probe_store

        url = current_app.config["ENGAGEHOOK_SETTINGS"].store_url
        store = open_probe_store(url, READINESS_TIMEOUT_SECONDS)
        current_app.extensions["engagehook.readiness_store"] = store
    store.ping()


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document, generated from the same Marshmallow schemas the workers enforce."""
    document = current_app.extensions.get("engagehook.openapi")
    if document is None:
        from workers.openapi import build_openapi  # loaded on first use: ingest stays thin

        document = current_app.extensions["engagehook.openapi"] = build_openapi()
    return jsonify(document)
