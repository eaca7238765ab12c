"""What one worker process builds once and every task reuses: settings, store, hooks."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from core.config import Settings
from handlers.hooks import HookRegistry
from handlers.hooks import registry as default_registry
from handlers.store import Store
from workers.celery_app import settings_of


@dataclass
class WorkerRuntime:
    """The dependencies tasks pass to the processing code (no globals below this line)."""

    settings: Settings
    store: Store
    registry: HookRegistry
    broker_redis: redis.Redis | None = None  # Redis mode only: the in-flight registry's home


_runtime: WorkerRuntime | None = None


def build_runtime(settings: Settings, registry: HookRegistry | None = None) -> WorkerRuntime:
    """Open the store and load the user hooks named by the settings and entry points."""
    registry = registry or default_registry
    registry.load(settings.hook_modules)
    broker_redis = None
    if settings.redis_url:
        broker_redis = redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
    return WorkerRuntime(
        settings=settings,
        store=Store(settings.store_url),
        registry=registry,
        broker_redis=broker_redis,
    )


def get_runtime(settings: Settings) -> WorkerRuntime:
    """The runtime of this process, built on first use (after the prefork fork)."""
    global _runtime
    if _runtime is None:
        _runtime = build_runtime(settings)
    return _runtime


def runtime_for(app: object) -> WorkerRuntime:
    """The runtime of this process, built from the settings of the Celery app running the task."""
    settings = settings_of(app)
    if settings is None:
        raise RuntimeError("the task runs on a Celery app create_celery_app did not build")
    return get_runtime(settings)


def set_runtime(runtime: WorkerRuntime | None) -> None:
    """Install a runtime explicitly (tests, or an embedding application)."""
    global _runtime
    _runtime = runtime
