"""Console login, session cookie and protection of every state-changing form.

- The session is Flask's signed cookie, keyed by a secret derived from ADMIN_TOKEN: every
  gunicorn worker and replica derives the same key, and rotating the token logs everyone out.
- HttpOnly and SameSite=Strict; Secure whenever the request came over HTTPS.
- Every POST (login included) must carry the session's CSRF token in the form, and an Origin
  (or Referer) header, when the browser sends one, must name this host.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask
from flask import current_app
from flask import redirect
from flask import request
from flask import session
from flask import url_for
from flask.sessions import SecureCookieSessionInterface

from core.config import Settings
from ingest.console import bp
from ingest.constant_time import same_secret
from ingest.errors import IngestError

SESSION_LIFETIME = timedelta(hours=12)
CSRF_FIELD = "csrf_token"
# Pages a visitor without a session may open: the login form and the stylesheet/script.
OPEN_ENDPOINTS = frozenset({"console.login", "console.static"})
_SECRET_CONTEXT = b"engagehook console session v1"


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request itself was HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def init_app(app: Flask, settings: Settings) -> None:
    """Derive the session key from ADMIN_TOKEN and set the cookie's attributes."""
    if settings.admin_token:
        app.secret_key = hmac.new(
            settings.admin_token.encode(), _SECRET_CONTEXT, hashlib.sha256
        ).hexdigest()
    app.session_interface = ConsoleSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="engagehook_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/console",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )


def token_matches(presented: str) -> bool:
    """Compare with ADMIN_TOKEN in constant time, also with respect to its length."""
    return same_secret(presented, current_app.config["ENGAGEHOOK_SETTINGS"].admin_token or "")


def csrf_token() -> str:
    """This session's CSRF token, made on first use (templates call it for every form)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def log_in() -> None:
    """Start a fresh session: a new CSRF token, so one seen before login is worth nothing."""
    session.clear()
    session.permanent = True
    session["operator"] = True
    session["csrf"] = secrets.token_urlsafe(32)


def log_out() -> None:
    """Forget the session."""
    session.clear()


@bp.before_request
def guard():
    """404 while ADMIN_TOKEN is unset; same-origin CSRF-checked POSTs; login before pages."""
    if not current_app.config["ENGAGEHOOK_SETTINGS"].admin_token:
        raise IngestError(404, "not_found", "the console is disabled: set ADMIN_TOKEN to enable it")
    if request.method == "POST":
        _refuse_cross_site()
    if request.endpoint in OPEN_ENDPOINTS or session.get("operator"):
        return None
    if request.method != "GET":
        raise IngestError(403, "forbidden", "log in to the console first")
    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))


def _refuse_cross_site() -> None:
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin and _host_of(origin) != _host_of(request.host_url):
        raise IngestError(403, "cross_origin", "this form may only be sent from the console itself")
    expected = session.get("csrf")
    presented = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise IngestError(
            403, "csrf_failed", "the form's CSRF token is missing or stale: reload the page"
        )


def _host_of(url: str) -> str:
    # Host and port only: behind a TLS proxy the app may see http while the browser says https.
    return urlsplit(url).netloc.lower()
