"""Admin routes behind ADMIN_TOKEN (without it they do not exist: 404): read and replay.

The listings and replays are the functions of ``handlers.reads`` (the store's read API),
which the console and the CLI call too; they are imported on first use so that ingest stays
thin for the webhook path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypedDict

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
    found = get_store().get_appointment(appointment_id)
    if found is None:
        raise IngestError(404, "not_found", f"no appointment {appointment_id!r} has been stored")
    return jsonify(found)


@bp.get("/events/<path:event_id>")
def event(event_id: str):
    """The processing record of one event."""
    found = get_store().get_event(event_id)
    if found is None:
        raise IngestError(404, "not_found", f"no event {event_id!r} has been received by a worker")
    return jsonify(found)


@bp.get("/events")
def events():
    """A page of event records, newest first, without raw bodies."""
    from handlers.reads import list_events
    from handlers.reads import parse_event_filter

    with _bad_query_is_400():
        filters = parse_event_filter(request.args)
        page = list_events(get_store(), filters, **_paging())
    return jsonify(page.as_dict())


@bp.get("/dead-letters")
def dead_letters():
    """A page of dead letters, newest first, filtered by reason, eventType and time."""
    from handlers.reads import list_dead_letters
    from handlers.reads import parse_event_filter

    with _bad_query_is_400():
        filters = parse_event_filter(request.args, dead_letters=True)
        page = list_dead_letters(get_store(), filters, **_paging())
    return jsonify(page.as_dict())


@bp.post("/dead-letters/replay")
def replay_dead_letters():
    """Replay the listed ids, or every dead letter matching the filters; ``dry_run`` only lists.

    200 when every id went to the broker, 502 when the broker did not take some: those stay
    dead letters and are named in ``failed``.
    """
    from handlers.reads import InvalidQuery
    from handlers.reads import matching_dead_letter_ids
    from handlers.reads import parse_event_filter
    from handlers.reads import replay_dead_letters

    document = request.get_json(silent=True)
    if not isinstance(document, dict):
        raise IngestError(400, "invalid_body", 'send a JSON object: {"ids": [...]} or filters')
    dry_run = document.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise IngestError(400, "invalid_query", "dry_run: send true or false")
    ids = document.get("ids")
    with _bad_query_is_400():
        if ids is not None:
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
                raise InvalidQuery("ids", "send a non-empty list of event id strings")
        else:
            filters = parse_event_filter(document, dead_letters=True)
            ids = matching_dead_letter_ids(get_store(), filters)
    report = replay_dead_letters(get_store(), replay_queue().enqueue, ids, dry_run=dry_run)
    return jsonify(report.as_dict()), 200 if report.ok else 502


@bp.get("/hook-runs")
def hook_runs():
    """A page of hook runs, newest first (``state=dead_lettered`` for the failed ones)."""
    from handlers.reads import list_hook_runs
    from handlers.reads import parse_hook_state

    with _bad_query_is_400():
        state = parse_hook_state(request.args.get("state"))
        page = list_hook_runs(get_store(), state=state, **_paging())
    return jsonify(page.as_dict())


@bp.post("/hook-runs/<int:run_id>/replay")
def replay_hook_run(run_id: int):
    """Run one dead-lettered hook run again; 404 when there is no such dead-lettered run."""
    from handlers.reads import replay_hook_runs

    report = replay_hook_runs(get_store(), replay_queue().run_hook, [run_id])
    if report.failed and report.failed[0]["error"].startswith("not a dead"):
        raise IngestError(404, "not_found", f"hook run {run_id} is not dead-lettered")
    return jsonify(report.as_dict()), 200 if report.ok else 502


@contextmanager
def _bad_query_is_400() -> Iterator[None]:
    from handlers.reads import InvalidQuery

    try:
        yield
    except InvalidQuery as exc:
        raise IngestError(400, "invalid_query", str(exc)) from None


class _Paging(TypedDict):
    limit: int
    cursor: str | None


def _paging() -> _Paging:
    from handlers.reads import parse_limit

    return {"limit": parse_limit(request.args.get("limit")), "cursor": request.args.get("cursor")}


def replay_queue():
    """Where replays are published: the broker the webhooks go to, without the spool."""
    from ingest.queue import broker_queue
    from ingest.queue import get_queue

    return broker_queue(get_queue())


def get_store():
    """The store of this app, opened on first use (the console reads through it too)."""
    store = current_app.extensions.get("engagehook.store")
    if store is None:
        from handlers.reads import open_store  # loaded on first admin call: ingest stays thin

        store = open_store(current_app.config["ENGAGEHOOK_SETTINGS"].store_url)
        current_app.extensions["engagehook.store"] = store
    return store
