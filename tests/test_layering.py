"""Imports point one way: ingest stays thin, handlers know nothing of Celery or Flask."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_after(import_line: str, modules: list[str]) -> list[str]:
    code = f"import sys; {import_line}; print(','.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_ingest_loads_no_worker_logic_no_handlers_no_marshmallow():
    assert (
        loaded_after(
            "import ingest.app; ingest.app.create_app({})",
            ["workers.tasks", "handlers", "marshmallow", "workers.validation"],
        )
        == []
    )


@pytest.mark.parametrize("module", ["handlers", "handlers.store", "handlers.hooks"])
def test_handlers_load_no_celery_no_flask_no_workers(module):
    assert loaded_after(f"import {module}", ["celery", "flask", "workers", "ingest"]) == []


def test_celery_app_module_does_not_import_the_tasks():
    assert loaded_after("import workers.celery_app", ["workers.tasks", "handlers"]) == []
