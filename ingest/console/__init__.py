"""The operator console at /console/: server-rendered pages over the admin read and replay side.

Closed (404) while ADMIN_TOKEN is unset. An operator logs in with the token once; the browser
then holds a signed, HttpOnly, SameSite=Strict session cookie, and every form that changes
something carries the session's CSRF token and must come from this origin (see auth.py).
"""

from __future__ import annotations

from flask import Blueprint
from flask import Flask

from core.config import Settings

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def init_app(app: Flask, settings: Settings) -> None:
    """Register the console and its session handling."""
    from ingest.console import auth
    from ingest.console import views  # noqa: F401  (registers the pages on bp)

    auth.init_app(app, settings)
    app.register_blueprint(bp)
