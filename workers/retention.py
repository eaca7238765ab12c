"""Retention on a schedule: finished event records older than ENGAGEHOOK_RETENTION_DAYS go.

Every worker's sweeper asks ``RetentionSchedule.run_if_due`` on each pass; it prunes at most
once per PRUNE_INTERVAL_SECONDS per process and, with Redis, once per interval across all
workers (the first to set a short-lived claim key). The pruning itself is ``Store.prune``,
the same function ``engagehook prune --older-than`` runs, so what counts as finished is
decided in one place.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from core.config import Settings

if TYPE_CHECKING:
    import redis

    from handlers.store import Store

logger = logging.getLogger(__name__)

PRUNE_INTERVAL_SECONDS = 3600.0
CLAIM_KEY = "engagehook.retention.claimed"


def redis_claim(
    client: redis.Redis, interval: float = PRUNE_INTERVAL_SECONDS
) -> Callable[[], bool]:
    """A claim that only one worker of the deployment wins per interval."""

    def claim() -> bool:
        owner = f"{socket.gethostname()}:{id(client)}"
        return bool(client.set(CLAIM_KEY, owner, nx=True, ex=max(1, int(interval))))

    return claim


class RetentionSchedule:
    """Prunes when ``interval`` seconds have passed since this process last tried."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        claim: Callable[[], bool] | None = None,
        interval: float = PRUNE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.days = settings.retention_days
        self.store = store
        self.claim = claim or (lambda: True)
        self.interval = interval
        self.clock = clock
        self._last_try: float | None = None

    def run_if_due(self) -> int | None:
        """Prune if due; the number of event records removed, or None when nothing ran."""
        if self.days <= 0:
            return None
        now = self.clock()
        if self._last_try is not None and now - self._last_try < self.interval:
            return None
        self._last_try = now  # a failed or lost attempt waits for the next interval too
        if not self.claim():
            return None  # another worker prunes this interval
        removed = self.store.prune(timedelta(days=self.days))
        logger.info(
            "retention pruned %d finished event records older than %d days",
            removed,
            self.days,
            extra={"pruned": removed, "retention_days": self.days},
        )
        return removed
