"""The worker ceiling: a no-op task on a Celery app with engagehook's own settings.

``celery -A bench.noop_worker worker`` runs it with the same broker, acks, prefetch and
events as ``engagehook worker``, so the only difference is the work inside the task.
"""

from __future__ import annotations

import os

from celery import Celery

from core.config import Settings
from workers.celery_app import celery_config

NOOP_TASK = "bench.noop"

app = Celery("engagehook-bench")
app.conf.update(celery_config(Settings.from_env(os.environ)))


@app.task(name=NOOP_TASK)
def noop(body: str) -> str:
    """Take the webhook body and do nothing with it."""
    return "noop"
