"""Worker metrics from Celery's task signals, served by the worker's main process on a port.

Task outcomes are the short labels the tasks return ("processed:CREATE", "duplicate",
"dead_lettered:invalid", ...). Prefork children write their samples to PROMETHEUS_MULTIPROC_DIR
(``engagehook worker`` sets it) and the main process serves their sum on WORKER_METRICS_PORT.
"""

from __future__ import annotations

import logging
import os
import re
import time

from celery.signals import task_failure
from celery.signals import task_postrun
from celery.signals import task_prerun
from celery.signals import task_retry
from celery.signals import worker_ready
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from core.build import BuildInfoCollector
from core.names import PROCESS_WEBHOOK
from core.names import RUN_HOOK
from handlers.events import EVENT_TYPES
from handlers.hook_runner import HookRunDeadLettered
from workers.celery_app import settings_of

logger = logging.getLogger(__name__)

OUTCOMES = frozenset({"processed", "stale", "duplicate", "dead_lettered"})
HOOK_OUTCOMES = frozenset({"hook", "skipped", "dead_lettered"})
# Processing of one delivery: validation plus one store transaction, usually milliseconds.
PROCESSING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_EVENT_TYPE_IN_ARGSREPR = re.compile(r"eventType='([A-Z_]+)'")
_REASON = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")

REGISTRY = CollectorRegistry(auto_describe=True)
REGISTRY.register(BuildInfoCollector("worker"))
EVENTS = Counter(
    "engagehook_events_processed",
    "Deliveries processed by a worker, by eventType and outcome (processed, stale, duplicate, "
    "dead_lettered with its reason).",
    ["event_type", "outcome", "reason"],
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "engagehook_event_processing_seconds",
    "Time a worker spent on one delivery: validation, store transaction, hook outbox.",
    ["event_type"],
    buckets=PROCESSING_BUCKETS,
    registry=REGISTRY,
)
HOOK_RUNS = Counter(
    "engagehook_hook_runs",
    "User hook runs finished, by outcome (hook = succeeded, skipped, dead_lettered).",
    ["outcome"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "engagehook_task_retries",
    "Task attempts that failed transiently and were scheduled again.",
    ["task"],
    registry=REGISTRY,
)
FAILURES = Counter(
    "engagehook_task_failures",
    "Tasks that raised an unexpected error (a bug: the message is not acknowledged as done).",
    ["task"],
    registry=REGISTRY,
)

_started: dict[str, float] = {}


def event_labels(label: object, argsrepr: str | None) -> tuple[str, str, str]:
    """(event_type, outcome, reason) of one process_webhook result, bounded to known values."""
    head, _, tail = str(label).partition(":")
    outcome = head if head in OUTCOMES else "other"
    if tail in EVENT_TYPES:
        event_type = tail
    else:
        # The task argument shows (event_id=..., eventType='CREATE', ...): never the payload.
        match = _EVENT_TYPE_IN_ARGSREPR.search(argsrepr or "")
        event_type = match[1] if match and match[1] in EVENT_TYPES else "unknown"
    reason = tail if outcome == "dead_lettered" and _REASON.fullmatch(tail) else ""
    return event_type, outcome, reason


def _task_name(task: object) -> str:
    name = getattr(task, "name", None)
    return name if name in (PROCESS_WEBHOOK, RUN_HOOK) else "other"


@task_prerun.connect
def _on_prerun(task_id: str | None = None, **_kwargs: object) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@task_postrun.connect
def _on_postrun(
    task_id: str | None = None, task=None, retval=None, state=None, **_kwargs: object
) -> None:
    started = _started.pop(task_id, None) if task_id else None
    if state != "SUCCESS" or task is None:
        return  # retries and failures have their own signals
    if task.name == PROCESS_WEBHOOK:
        event_type, outcome, reason = event_labels(retval, getattr(task.request, "argsrepr", None))
        EVENTS.labels(event_type=event_type, outcome=outcome, reason=reason).inc()
        if started is not None:
            PROCESSING_SECONDS.labels(event_type=event_type).observe(time.perf_counter() - started)
    elif task.name == RUN_HOOK:
        head = str(retval).partition(":")[0]
        HOOK_RUNS.labels(outcome=head if head in HOOK_OUTCOMES else "other").inc()


@task_retry.connect
def _on_retry(sender=None, **_kwargs: object) -> None:
    RETRIES.labels(task=_task_name(sender)).inc()


@task_failure.connect
def _on_failure(sender=None, exception=None, **_kwargs: object) -> None:
    if isinstance(exception, HookRunDeadLettered):
        # The expected end of a hook run that used up its attempts, not a bug.
        HOOK_RUNS.labels(outcome="dead_lettered").inc()
        return
    FAILURES.labels(task=_task_name(sender)).inc()


def exposition_registry() -> CollectorRegistry:
    """What the worker serves: every process's samples when they are written to files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(BuildInfoCollector("worker"))
        return registry
    return REGISTRY


def serve(port: int, host: str = "0.0.0.0") -> bool:
    """Serve the worker's metrics over HTTP; a taken port is logged, never fatal."""
    try:
        start_http_server(port, addr=host, registry=exposition_registry())
    except OSError as exc:
        logger.error(
            "worker metrics not served: port %d unavailable (%s)",
            port,
            exc.__class__.__name__,
            extra={"port": port},
        )
        return False
    logger.info("worker metrics on port %d", port, extra={"port": port})
    return True


@worker_ready.connect
def _on_worker_ready(sender=None, **_kwargs: object) -> None:
    settings = settings_of(getattr(sender, "app", None))
    if settings is not None and settings.worker_metrics_port:
        serve(settings.worker_metrics_port)
