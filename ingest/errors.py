"""One JSON error shape for every answer that is not a success: {"error", "message"}."""

from __future__ import annotations

from flask import Flask
from flask import Response
from flask import jsonify
from werkzeug.exceptions import HTTPException

from ingest.metrics import note_answer


class IngestError(HTTPException):
    """An answer the endpoint gives on purpose, with a machine code and a human message."""

    code: int  # always set, unlike HTTPException's
    description: str

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ):
        super().__init__(description=message)
        self.code = status
        self.error = error
        self.extra_headers = headers or {}


def error_response(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """Build the JSON error answer (and note its code, which the webhook metrics count)."""
    note_answer({"error": error})
    response = jsonify(error=error, message=message)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _handle_http_exception(exc: HTTPException) -> Response:
    if isinstance(exc, IngestError):
        return error_response(exc.code, exc.error, exc.description, exc.extra_headers)
    error = (exc.name or "error").lower().replace(" ", "_")
    allowed = getattr(exc, "valid_methods", None)
    headers = {"Allow": ", ".join(allowed)} if allowed else None
    return error_response(exc.code or 500, error, exc.description or exc.name, headers)


def _handle_unexpected(exc: Exception) -> Response:
    # Never a stack trace to the sender; the log has it. 503 so the sender retries.
    from flask import current_app

    current_app.logger.exception("unexpected error in ingest")
    return error_response(
        503, "internal_error", "the request could not be handled; retry later", {"Retry-After": "5"}
    )


def init_app(app: Flask) -> None:
    """Route every error through the single JSON shape."""
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
