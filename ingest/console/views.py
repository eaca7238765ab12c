"""The console's pages: overview, events, one event, one appointment, dead letters, hook runs.

Every listing and replay goes through ``handlers.reads`` (the store's read API), the same
functions as the admin API and the CLI (imported on first use: ingest stays thin).
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from ingest.admin import get_store
from ingest.admin import replay_queue
from ingest.console import auth
from ingest.console import bp

PAGE_SIZE = 50
EVENT_FILTERS = ("state", "event_type", "appointment_id", "since", "until")
DEAD_LETTER_FILTERS = ("reason", "event_type", "since", "until")


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": auth.csrf_token}


# -- login -------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The token form; a right token starts a session and goes where the operator was headed."""
    error = None
    if request.method == "POST":
        if auth.token_matches(request.form.get("token", "")):
            auth.log_in()
            return redirect(_safe_next(request.form.get("next")))
        error = "That is not the ADMIN_TOKEN of this deployment."
    status = 401 if error else 200
    return render_template("console/login.html", error=error, next=request.args.get("next")), status


@bp.post("/logout")
def logout():
    """End the session."""
    auth.log_out()
    return redirect(url_for("console.login"))


def _safe_next(target: str | None) -> str:
    # Only a path inside the console: never an open redirect to another site.
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return url_for("console.overview")


# -- overview ----------------------------------------------------------------------------------


@bp.get("/")
def overview():
    """What needs attention now: recent outcomes, backlog, dead letters, failing hooks."""
    from handlers.reads import count_recent

    counts = count_recent(get_store())
    return render_template(
        "console/overview.html",
        counts=counts,
        backlog=_backlog(),
        states=_event_states(),
    )


def _backlog() -> dict[str, Any]:
    """Queue depth and unacked messages (read as /metrics reads them), the spool, the oldest."""
    from ingest.metrics import EXTENSION_KEY
    from ingest.spool import Spool

    settings = current_app.config["ENGAGEHOOK_SETTINGS"]
    backlog: dict[str, Any] = {"broker_error": None, "queues": {}, "unacked": None}
    try:
        waiting, held = current_app.extensions[EXTENSION_KEY]["state"].queue_depths()
        backlog["queues"], backlog["unacked"] = waiting, held
    except Exception as exc:  # noqa: BLE001 - the page must render while the broker is down
        backlog["broker_error"] = exc.__class__.__name__
    spool = Spool(settings.spool_dir, settings.spool_max_bytes)
    pending = spool.pending()
    backlog["spool_depth"] = len(pending)
    backlog["spool_bytes"] = spool.usage()
    backlog["spool_limit"] = settings.spool_max_bytes
    oldest_spooled = _mtime(pending[0]) if pending else None
    backlog["oldest_spooled"] = time.time() - oldest_spooled if oldest_spooled else None
    return backlog


def _mtime(path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


# -- events ------------------------------------------------------------------------------------


@bp.get("/events")
def events():
    """Event records, newest first, filtered and paged; ``jump`` opens one id directly."""
    from handlers.reads import list_events
    from handlers.reads import parse_event_filter

    jump = request.args.get("jump", "").strip()
    if jump:
        return redirect(url_for("console.event", event_id=jump))
    params = _params(EVENT_FILTERS)
    return _listing(
        "console/events.html",
        params,
        lambda: list_events(
            get_store(),
            parse_event_filter(params),
            limit=PAGE_SIZE,
            cursor=request.args.get("cursor"),
        ),
    )


@bp.get("/events/<path:event_id>")
def event(event_id: str):
    """One event: its record, errors, hook runs and the raw body (personal data: only here)."""
    found = get_store().get_event(event_id)
    if found is None:
        return render_template("console/missing.html", kind="event", id=event_id), 404
    return render_template("console/event.html", event=found, body=_pretty(found.get("rawBody")))


def _pretty(raw: str | None) -> str:
    if raw is None:
        return ""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw  # an invalid payload is shown exactly as it arrived


# -- appointments ------------------------------------------------------------------------------


@bp.get("/appointments/<path:appointment_id>")
def appointment(appointment_id: str):
    """One appointment's current state and its history, newest change first."""
    found = get_store().get_appointment(appointment_id)
    if found is None:
        return render_template("console/missing.html", kind="appointment", id=appointment_id), 404
    return render_template(
        "console/appointment.html",
        appointment=found,
        timeline=list(reversed(found["history"])),
    )


@bp.get("/appointments")
def find_appointment():
    """The "open an appointment" box of the navigation."""
    wanted = request.args.get("id", "").strip()
    if not wanted:
        return redirect(url_for("console.events"))
    return redirect(url_for("console.appointment", appointment_id=wanted))


# -- dead letters ------------------------------------------------------------------------------


@bp.get("/dead-letters")
def dead_letters():
    """Dead letters matching the filters, with replay of one, the selected or all matching."""
    from handlers.reads import list_dead_letters
    from handlers.reads import parse_event_filter

    params = _params(DEAD_LETTER_FILTERS)
    return _listing(
        "console/dead_letters.html",
        params,
        lambda: list_dead_letters(
            get_store(),
            parse_event_filter(params, dead_letters=True),
            limit=PAGE_SIZE,
            cursor=request.args.get("cursor"),
        ),
    )


@bp.post("/dead-letters/replay")
def replay_dead_letters():
    """Replay the ids sent (one, or the selected) or, with ``scope=matching``, all matching.

    ``scope=matching_dry_run`` is the dry run of all matching: its own button value, so that
    a browser without JavaScript can never turn a dry run into a replay.

    A dry run renders what would be replayed, with a button to replay exactly those.
    """
    from handlers.reads import InvalidQuery
    from handlers.reads import matching_dead_letter_ids
    from handlers.reads import parse_event_filter
    from handlers.reads import replay_dead_letters

    form = request.form
    params = {name: form.get(name, "") for name in DEAD_LETTER_FILTERS if form.get(name)}
    scope = form.get("scope", "")
    dry_run = form.get("dry_run") == "1" or scope == "matching_dry_run"
    store = get_store()
    if scope in ("matching", "matching_dry_run"):
        try:
            ids = matching_dead_letter_ids(store, parse_event_filter(params, dead_letters=True))
        except InvalidQuery as exc:
            flash(str(exc), "error")
            return redirect(_dead_letters_url(params))
    else:
        ids = form.getlist("ids")
    if not ids:
        flash("Nothing to replay: select dead letters first, or replay all matching.", "info")
        return redirect(_dead_letters_url(params))
    report = replay_dead_letters(store, replay_queue().enqueue, ids, dry_run=dry_run)
    if dry_run:
        return render_template("console/replay_preview.html", report=report, params=params)
    _flash_report(report, "replayed")
    return redirect(_dead_letters_url(params))


def _dead_letters_url(params: dict[str, str]) -> str:
    """The dead-letter listing with the filters the operator had set."""
    values: dict[str, Any] = dict(params)  # query arguments, not url_for's own options
    return url_for("console.dead_letters", **values)


# -- hook runs ---------------------------------------------------------------------------------


@bp.get("/hook-runs")
def hook_runs():
    """Hook runs, newest first, by state (the dead-lettered ones to start with)."""
    from handlers.reads import list_hook_runs
    from handlers.reads import parse_hook_state

    params = _params(("state",))
    return _listing(
        "console/hook_runs.html",
        params,
        lambda: list_hook_runs(
            get_store(),
            state=parse_hook_state(params.get("state")),
            limit=PAGE_SIZE,
            cursor=request.args.get("cursor"),
        ),
    )


@bp.post("/hook-runs/<int:run_id>/replay")
def replay_hook_run(run_id: int):
    """Run one dead-lettered hook run again."""
    from handlers.reads import replay_hook_runs

    report = replay_hook_runs(get_store(), replay_queue().run_hook, [run_id])
    _flash_report(report, "re-run")
    return redirect(request.form.get("back") or url_for("console.hook_runs"))


# -- helpers -----------------------------------------------------------------------------------


def _params(names: tuple[str, ...]) -> dict[str, str]:
    return {name: request.args[name] for name in names if request.args.get(name, "").strip()}


def _listing(template: str, params: dict[str, str], read):
    """Render a listing; a bad filter is shown on the page (400), never a broken page."""
    from handlers.reads import InvalidQuery

    try:
        page = read()
    except InvalidQuery as exc:
        return render_template(
            template, page=None, params=params, error=str(exc), states=_event_states()
        ), 400
    return render_template(template, page=page, params=params, error=None, states=_event_states())


def _event_states() -> tuple[str, ...]:
    from handlers.reads import EVENT_STATES

    return EVENT_STATES


def _flash_report(report, verb: str) -> None:
    if report.replayed:
        flash(f"{len(report.replayed)} {verb}: {', '.join(report.replayed[:10])}", "ok")
    for failed in report.failed[:10]:
        flash(f"{failed['id']}: {failed['error']}", "error")
    if len(report.failed) > 10:
        flash(f"... and {len(report.failed) - 10} more not replayed", "error")
