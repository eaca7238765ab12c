"""Structured logs: one JSON object per line, carrying identifiers and never payload values.

Every role logs the same shape::

    {"ts": "...", "level": "info", "logger": "...", "role": "worker", "message": "...",
     "event_id": "...", "correlation_id": "...", "event_type": "CREATE", "appointment_id": "..."}

Only the fields in ``ALLOWED_FIELDS`` leave the process; any other ``extra`` a library attaches
(Celery puts the task context there) is dropped. Messages and tracebacks are redacted as a
second line of defence: e-mail addresses, international phone numbers and token query
parameters are masked even if some code puts them into a message by mistake.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC
from datetime import datetime
from typing import Any

import orjson

# The four identifiers of a webhook: the only payload-derived values a log line may carry.
IDENTIFIERS = ("event_id", "correlation_id", "event_type", "appointment_id")
# Everything else a log record may contribute; all of it is operational, none of it personal.
ALLOWED_FIELDS = IDENTIFIERS + (
    "outcome",
    "reason",
    "error_paths",
    "stored",
    "task_id",
    "task_name",
    "hook",
    "hook_run",
    "http_method",
    "path",
    "query",
    "status",
    "duration_ms",
    "retries",
    "count",
    "port",
    "queues",
)
MAX_IDENTIFIER_LENGTH = 255

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# International numbers as the sender writes them ("+32 470 00 00 01"); a leading + keeps
# UUIDs, timestamps and counters out of it.
_PHONE = re.compile(r"\+\d{1,3}[\d ()./-]{6,}\d")
# ?token=... (WEBHOOK_TOKEN in the URL) and the sender's per-participant ?t=... links.
_TOKEN_PARAM = re.compile(r"(?i)((?:[?&]|%3F|%26)(?:token|access_token|t)(?:=|%3D))[^&\s\"'#]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")
# The query string of any URL or request target ("POST /webhooks?token=... HTTP/1.1",
# "https://host/path?a=b"): WEBHOOK_TOKEN rides there, and so may anything a caller appends.
# A percent-encoded "?" (%3F) counts too: gunicorn logs raw request paths at DEBUG.
_URL_QUERY = re.compile(
    r"(?i)((?:[a-z][a-z0-9+.-]*://[^\s/?#\"']*)?/[^\s?#\"']*?)(?:\?|%3F)[^\s#\"']+"
)

_context: ContextVar[dict[str, str] | None] = ContextVar("engagehook_log_context", default=None)


def redact(text: str) -> str:
    """Mask what must never reach a log even when a message carries it by accident."""
    text = _EMAIL.sub("<email>", text)
    text = _PHONE.sub("<phone>", text)
    text = _TOKEN_PARAM.sub(r"\1***", text)
    text = _URL_QUERY.sub(r"\1?<redacted>", text)
    return _BEARER.sub(r"\1***", text)


def redact_url(url: str) -> str:
    """A URL or request target fit for a log line: everything after ``?`` is redacted."""
    path, sep, _query = url.partition("?")
    return f"{path}?<redacted>" if sep else path


def identifier(value: object) -> str | None:
    """A payload identifier fit for a log field: a string, bounded; anything else is dropped."""
    if isinstance(value, str) and value:
        return value[:MAX_IDENTIFIER_LENGTH]
    return None


def bind(**fields: object) -> None:
    """Attach identifiers to every following log line of this task or request (None unsets)."""
    current = dict(_context.get() or {})
    for key, value in fields.items():
        if key not in IDENTIFIERS:
            continue
        bounded = identifier(value)
        if bounded is None:
            current.pop(key, None)  # an identifier this event lacks must not linger from another
        else:
            current[key] = bounded
    _context.set(current)


def clear() -> None:
    """Forget the identifiers bound for the previous task or request."""
    _context.set(None)


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Bind identifiers for the duration of a block."""
    token = _context.set(dict(_context.get() or {}))
    try:
        bind(**fields)
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def __init__(self, role: str | None = None) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if self.role:
            out["role"] = self.role
        out["pid"] = record.process
        out["message"] = redact(_message_without_exception_text(record))
        out.update(_context.get() or {})
        out.update(_task_fields())
        for key in ALLOWED_FIELDS:
            value = record.__dict__.get(key)
            if key in IDENTIFIERS:
                value = identifier(value)  # only bounded strings; a dict could hold anything
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            out["exc"] = redact(scrubbed_traceback(record.exc_info[1]))
        elif record.exc_text:
            out["exc"] = redact(_scrub_traceback_text(record.exc_text))
        return orjson.dumps(out, default=str).decode()


def scrubbed_traceback(exc: BaseException | None) -> str:
    """A traceback with its frames and exception classes, without any exception's text.

    An exception's text may quote payload values: a database error its SQL parameters, a
    handler bug the value it choked on. The frames (file, line, code) are the code's own.
    """
    parts: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
        parts.insert(0, "".join(["Traceback (most recent call last):\n", *frames, _class_of(exc)]))
        cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        exc = cause
    return "\n\nDuring handling of the above exception, another exception occurred:\n\n".join(
        parts
    ).rstrip("\n")


def _class_of(exc: BaseException) -> str:
    cls = type(exc)
    module = "" if cls.__module__ == "builtins" else f"{cls.__module__}."
    return f"{module}{cls.__qualname__}\n"


# The line of a formatted traceback that holds an exception's text: "pkg.Error: the text".
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::.*|\(.*)$")
# Celery's trace lines put the exception's repr under "exc" ("DataError('... params ...')",
# "Retry in 3s: TransientError('...')"): only the class names are kept.
_EXCEPTION_REPR = re.compile(r"^(Retry in [^:]+: )?([A-Za-z_][\w.]*)")


def _message_without_exception_text(record: logging.LogRecord) -> str:
    """The record's message with any exception argument reduced to its class name."""
    args = record.args
    exc = args.get("exc") if isinstance(args, Mapping) else None
    if isinstance(args, Mapping) and isinstance(exc, str | BaseException):
        if isinstance(exc, BaseException):
            summary = type(exc).__name__
        else:
            match = _EXCEPTION_REPR.match(exc)
            summary = "".join(g for g in match.groups() if g) if match else "<exception>"
        args = {**args, "exc": summary}
    elif isinstance(args, tuple) and any(isinstance(a, BaseException) for a in args):
        args = tuple(_ClassName(a) if isinstance(a, BaseException) else a for a in args)
    if args is record.args:
        return record.getMessage()
    try:
        return str(record.msg) % args
    except (TypeError, ValueError, KeyError):
        return str(record.msg)


class _ClassName(str):
    """An exception's class name, the same under %s and %r."""

    def __new__(cls, exc: BaseException) -> _ClassName:
        return super().__new__(cls, type(exc).__name__)

    def __repr__(self) -> str:
        return str(self)


def _scrub_traceback_text(text: str) -> str:
    """A traceback already formatted as text, keeping frames and exception classes only."""
    kept = []
    for line in text.splitlines():
        if (
            line.startswith((" ", "Traceback", "During handling", "The above exception"))
            or not line
        ):
            kept.append(line)
            continue
        match = _EXCEPTION_LINE.match(line)
        if match and kept and kept[-1].startswith(" "):
            kept.append(match.group(1))  # the exception's header line: its class only
        # Any other line is the rest of an exception's text (SQL, parameters...): dropped.
    return "\n".join(kept)


def _task_fields() -> dict[str, str]:
    """The running Celery task's id and name, when this process runs one."""
    state = sys.modules.get("celery._state")
    task = state.get_current_task() if state is not None else None
    if task is None or task.request.id is None:
        return {}
    return {"task_id": task.request.id, "task_name": task.name}


class DropPayloadEcho(logging.Filter):
    """Drop library debug lines that print whole task arguments (the raw payload)."""

    LOGGERS = ("celery.pool", "celery.concurrency", "kombu")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.DEBUG and record.name.startswith(self.LOGGERS))


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def json_handler(role: str | None, handler: logging.Handler | None = None) -> logging.Handler:
    """A handler (stderr by default) that writes redacted JSON lines."""
    handler = handler or CurrentStderrHandler()
    handler.setFormatter(JsonFormatter(role))
    handler.addFilter(DropPayloadEcho())
    handler._engagehook = True  # type: ignore[attr-defined]
    return handler


def configure(role: str, level: str | int = "INFO") -> None:
    """Send every log record of this process to stderr as JSON lines (idempotent)."""
    root = logging.getLogger()
    # billiard (Celery's process pool) logs to "multiprocessing", which does not propagate.
    pool = logging.getLogger("multiprocessing")
    for logger in (root, pool):
        for handler in list(logger.handlers):
            if getattr(handler, "_engagehook", False):
                logger.removeHandler(handler)
        logger.addHandler(json_handler(role))
    root.setLevel(level.upper() if isinstance(level, str) else level)
    pool.setLevel(logging.WARNING)
    # Alembic announces each of its plugins at INFO on every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _on_celery_setup_logging(loglevel: int | str | None = None, **_kwargs: object) -> None:
    # Connecting this receiver stops Celery from installing its own plain-text handlers.
    configure("worker", loglevel or "INFO")


# The LOG_LEVEL of the settings the worker's Celery app was built from (install_celery_logging).
_worker_log_level = "INFO"


def _on_celeryd_init(**_kwargs: object) -> None:
    # Sent by `celery worker` before anything else is printed: the privilege check's warning
    # and the shutdown notices come out as JSON lines too.
    from celery.apps import worker

    configure("worker", _worker_log_level)
    logging.captureWarnings(True)
    worker.safe_say = say_json


def say_json(msg: str, f=sys.__stderr__) -> None:
    """Celery's signal-handler notices as JSON lines; lock-free, as a signal handler needs."""
    line = (
        orjson.dumps(
            {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "level": "warning",
                "logger": "celery.apps.worker",
                "role": "worker",
                "pid": os.getpid(),
                "message": redact(str(msg).strip()),
            }
        )
        + b"\n"
    )
    try:
        os.write(f.fileno(), line)
    except (OSError, ValueError):
        pass  # best effort, like Celery's own notice


def _on_task_prerun(**_kwargs: object) -> None:
    clear()  # identifiers of the previous task must not leak into this one's lines


def install_celery_logging(log_level: str = "INFO") -> None:
    """Make Celery workers log JSON lines at ``log_level`` and reset bound identifiers per task."""
    global _worker_log_level
    _worker_log_level = log_level
    from celery.signals import celeryd_init
    from celery.signals import setup_logging
    from celery.signals import task_prerun

    celeryd_init.connect(_on_celeryd_init, weak=False, dispatch_uid="core.logs.init")
    setup_logging.connect(_on_celery_setup_logging, weak=False, dispatch_uid="core.logs")
    task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="core.logs.prerun")
