"""The Celery tasks: thin wrappers that own retries and publishing, nothing else."""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta

import redis
from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.signals import worker_init
from celery.utils.log import get_task_logger

from core.names import PROCESS_WEBHOOK
from core.names import RUN_HOOK
from handlers import hook_outbox
from handlers.errors import TransientError
from handlers.hook_event import HookEvent
from handlers.hook_runner import Attempt
from handlers.hook_runner import HookRunDeadLettered
from handlers.hook_runner import attempt
from handlers.hooks import registry as hook_registry
from handlers.store import Store
from workers import broker_patches
from workers import inflight
from workers import metrics  # noqa: F401  (counts task outcomes, serves WORKER_METRICS_PORT)
from workers import sweeper  # noqa: F401  (starts the repair loop in worker main processes)
from workers.celery_app import app
from workers.celery_app import settings_of
from workers.processing import failure_identifiers
from workers.processing import process
from workers.runtime import WorkerRuntime
from workers.runtime import runtime_for
from workers.validation import parse_event

# A late ack after a Redis restart must not end the worker (see workers/broker_patches.py).
broker_patches.install()

logger = get_task_logger(__name__)

# Retries: 2, 4, 8, ... 60 s ceilings, each wait at least half its ceiling: 61 to 122 s in
# all, under the default VISIBILITY_TIMEOUT of 300 s, so a retried message is not delivered twice.
EVENT_MAX_RETRIES = 6
RETRY_BACKOFF_FACTOR = 1
RETRY_BACKOFF_MAX = 60


def backoff_ceiling(retries: int, base: float) -> float:
    """The longest wait before attempt ``retries + 2``: doubling from ``2 * base``, capped."""
    return min(RETRY_BACKOFF_MAX, base * 2 ** (retries + 1))


def backoff_countdown(retries: int, base: float) -> float:
    """Exponential backoff with "equal" jitter: between half the ceiling and the ceiling.

    Half of each wait is fixed, so six event retries always span at least about a minute (a
    short database outage never dead-letters an event); the random half keeps many retried
    tasks from stampeding back together. ``base`` may be a fraction of a second.
    """
    ceiling = backoff_ceiling(retries, base)
    # A retry held by a worker longer than VISIBILITY_TIMEOUT is delivered a second time, and
    # each copy then retries on its own: no wait may come near it.
    ceiling = min(ceiling, app.settings.retry_wait_limit)
    return random.uniform(ceiling / 2, ceiling)


def retry_countdown(retries: int) -> float:
    """The wait before an event's next attempt after a transient failure."""
    return backoff_countdown(retries, RETRY_BACKOFF_FACTOR)


@app.task(name=PROCESS_WEBHOOK, bind=True, max_retries=EVENT_MAX_RETRIES)
def process_webhook(self, body: str) -> str:
    """Parse → validate → deduplicate → order → handle → store → queue hooks."""
    runtime = runtime_for(self.app)
    # Raises Retry while the event has no outcome yet; otherwise the store holds one.
    label, event_id = _process_webhook(self, runtime, body)
    _forget_inflight(runtime, event_id)
    return label


def _forget_inflight(runtime: WorkerRuntime, event_id: str) -> None:
    """The store holds this event's outcome: drop it from the in-flight registry (Redis mode)."""
    if runtime.broker_redis is None:
        return
    try:
        inflight.forget(runtime.broker_redis, event_id)
    except redis.RedisError:
        pass  # the sweeper finds the outcome in the store and forgets it then


def _watch_inflight_from(runtime: WorkerRuntime, event_id: str, due: float) -> None:
    """A retry is queued: the sweeper must not republish the event before the retry is due."""
    if runtime.broker_redis is None:
        return
    try:
        inflight.postpone(runtime.broker_redis, event_id, due)
    except redis.RedisError:
        pass  # at worst the sweeper republishes once; the store takes the event id once


def _process_webhook(self, runtime: WorkerRuntime, body: str) -> tuple[str, str]:
    """The outcome label and the event id it was recorded under."""
    try:
        outcome = process(body, runtime.store, runtime.registry, runtime.settings.validation_mode)
    except TransientError as exc:
        return _retry_or_give_up(self, runtime, body, exc)
    except Exception as exc:  # noqa: BLE001 - a bug must not ack away an unrecorded event
        return _dead_letter_unexpected(self, runtime, body, exc)
    for run_id in outcome.hook_run_ids:
        try:
            run_hook.apply_async(args=[run_id], argsrepr=f"(hook_run={run_id})")
        except Exception:  # noqa: BLE001 - the event is applied; failing now would hide that
            # The run stays pending in the outbox and the sweeper publishes it later.
            logger.warning("hook run %s not published; the sweeper will", run_id)
    # Celery's own "succeeded" line carries the outcome and the bound identifiers at INFO.
    logger.debug("%s %s", outcome.label, outcome.event_id)
    return outcome.label, outcome.event_id


def _retry_or_give_up(
    task, runtime: WorkerRuntime, body: str, exc: TransientError
) -> tuple[str, str]:
    ids = failure_identifiers(body)
    if task.request.retries >= task.max_retries:
        reason = f"gave up after {task.request.retries} retries: {exc}"
        _dead_letter_or_retry(task, runtime, body, ids, reason)
        return "dead_lettered:transient", ids[0]
    try:
        runtime.store.mark_retrying(
            event_id=ids[0],
            raw_body=body,
            reason=str(exc),
            event_type=ids[1],
            appointment_id=ids[2],
        )
    except Exception as not_noted:  # noqa: BLE001 - the retry below is what matters
        logger.warning("retry of event %s not noted: %s", ids[0], not_noted.__class__.__name__)
    countdown = retry_countdown(task.request.retries)
    _watch_inflight_from(runtime, ids[0], time.time() + countdown)
    raise task.retry(exc=exc, countdown=countdown, argsrepr=_argsrepr(task))


def _dead_letter_unexpected(
    task, runtime: WorkerRuntime, body: str, exc: Exception
) -> tuple[str, str]:
    """Keep the body of an event whose processing hit a bug, with the reason, for replay."""
    # The class only: database errors quote their parameters, which may be personal data.
    logger.error("processing failed unexpectedly: %s", exc.__class__.__name__)
    ids = failure_identifiers(body)
    reason = f"worker error: {exc.__class__.__name__}: {exc}"
    _dead_letter_or_retry(task, runtime, body, ids, reason)
    return "dead_lettered:worker-error", ids[0]


def _dead_letter_or_retry(
    task, runtime: WorkerRuntime, body: str, ids: tuple[str, str | None, str | None], reason: str
) -> None:
    """Keep the body with ``reason``; when even that fails, retry instead of acknowledging."""
    try:
        runtime.store.dead_letter(
            event_id=ids[0],
            raw_body=body,
            reason=reason,
            errors=[{"path": "", "message": reason}],
            event_type=ids[1],
            appointment_id=ids[2],
        )
    except Exception as not_recorded:  # noqa: BLE001 - never ack an unrecorded event
        raise _retry_unrecorded(task, not_recorded) from None


def _retry_unrecorded(task, not_recorded: Exception):
    """The store could not take the failure record: retry, at the slowest pace, indefinitely.

    Acknowledging now would lose an event nothing has recorded; the message stays until the
    store takes it (a database that is back, or a fixed bug).
    """
    logger.error("failure of the event not recorded: %s", not_recorded.__class__.__name__)
    return task.retry(
        # Only the class travels: a database error's text may quote payload values.
        exc=TransientError(f"failure not recorded: {not_recorded.__class__.__name__}"),
        countdown=retry_countdown(task.request.retries),
        max_retries=task.request.retries + 1,
        argsrepr=_argsrepr(task),
    )


def _argsrepr(task) -> str | None:
    """What the retried message shows of its argument: the original's, if it had one."""
    return getattr(task.request, "argsrepr", None)


class HookTask(Task):
    """The run_hook task class: gives a hook run killed at the hard time limit another go."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # Called in the worker's main process when the hard limit killed the child. The message
        # is acknowledged by then; come back once the killed attempt's lease is over, when the
        # next claim counts it and starts the next attempt (or dead-letters the run).
        settings = settings_of(self.app)
        if isinstance(exc, TimeLimitExceeded) and args and settings is not None:
            self.apply_async(
                args=list(args),
                countdown=settings.hook_lease_seconds,
                argsrepr=f"(hook_run={args[0]})",
            )


@app.task(name=RUN_HOOK, bind=True, base=HookTask, max_retries=None)
def run_hook(self, run_id: int) -> str:
    """One attempt of one user hook run; a failure retries with backoff, then dead-letters."""
    runtime = runtime_for(self.app)
    settings = runtime.settings
    held = hook_outbox.claim(
        runtime.store,
        run_id,
        lease=timedelta(seconds=settings.hook_lease_seconds),
        max_attempts=settings.hook_max_retries + 1,
    )
    if isinstance(held, hook_outbox.Busy):
        # Another attempt holds the run, or its backoff is not over: never two at once.
        raise self.retry(
            countdown=held.retry_in + random.uniform(0.5, 1.5), argsrepr=_argsrepr(self)
        )
    if isinstance(held, hook_outbox.Finished):
        if held.just_now and held.state == "dead_lettered":
            logger.warning(
                "hook %s dead-lettered for event %s: its last attempt never finished",
                held.hook_name,
                held.event_id,
            )
            raise HookRunDeadLettered(held.hook_name, held.event_id, held.attempts, None)
        return f"skipped:{held.state or 'unknown'}"
    result = _attempt(runtime, held)
    if result.ok:
        hook_outbox.finish(runtime.store, held, state="done")
        return f"hook:{held.hook_name}"
    if result.permanent or held.attempt > settings.hook_max_retries:
        hook_outbox.finish(runtime.store, held, state="dead_lettered", error=result.error)
        logger.warning(
            "hook %s dead-lettered for event %s after %d attempt(s): %s",
            held.hook_name,
            held.event_id,
            held.attempt,
            result.error_class,
        )
        raise HookRunDeadLettered(held.hook_name, held.event_id, held.attempt, result.error_class)
    countdown = backoff_countdown(held.attempt - 1, settings.hook_retry_backoff)
    hook_outbox.release(runtime.store, held, error=result.error, retry_in=countdown)
    logger.warning(
        "hook %s failed for event %s (attempt %d of %d): %s; retrying in %.1f s",
        held.hook_name,
        held.event_id,
        held.attempt,
        settings.hook_max_retries + 1,
        result.error_class,
        countdown,
    )
    # Raised here, outside any except block: the hook's exception (and its message) is not
    # the context of the Retry that Flower and the logs show.
    raise self.retry(countdown=countdown, argsrepr=_argsrepr(self))


def _attempt(runtime, held: hook_outbox.HookClaim) -> Attempt:
    """Run the claimed hook once; a hook this worker lacks is a failed attempt, retried."""
    hook = runtime.registry.get(held.hook_name)
    if hook is None:
        # Another worker (the next version, in a rolling deploy) may have it: retry, and
        # dead-letter only after the usual attempts.
        return Attempt(
            ok=False,
            error_class="HookNotRegistered",
            error=f"HookNotRegistered: no hook named {held.hook_name} on the worker that took it",
        )
    try:
        event = HookEvent.from_applied(
            parse_event(held.raw_body, mode="tolerant"),
            changes=held.changes,
            prior_state=held.prior_state,
            raw=json.loads(held.raw_body),
        )
    except Exception as exc:  # noqa: BLE001 - the body was applied, so this is a bug of ours
        return Attempt(ok=False, error_class=exc.__class__.__name__, error=exc.__class__.__name__)
    return attempt(hook, event)


@worker_init.connect
def load_hooks_or_refuse_to_start(sender=None, **kwargs) -> None:
    """Stop a worker whose user hooks cannot be loaded before it takes (and acks) any event."""
    settings = settings_of(sender.app)
    if settings is None:
        return  # a worker of an app create_celery_app did not build runs none of our tasks
    try:
        # In the main process, before the fork: children inherit the imported hooks.
        hook_registry.load(settings.hook_modules)
    except Exception as exc:  # an ImportError, a misnamed entry point, a hook module's bug
        logger.critical("cannot load user hooks: %s: %s", exc.__class__.__name__, exc)
        # Celery logs and swallows an Exception from a signal handler; SystemExit stops it.
        raise SystemExit(f"engagehook worker: cannot load user hooks: {exc}") from exc
    logger.info(hook_registry.describe())
    # Before this worker takes a message: from now on every event gets runs of these hooks,
    # whichever worker applies it.
    store = Store(settings.store_url)
    try:
        sweeper.record_hooks(store)
    finally:
        store.engine.dispose()
