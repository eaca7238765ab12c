"""The Celery tasks: thin wrappers that own retries and publishing, nothing else."""

from __future__ import annotations

import random
from datetime import timedelta

import redis
from celery.signals import worker_init
from celery.utils.log import get_task_logger

from handlers.errors import TransientError
from handlers.hooks import registry as hook_registry
from workers import broker_patches
from workers import inflight
from workers import metrics  # noqa: F401  (counts task outcomes, serves WORKER_METRICS_PORT)
from workers import sweeper  # noqa: F401  (starts the repair loop in worker main processes)
from workers.celery_app import PROCESS_WEBHOOK
from workers.celery_app import RUN_HOOK
from workers.celery_app import app
from workers.processing import body_fingerprint
from workers.processing import process
from workers.runtime import get_runtime
from workers.validation import parse_event

# A late ack after a Redis restart must not end the worker (see workers/broker_patches.py).
broker_patches.install()

logger = get_task_logger(__name__)

# Retries: 2, 4, 8, ... 60 s ceilings, each wait at least half its ceiling: 61 to 122 s in
# all, under the default VISIBILITY_TIMEOUT of 300 s, so a retried message is not delivered twice.
EVENT_MAX_RETRIES = 6
HOOK_MAX_RETRIES = 5
RETRY_BACKOFF_FACTOR = 1
RETRY_BACKOFF_MAX = 60


def backoff_countdown(retries: int, base: float) -> float:
    """Exponential backoff with "equal" jitter: between half the ceiling and the ceiling.

    Half of each wait is fixed, so six event retries always span at least about a minute (a
    short database outage never dead-letters an event); the random half keeps many retried
    tasks from stampeding back together. ``base`` may be a fraction of a second.
    """
    ceiling = min(RETRY_BACKOFF_MAX, base * 2 ** (retries + 1))
    return random.uniform(ceiling / 2, ceiling)


def retry_countdown(retries: int) -> float:
    """The wait before an event's next attempt after a transient failure."""
    return backoff_countdown(retries, RETRY_BACKOFF_FACTOR)


def describe(event_id: str, event_type: str | None, appointment_id: str | None) -> str:
    """What Flower and the logs show of a webhook task's argument: identifiers only."""
    return f"(event_id={event_id!r}, eventType={event_type!r}, appointment_id={appointment_id!r})"


@app.task(name=PROCESS_WEBHOOK, bind=True, max_retries=EVENT_MAX_RETRIES)
def process_webhook(self, body: str) -> str:
    """Parse → validate → deduplicate → order → handle → store → queue hooks."""
    # Raises Retry while the event has no outcome yet; otherwise the store holds one.
    label, event_id = _process_webhook(self, body)
    _forget_inflight(event_id)
    return label


def _forget_inflight(event_id: str) -> None:
    """The store holds this event's outcome: drop it from the in-flight registry (Redis mode)."""
    runtime = get_runtime(app.conf.engagehook_settings)
    if runtime.broker_redis is None:
        return
    try:
        inflight.forget(runtime.broker_redis, event_id)
    except redis.RedisError:
        pass  # the sweeper finds the outcome in the store and forgets it then


def _process_webhook(self, body: str) -> tuple[str, str]:
    """The outcome label and the event id it was recorded under."""
    runtime = get_runtime(app.conf.engagehook_settings)
    try:
        outcome = process(body, runtime.store, runtime.registry, runtime.settings.validation_mode)
    except TransientError as exc:
        return _retry_or_give_up(self, body, exc)
    except Exception as exc:  # noqa: BLE001 - a bug must not ack away an unrecorded event
        return _dead_letter_unexpected(self, body, exc)
    for run_id in outcome.hook_run_ids:
        try:
            run_hook.apply_async(args=[run_id], argsrepr=f"(hook_run={run_id})")
        except Exception:  # noqa: BLE001 - the event is applied; failing now would hide that
            # The run stays pending in the outbox and the sweeper publishes it later.
            logger.warning("hook run %s not published; the sweeper will", run_id)
    # Celery's own "succeeded" line carries the outcome and the bound identifiers at INFO.
    logger.debug("%s %s", outcome.label, outcome.event_id)
    return outcome.label, outcome.event_id


def _retry_or_give_up(task, body: str, exc: TransientError) -> tuple[str, str]:
    runtime = get_runtime(app.conf.engagehook_settings)
    ids = _identifiers(body)
    if task.request.retries >= task.max_retries:
        reason = f"gave up after {task.request.retries} retries: {exc}"
        try:
            runtime.store.dead_letter(
                event_id=ids[0],
                raw_body=body,
                reason=reason,
                errors=[{"path": "", "message": reason}],
                event_type=ids[1],
                appointment_id=ids[2],
            )
        except TransientError:
            # The store cannot even take the dead letter: acknowledging now would lose an
            # event nothing has recorded, so keep retrying at the slowest pace until it is back.
            raise task.retry(
                exc=exc,
                countdown=retry_countdown(task.request.retries),
                max_retries=task.request.retries + 1,
                argsrepr=_argsrepr(task),
            ) from None
        return "dead_lettered:transient", ids[0]
    try:
        runtime.store.mark_retrying(
            event_id=ids[0],
            raw_body=body,
            reason=str(exc),
            event_type=ids[1],
            appointment_id=ids[2],
        )
    except TransientError:
        pass  # the store is what is down; the retry below is what matters
    raise task.retry(
        exc=exc, countdown=retry_countdown(task.request.retries), argsrepr=_argsrepr(task)
    )


def _dead_letter_unexpected(task, body: str, exc: Exception) -> tuple[str, str]:
    """Keep the body of an event whose processing hit a bug, with the reason, for replay."""
    # The class only: database errors quote their parameters, which may be personal data.
    logger.error("processing failed unexpectedly: %s", exc.__class__.__name__)
    runtime = get_runtime(app.conf.engagehook_settings)
    ids = _identifiers(body)
    reason = f"worker error: {exc.__class__.__name__}: {exc}"
    try:
        runtime.store.dead_letter(
            event_id=ids[0],
            raw_body=body,
            reason=reason,
            errors=[{"path": "", "message": reason}],
            event_type=ids[1],
            appointment_id=ids[2],
        )
    except TransientError as store_down:
        raise task.retry(
            exc=store_down,
            countdown=retry_countdown(task.request.retries),
            max_retries=task.request.retries + 1,
            argsrepr=_argsrepr(task),
        ) from None
    return "dead_lettered:worker-error", ids[0]


def _argsrepr(task) -> str | None:
    """What the retried message shows of its argument: the original's, if it had one."""
    return getattr(task.request, "argsrepr", None)


def _identifiers(body: str) -> tuple[str, str | None, str | None]:
    """Event id, eventType and appointment id as far as the body tells, for failure records."""
    try:
        event = parse_event(body)
    except Exception as err:  # noqa: BLE001 - InvalidPayload carries what it could read
        return (
            getattr(err, "event_id", None) or body_fingerprint(body),
            getattr(err, "event_type", None),
            getattr(err, "appointment_id", None),
        )
    return event.id, event.event_type, event.appointment_id


@app.task(name=RUN_HOOK, bind=True, max_retries=HOOK_MAX_RETRIES)
def run_hook(self, run_id: int) -> str:
    """Run one user hook for one applied event; its failures retry and end dead-lettered."""
    runtime = get_runtime(app.conf.engagehook_settings)
    max_retries = runtime.settings.hook_max_retries
    # The task id survives retries; a second message for the run (the sweeper's) gets a new one.
    found = runtime.store.claim_hook_run(
        run_id,
        claimant=self.request.id,
        lease=timedelta(seconds=runtime.settings.visibility_timeout),
    )
    if found is None:
        return "skipped"
    run, body = found
    hook = runtime.registry.get(run.hook_name)
    if hook is None:
        runtime.store.finish_hook_run(
            run_id, state="dead_lettered", error=f"no hook named {run.hook_name} is registered"
        )
        return "dead_lettered:unknown-hook"
    try:
        hook(parse_event(body, mode="tolerant"))
    except Exception as exc:  # noqa: BLE001 - a user hook may raise anything
        error = f"{exc.__class__.__name__}: {exc}"
        runtime.store.note_hook_attempt(run_id, error)
        if self.request.retries >= max_retries:
            runtime.store.finish_hook_run(run_id, state="dead_lettered", error=error)
            logger.warning("hook %s dead-lettered for event %s", run.hook_name, run.event_id)
            return "dead_lettered:hook"
        countdown = backoff_countdown(self.request.retries, runtime.settings.hook_retry_backoff)
        raise self.retry(
            countdown=countdown, max_retries=max_retries, argsrepr=_argsrepr(self)
        ) from None
    runtime.store.finish_hook_run(run_id, state="done")
    return f"hook:{run.hook_name}"


@worker_init.connect
def load_hooks_or_refuse_to_start(sender=None, **kwargs) -> None:
    """Stop a worker whose user hooks cannot be loaded before it takes (and acks) any event."""
    settings = sender.app.conf.engagehook_settings
    try:
        # In the main process, before the fork: children inherit the imported hooks.
        hook_registry.load(settings.hook_modules)
    except Exception as exc:  # an ImportError, a misnamed entry point, a hook module's bug
        logger.critical("cannot load user hooks: %s: %s", exc.__class__.__name__, exc)
        # Celery logs and swallows an Exception from a signal handler; SystemExit stops it.
        raise SystemExit(f"engagehook worker: cannot load user hooks: {exc}") from exc
