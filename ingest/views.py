"""POST /webhooks: check the envelope just enough, enqueue the raw body, answer fast."""

from __future__ import annotations

import orjson
from flask import Blueprint
from flask import Response
from flask import current_app
from flask import request

from core.envelope import peek
from ingest.auth import signature_ok
from ingest.auth import token_ok
from ingest.errors import IngestError
from ingest.metrics import note_answer
from ingest.metrics import note_envelope
from ingest.queue import EnqueueFailed
from ingest.queue import get_queue

bp = Blueprint("webhooks", __name__)

RETRY_AFTER_SECONDS = "2"  # the sender's own first retry comes after 2 s
READ_CHUNK_BYTES = 65_536
# Sorted keys and a final newline, as Flask's jsonify writes them.
JSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


@bp.post("/webhooks")
def receive_webhook():
    """Acknowledge a webhook once its raw body is durably stored (broker or spool)."""
    settings = current_app.config["ENGAGEHOOK_SETTINGS"]
    # The token needs no body: a caller without it is turned away before anything is read.
    if settings.webhook_tokens and not token_ok(request, settings.webhook_tokens):
        raise IngestError(
            401,
            "unauthorized",
            "missing or wrong token: post to /webhooks?token=<one of WEBHOOK_TOKEN> "
            "or send Authorization: Bearer <token>",
        )
    if request.mimetype != "application/json":
        raise IngestError(415, "unsupported_media_type", "send the payload as application/json")
    body = _read_body(settings.max_body_bytes)
    if settings.webhook_hmac_secrets and not signature_ok(
        request, body, settings.webhook_hmac_secrets
    ):
        raise IngestError(
            401,
            "unauthorized",
            "missing or wrong X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>",
        )
    envelope = _parse_envelope(body)
    note_envelope(envelope)  # identifiers for the log line and metrics, never payload values
    allowed = settings.webhook_configuration_ids
    if allowed and envelope.get("webhookConfigurationId") not in allowed:
        # The value is not echoed: it is whatever the caller wrote.
        raise IngestError(
            403,
            "configuration_not_allowed",
            "the webhookConfigurationId of this payload is not listed in WEBHOOK_CONFIGURATION_IDS",
        )
    event_id = envelope["id"]
    ids = peek(envelope)
    try:
        status = get_queue().enqueue(
            body.decode("utf-8"),
            event_id=event_id,
            event_type=_str_or_none(ids.event_type),
            appointment_id=_str_or_none(ids.appointment_id),
        )
    except EnqueueFailed as exc:
        raise IngestError(
            503,
            "unavailable",
            f"the payload could not be stored ({exc}); retry",
            {"Retry-After": RETRY_AFTER_SECONDS},
        ) from None
    answer = {"status": "queued", "id": event_id, "stored": status}
    note_answer(answer)
    return _json_response(answer, 202)


def _json_response(document: dict, status: int) -> Response:
    """The JSON answer, serialised by orjson: what jsonify gives, at a fraction of its cost."""
    return Response(
        orjson.dumps(document, option=JSON_OPTIONS), status=status, mimetype="application/json"
    )


def _read_body(limit: int) -> bytes:
    """The whole body; 413 once it is past ``limit`` (chunked too), 400 if it ends early."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise IngestError(
            413,
            "request_entity_too_large",
            f"the body is larger than MAX_BODY_BYTES ({limit} bytes)",
        )
    if declared is None and "wsgi.input_terminated" not in request.environ:
        return b""  # no length and a server that does not end the stream: nothing to trust
    # Read the server's stream ourselves, at most one byte past the limit: werkzeug's own
    # max-length stream silently truncates a chunked body at the limit instead of refusing it.
    stream = request.environ["wsgi.input"]
    wanted = limit + 1 if declared is None else declared
    chunks: list[bytes] = []
    size = 0
    while size < wanted:
        try:
            data = stream.read(min(READ_CHUNK_BYTES, wanted - size))
        except OSError:
            # The server cut off a body that trickled in past its read deadline (or the
            # client went away): nothing to store, and the connection is closed after this.
            raise IngestError(
                408,
                "request_timeout",
                "the body did not arrive in time; send the whole request without pauses",
            ) from None
        if not data:
            break
        chunks.append(data)
        size += len(data)
    if size > limit:
        raise IngestError(
            413,
            "request_entity_too_large",
            f"the body is larger than MAX_BODY_BYTES ({limit} bytes)",
        )
    if declared is not None and size < declared:
        raise IngestError(
            400,
            "incomplete_body",
            f"the body ended after {size} of the {declared} bytes its Content-Length announced",
        )
    return b"".join(chunks)


def _parse_envelope(body: bytes) -> dict:
    # orjson refuses invalid UTF-8, lone surrogates and nesting deeper than 1024 levels with
    # JSONDecodeError (no RecursionError), and the body is bounded by MAX_BODY_BYTES.
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise IngestError(400, "invalid_envelope", "the body must be a JSON object")
    if not isinstance(envelope.get("id"), str) or not envelope["id"].strip():
        raise IngestError(400, "invalid_envelope", 'the body must carry a non-empty string "id"')
    if len(envelope["id"]) > 255:
        raise IngestError(400, "invalid_envelope", '"id" must be at most 255 characters')
    if not envelope["id"].isprintable():
        # A NUL cannot be stored in PostgreSQL text, and no sender's id carries control codes.
        raise IngestError(400, "invalid_envelope", '"id" must not contain control characters')
    return envelope


def _str_or_none(value: object) -> str | None:
    return value[:255] if isinstance(value, str) else None
