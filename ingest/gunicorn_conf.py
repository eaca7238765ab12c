"""Gunicorn settings for `engagehook web`: JSON logs without query strings, multiprocess metrics.

Loaded with ``gunicorn --config python:ingest.gunicorn_conf``; command-line flags still win.
"""

from __future__ import annotations

import os

from gunicorn.glogging import Logger

from core import logs

# The app logs every request to this path itself, with the webhook's identifiers
# (ingest/metrics.py): an access line too would double the log volume of the busiest route.
APP_LOGGED_PATH = "/webhooks"


class JsonLogger(Logger):
    """Gunicorn's logger writing JSON lines; access lines carry the path but never the query."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        # The app's own loggers (ingest.*, Flask) propagate to the root logger.
        logs.configure("web", cfg.loglevel)

    def _set_handler(self, log, output, fmt, stream=None) -> None:
        super()._set_handler(log, output, fmt, stream=stream)
        for handler in log.handlers:
            if getattr(handler, "_gunicorn", False):
                logs.json_handler("web", handler)

    def access(self, resp, req, environ, request_time) -> None:
        # The query string may hold WEBHOOK_TOKEN (?token=...) on any path: log the path only,
        # and say a query was there without showing it.
        if not self.access_log_enabled or environ.get("PATH_INFO") == APP_LOGGED_PATH:
            return
        self.access_log.info(
            "request",
            extra={
                "http_method": environ.get("REQUEST_METHOD"),
                "path": logs.redact_url(environ.get("PATH_INFO") or ""),
                "query": "<redacted>" if environ.get("QUERY_STRING") else None,
                "status": getattr(resp, "status_code", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 2),
            },
        )


def child_exit(server, worker) -> None:
    """Let the metrics of a dead gunicorn worker stop counting as live (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


logger_class = JsonLogger
accesslog = "-"
# Only used if the logger class above is swapped for gunicorn's own: %(U)s is the path without
# its query string (which may hold ?token=...), and no referrer or request line (%(r)s) appears.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(D)s'
# Threads, not one connection per process: a slow client holds one thread, and each request
# must arrive whole within a deadline (ingest/gunicorn_worker.py), so dozens of clients
# trickling their requests never stall the senders. A request holds its thread for about a
# millisecond, so idle threads cost next to nothing.
worker_class = "ingest.gunicorn_worker.DeadlineThreadWorker"
THREADS_PER_WORKER = 64
threads = THREADS_PER_WORKER
# One connection per thread and no keep-alive: a worker whose threads are all busy stops
# accepting, so a new connection goes to a worker with a free thread (or waits in the listen
# backlog) instead of queueing inside a worker behind slow clients.
worker_connections = THREADS_PER_WORKER
keepalive = 0
# What a client can make a thread buffer before its request is refused (gunicorn's defaults
# but fewer header fields: the sender sends a handful).
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
# The sender waits 3 s at most; a request still running after 30 s is stuck.
timeout = 30
graceful_timeout = 30
# No run-time control socket: it is one fixed path per user, which replicas on one host would
# fight over, and engagehook is configured at start only.
control_socket_disable = True
# Workers log through the root logger set up above, so gunicorn need not capture their output.
capture_output = False
loglevel = "info"
