"""The Celery app: the one module that ingest, the worker, Flower and plain `celery -A` point at.

It never imports the tasks (they are named by string in ``include``), so ingest can publish
by task name without loading marshmallow, the store or the handlers. Importing it builds no
app: ``create_celery_app(settings)`` builds one, and the module attribute ``app`` (``celery``
too) is built from the environment on first use, which is how ``celery -A workers.celery_app``
finds it.
"""

from __future__ import annotations

import os

from celery import Celery

from core.config import Settings
from core.logs import install_celery_logging
from core.names import EVENTS_QUEUE
from core.names import HOOKS_QUEUE
from core.names import PUBLISH_TIMEOUT_SECONDS
from core.names import RUN_HOOK

# kombu's SQLAlchemy transport with real acks (see workers/embedded_broker.py), by class path
# so that importing this module does not import the transport.
EMBEDDED_TRANSPORT = "workers.embedded_broker:Transport"
# kombu's Redis transport, made to survive a Redis at maxmemory (workers/redis_transport.py).
REDIS_TRANSPORT = "workers.redis_transport:Transport"


def celery_config(settings: Settings) -> dict[str, object]:
    """Lowercase Celery settings; each one is here for a reason given beside it."""
    transport_options: dict[str, object] = {
        # A message held by a worker that died is delivered again after this long (Redis).
        "visibility_timeout": settings.visibility_timeout,
        # A hung or unreachable broker must fail the publish fast, not hang the endpoint.
        "socket_timeout": PUBLISH_TIMEOUT_SECONDS,
        "socket_connect_timeout": PUBLISH_TIMEOUT_SECONDS,
        # kombu looks for messages of dead workers every 10 s but scans only every 10th time
        # by default (100 s): check often enough that redelivery follows the timeout closely.
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 10)),
        "unacked_restore_throttle": 1,
    }
    return {
        "broker_url": settings.broker_url,
        # No Redis configured: the broker is a SQLite file under the data dir.
        "broker_transport": EMBEDDED_TRANSPORT if settings.embedded else REDIS_TRANSPORT,
        "broker_transport_options": transport_options,
        # Same timeout for the result backend and the restore of unacked messages (celery #7651).
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": PUBLISH_TIMEOUT_SECONDS,
        # Publishing retries at most twice within about half a second, then ingest spools.
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        # Outcomes live in the store; nobody reads Celery results.
        "task_ignore_result": True,
        # Ack after the task finished, so a worker killed mid-task does not lose the message
        # (safe because processing is idempotent: the store takes each event id once).
        "task_acks_late": True,
        # A child process killed by a signal puts its message back instead of acking it.
        "task_reject_on_worker_lost": True,
        # Hold one message at a time per process: nothing else sits unacked in a dying worker.
        "worker_prefetch_multiplier": 1,
        # Task events for Flower, including the moment a task was queued.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_default_queue": EVENTS_QUEUE,
        # User hooks get their own queue (and pool, see WORKER_ROLES) so a slow CRM never
        # delays the store.
        "task_routes": {RUN_HOOK: {"queue": HOOKS_QUEUE}},
        # A hook is interrupted (SoftTimeLimitExceeded) at its time limit and its process
        # killed shortly after, always before the run's lease ends and before Redis would
        # deliver its message again (the settings refuse a limit that does not fit).
        "task_annotations": {
            RUN_HOOK: {
                "soft_time_limit": settings.hook_time_limit,
                "time_limit": settings.hook_hard_time_limit,
            }
        },
        "task_serializer": "json",
        "accept_content": ["json"],
        # Warm shutdown on SIGTERM finishes the running tasks before exit.
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }


class EngagehookCelery(Celery):
    """A Celery app that knows the settings it was built from (see ``settings_of``)."""

    settings: Settings


def create_celery_app(settings: Settings) -> EngagehookCelery:
    """Build the Celery app for ``settings``; tasks are found by module name."""
    app = EngagehookCelery("engagehook", include=["workers.tasks"])
    app.conf.update(celery_config(settings))
    app.settings = settings
    # Workers log JSON lines with the event's identifiers (see core/logs.py).
    install_celery_logging(settings.log_level)
    return app


def settings_of(app: object) -> Settings | None:
    """The settings ``app`` was built from; None for an app ``create_celery_app`` did not build."""
    return app.settings if isinstance(app, EngagehookCelery) else None


_app: EngagehookCelery | None = None


def __getattr__(name: str) -> EngagehookCelery:
    """``app`` and ``celery``: the process's app, built from the environment on first use."""
    global _app
    if name not in ("app", "celery"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = create_celery_app(Settings.from_env(os.environ))
    return _app
