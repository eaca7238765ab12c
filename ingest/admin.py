"""Read-only admin routes behind ADMIN_TOKEN; without it they do not exist (404)."""

from __future__ import annotations

from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import request

from ingest.constant_time import same_secret
from ingest.errors import IngestError

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def require_admin_token():
    """Only callers presenting ``Authorization: Bearer <ADMIN_TOKEN>`` get through."""
    token = current_app.config["ENGAGEHOOK_SETTINGS"].admin_token
    if not token:
        raise IngestError(
            404, "not_found", "admin routes are disabled: set ADMIN_TOKEN to enable them"
        )
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    authentic = same_secret(presented.strip(), token)
    if scheme.lower() != "bearer" or not authentic:
        raise IngestError(401, "unauthorized", "send Authorization: Bearer <ADMIN_TOKEN>")


@bp.get("/appointments/<path:appointment_id>")
def appointment(appointment_id: str):
    """The current projected state of one appointment."""
    found = _store().get_appointment(appointment_id)
    if found is None:
        raise IngestError(404, "not_found", f"no appointment {appointment_id!r} has been stored")
    return jsonify(found)


@bp.get("/events/<path:event_id>")
def event(event_id: str):
    """The processing record of one event."""
    found = _store().get_event(event_id)
    if found is None:
        raise IngestError(404, "not_found", f"no event {event_id!r} has been received by a worker")
    return jsonify(found)


def _store():
    store = current_app.extensions.get("engagehook.store")
    if store is None:
        from handlers.store import Store  # loaded on first admin call: ingest stays thin

        store = Store(current_app.config["ENGAGEHOOK_SETTINGS"].store_url)
        current_app.extensions["engagehook.store"] = store
    return store
