"""Where the real services for integration tests live, and whether they answer."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy

REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))
POSTGRES_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def reachable(host: str, port: int) -> bool:
    """True when something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def redis_available() -> bool:
    return reachable(REDIS_HOST, REDIS_PORT)


def postgres_available() -> bool:
    return reachable("127.0.0.1", 5432)


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def free_redis_db() -> int:
    """A Redis DB number for one test session, spread so parallel runs rarely share one."""
    return 1 + (os.getpid() % 15)


def postgres_schema_url(schema: str) -> str:
    """The test database with ``schema`` first on the search path (one schema per test)."""
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A URL of the test database whose search path is a new schema, dropped afterwards."""
    schema = new_schema_name()
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
