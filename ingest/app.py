"""The Flask app factory for the ingest endpoint."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Flask

from core.config import Settings


def create_app(test_config: Mapping[str, str] | None = None, *, queue=None) -> Flask:
    """Build the ingest app from the environment, or from ``test_config`` (same variable names)."""
    from ingest import admin
    from ingest import console
    from ingest import errors
    from ingest import health
    from ingest import metrics
    from ingest import views
    from ingest.queue import CeleryQueue
    from ingest.queue import init_app as init_queue

    settings = Settings.from_env(os.environ if test_config is None else test_config)
    app = Flask("ingest")
    app.config.from_mapping(
        TESTING=test_config is not None,
        ENGAGEHOOK_SETTINGS=settings,
        # Werkzeug refuses larger bodies with 413 while reading, also when chunked.
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    if queue is None:
        from ingest.queue import SpoolingQueue
        from ingest.spool import Spool
        from workers import celery_app

        # The environment's app (the one `celery -A` finds) serves a real process; a test
        # config gets its own, built from that config alone.
        celery = celery_app.app if test_config is None else celery_app.create_celery_app(settings)
        # While the broker cannot take a payload it waits in the spool on local disk.
        queue = SpoolingQueue(
            CeleryQueue(celery), Spool(settings.spool_dir, settings.spool_max_bytes)
        )
        if test_config is None:
            queue.start()  # drains what a previous run spooled (gunicorn calls us per worker)
    init_queue(app, queue)
    errors.init_app(app)
    metrics.init_app(app, settings)
    app.register_blueprint(views.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(admin.bp)
    console.init_app(app, settings)
    return app
