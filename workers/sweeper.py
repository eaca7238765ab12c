"""Background repair in each worker's main process: give back what a dead process held.

- Embedded broker: messages held longer than VISIBILITY_TIMEOUT by a worker that died are
  made visible again (Redis does this itself through its visibility timeout).
- Redis broker: webhooks lost between kombu's BRPOP and its unacked bookkeeping (a worker
  main process SIGKILLed in that window) are republished from the in-flight registry.
- Hook outbox: hook runs committed with their event but never finished (their message was
  lost, or the publish after the commit failed) are published again.
- Hook registrations: the hooks this worker loaded are recorded again every minute, so
  events applied by workers without them still get their runs (handlers/hook_registrations.py).
- Retention: finished event records older than ENGAGEHOOK_RETENTION_DAYS are pruned about
  once an hour (workers/retention.py).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from celery import Celery
from celery.signals import worker_ready
from celery.signals import worker_shutdown

from core.config import Settings
from core.names import EVENT_ID_HEADER
from core.names import PROCESS_WEBHOOK
from core.names import RUN_HOOK
from handlers import hook_outbox
from handlers import hook_registrations
from handlers.hooks import registry as hook_registry
from handlers.store import Store
from workers import inflight
from workers.celery_app import settings_of
from workers.retention import RetentionSchedule
from workers.retention import redis_claim

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 15.0  # at most; shorter when VISIBILITY_TIMEOUT is short
REFRESH_SECONDS = hook_registrations.REFRESH_INTERVAL.total_seconds()
_stop = threading.Event()


def sweep(settings: Settings, store: Store, celery_app: Celery) -> dict[str, int]:
    """One repair pass; returns how many messages and hook runs it gave back."""
    restored = 0
    if settings.embedded:
        from workers.embedded_broker import restore_orphans

        restored = restore_orphans(settings.broker_url, settings.visibility_timeout)
    recovered = 0
    if settings.redis_url:
        try:
            recovered = _recover_inflight(settings, store, celery_app)
        except Exception as exc:  # noqa: BLE001 - the hook outbox below must still be swept
            logger.warning("in-flight recovery failed: %s", exc.__class__.__name__)
    # A hook that is legitimately retrying holds its run for at most a few minutes.
    stale_after = timedelta(seconds=2 * settings.visibility_timeout)
    republished = 0
    for run_id in hook_outbox.lost_runs(store, stale_after):
        celery_app.send_task(RUN_HOOK, args=[run_id], argsrepr=f"(hook_run={run_id})")
        republished += 1
    if restored or republished:
        logger.warning("sweeper gave back %d messages and %d hook runs", restored, republished)
    return {
        "restored_messages": restored,
        "republished_webhooks": recovered,
        "republished_hook_runs": republished,
    }


def record_hooks(store: Store) -> None:
    """Record the hooks this worker loaded, so every event gets their runs (rolling deploys)."""
    hooks = hook_registry.registrations()
    if not hooks:
        return
    try:
        hook_registrations.record(store.engine, hooks)
    except Exception as exc:  # noqa: BLE001 - the next pass records them; the class says why
        logger.warning("hooks loaded here not recorded in the store: %s", exc.__class__.__name__)


def _recover_inflight(settings: Settings, store: Store, celery_app: Celery) -> int:
    import redis

    def republish(event_id: str, body: str) -> None:
        celery_app.send_task(
            PROCESS_WEBHOOK,
            args=[body],
            headers={EVENT_ID_HEADER: event_id},
            argsrepr=f"(event_id={event_id!r}, recovered)",
            kwargsrepr="{}",
        )

    assert settings.redis_url is not None  # the in-flight registry exists in Redis mode only
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        counts = inflight.recover(client, store, republish, settings.visibility_timeout)
        return counts["republished"]
    finally:
        client.close()


def _retention(settings: Settings, store: Store) -> RetentionSchedule:
    if settings.redis_url and settings.retention_days:
        import redis

        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        return RetentionSchedule(settings, store, claim=redis_claim(client))
    return RetentionSchedule(settings, store)


def _loop(settings: Settings, celery_app: Celery) -> None:
    store = Store(settings.store_url)
    retention = _retention(settings, store)
    interval = min(SWEEP_INTERVAL_SECONDS, max(1.0, settings.visibility_timeout / 2))
    hooks_recorded_at = time.monotonic()  # at start by workers.tasks, before any message
    while not _stop.wait(interval):
        if time.monotonic() - hooks_recorded_at >= REFRESH_SECONDS:
            record_hooks(store)
            hooks_recorded_at = time.monotonic()
        try:
            sweep(settings, store, celery_app)
        except Exception:  # noqa: BLE001 - the next pass tries again
            logger.exception("sweep failed")
        try:
            retention.run_if_due()
        except Exception:  # noqa: BLE001 - the next interval tries again
            logger.exception("retention failed")


@worker_ready.connect
def _start(sender=None, **kwargs) -> None:
    celery_app = sender.app
    settings = settings_of(celery_app)
    if settings is None:
        return  # not a worker of create_celery_app's: nothing of ours to repair
    threading.Thread(
        target=_loop, args=(settings, celery_app), name="engagehook-sweeper", daemon=True
    ).start()


@worker_shutdown.connect
def _stop_loop(**kwargs) -> None:
    _stop.set()
