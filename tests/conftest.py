"""Pytest fixtures available in all test modules (helpers live in builders.py and fakes.py)."""

from __future__ import annotations

import os
from typing import TypeVar

import pytest
from hypothesis import settings

from core.config import Settings
from handlers.hooks import HookRegistry
from handlers.store import Store
from ingest.app import create_app
from tests import services
from tests.fakes import RecordingQueue
from tests.faults.harness import PrivateRedis
from workers.runtime import WorkerRuntime
from workers.runtime import set_runtime

StoreT = TypeVar("StoreT", bound=Store)

# CI runs the property tests with a fixed seed, so a submission is judged on the same examples
# every time; a developer's run (no HYPOTHESIS_PROFILE) explores new ones on each run.
settings.register_profile("ci", derandomize=True)
if os.environ.get("HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real: needs the real Redis/PostgreSQL services")


@pytest.fixture
def data_dir(tmp_path):
    """An empty ENGAGEHOOK_DATA_DIR."""
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture
def env(data_dir):
    """Environment variables for an embedded-mode process (tests add to it)."""
    return {"ENGAGEHOOK_DATA_DIR": str(data_dir)}


@pytest.fixture
def queue():
    """A queue that records what ingest enqueued."""
    return RecordingQueue()


@pytest.fixture
def app(env, queue):
    """The ingest app wired to the recording queue."""
    return create_app(env, queue=queue)


@pytest.fixture
def client(app):
    """A test client of the ingest app."""
    return app.test_client()


def _missing(service: str) -> None:
    # CI (.ci/run) sets ENGAGEHOOK_REQUIRE_SERVICES=1: there a missing service is a failure,
    # never a silent skip of the integration tests.
    message = f"{service} is not reachable (CI starts it; see .ci/run)"
    if os.environ.get("ENGAGEHOOK_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def require_postgres() -> None:
    if not services.postgres_available():
        _missing("PostgreSQL on 127.0.0.1:5432")


def require_redis() -> None:
    if not services.redis_available():
        _missing("Redis on 127.0.0.1:6379")


@pytest.fixture
def postgres_url():
    """A PostgreSQL URL whose search path is a fresh schema, dropped afterwards."""
    require_postgres()
    with services.fresh_postgres_schema() as url:
        yield url


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.fake),
        pytest.param("postgresql", marks=pytest.mark.real),
    ]
)
def store_url(request, tmp_path):
    """The store's URL on each supported backend: a SQLite file, a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url):
    """A migrated, empty store on each backend."""
    store = Store(store_url)
    store.migrate()
    yield store
    store.engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path):
    """A migrated store on SQLite only, for tests about logic rather than backends."""
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    store.migrate()
    yield store
    store.engine.dispose()


@pytest.fixture
def worker_store(tmp_path):
    """Makes a store (migrated here) the one the task code uses, as in a worker process.

    For stores that fail on purpose: the tasks run through Celery's ``apply`` against it.
    """
    stores: list[Store] = []

    def install(store: StoreT) -> StoreT:
        store.migrate()
        set_runtime(WorkerRuntime(Settings(data_dir=tmp_path), store, HookRegistry()))
        stores.append(store)
        return store

    yield install
    set_runtime(None)
    for store in stores:
        store.engine.dispose()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own, for tests that kill, freeze or fill their broker."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_url():
    """A real Redis DB for this test, flushed before and after."""
    require_redis()
    import redis

    url = services.redis_url(services.free_redis_db())
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
