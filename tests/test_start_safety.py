"""Issue 14.10-14.12: configurations that split, lose or double data are refused at start,
and read-only commands never migrate a store nor create files.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.migration import MigrationContext

from core.config import ConfigError
from core.config import Settings
from handlers.migrate import upgrade
from handlers.store import Store

READ_ONLY = [
    ["event", "e-1"],
    ["appointment", "a-1"],
    ["dead-letters", "list"],
    ["dead-letters", "show", "e-1"],
]


def engagehook(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """``engagehook args`` with only ``env`` of engagehook's variables set, run in ``cwd``."""
    base = {k: v for k, v in os.environ.items() if not _ours(k)}
    return subprocess.run(
        [sys.executable, "-m", "engagehook.cli", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ours(name: str) -> bool:
    return name.startswith("ENGAGEHOOK_") or name in {
        "REDIS_URL",
        "DATABASE_URL",
        "VISIBILITY_TIMEOUT",
        "PROMETHEUS_MULTIPROC_DIR",
    }


def revision(url: str) -> str | None:
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        store.engine.dispose()


class TestSharedStore:
    """14.10: with Redis, every host must point at the same store."""

    def test_redis_without_database_url_is_refused_with_what_to_set(self):
        settings = Settings.from_env({"REDIS_URL": "redis://cache:6379/0"})
        with pytest.raises(ConfigError, match="Set DATABASE_URL"):
            settings.require_shared_store()

    @pytest.mark.parametrize(
        "env",
        [
            {},  # embedded: one host by definition
            {"REDIS_URL": "redis://cache:6379/0", "DATABASE_URL": "sqlite:////srv/one.sqlite3"},
        ],
    )
    def test_embedded_or_an_explicit_store_is_accepted(self, env):
        Settings.from_env(env).require_shared_store()

    @pytest.mark.slow
    @pytest.mark.parametrize("role", [["worker"], ["web"], ["serve"]])
    def test_each_store_role_refuses_to_start(self, role, tmp_path):
        result = engagehook(
            [*role], {"REDIS_URL": "redis://127.0.0.1:1/0", "ENGAGEHOOK_DATA_DIR": "var"}, tmp_path
        )
        assert result.returncode != 0
        assert "REDIS_URL is set but DATABASE_URL is not" in result.stderr
        assert "Set DATABASE_URL" in result.stderr
        assert not (tmp_path / "var").exists()


class TestUrlsAndBounds:
    """14.12: odd URLs and absurd values stop `engagehook config` and every role."""

    @pytest.mark.parametrize(
        "name,raw,message",
        [
            ("DATABASE_URL", "postgres://u@db/engagehook", "write postgresql+psycopg://"),
            ("DATABASE_URL", "notaurl", "DATABASE_URL is not a SQLAlchemy URL"),
            ("DATABASE_URL", "mysql://u@db/engagehook", "driver that is not installed"),
            ("DATABASE_URL", "postgresql+psycopg://u@db", "DATABASE_URL names no database"),
            ("REDIS_URL", "redis://cache:port/0", "REDIS_URL is not a usable Redis URL"),
            ("REDIS_URL", "redis://cache:6379/zero", "must end with a database number"),
            ("VISIBILITY_TIMEOUT", "99999999999", "between 10 and 86400"),
            ("VISIBILITY_TIMEOUT", "5", "between 10 and 86400"),
            ("MAX_BODY_BYTES", "99999999999", "MAX_BODY_BYTES must be between"),
            ("ENGAGEHOOK_SPOOL_MAX_BYTES", "10", "ENGAGEHOOK_SPOOL_MAX_BYTES must be between"),
            ("ENGAGEHOOK_HOOK_MAX_RETRIES", "100000", "ENGAGEHOOK_HOOK_MAX_RETRIES must be"),
            ("ENGAGEHOOK_HOOK_RETRY_BACKOFF", "1e9", "ENGAGEHOOK_HOOK_RETRY_BACKOFF must be"),
        ],
    )
    def test_refused_with_what_to_set(self, name, raw, message):
        with pytest.raises(ConfigError, match=re.escape(message)):
            Settings.from_env({name: raw})

    def test_a_sixty_second_visibility_timeout_is_accepted(self):
        assert Settings.from_env({"VISIBILITY_TIMEOUT": "60"}).visibility_timeout == 60

    @pytest.mark.slow
    def test_config_command_refuses_postgres_scheme_without_a_traceback(self, tmp_path):
        result = engagehook(["config"], {"DATABASE_URL": "postgres://u:pw-71c@db/x"}, tmp_path)
        assert result.returncode != 0
        assert "postgresql+psycopg://" in result.stderr
        assert "Traceback" not in result.stderr
        assert "pw-71c" not in result.stderr


@pytest.mark.slow
class TestReadOnlyCommands:
    """14.11: inspection never creates files nor migrates; it says what to do instead."""

    @pytest.mark.parametrize("args", [*READ_ONLY, ["config"]])
    def test_no_environment_creates_no_var_directory(self, args, tmp_path):
        result = engagehook(args, {}, tmp_path)
        assert not (tmp_path / "var").exists()
        if args != ["config"]:
            assert result.returncode == 1
            assert "there is no store" in result.stderr
            assert "engagehook migrate" in result.stderr

    @pytest.mark.parametrize("args", READ_ONLY)
    def test_an_old_schema_is_reported_not_upgraded(self, args, tmp_path):
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
        store = Store(url)
        upgrade(store.engine, "0001")
        store.engine.dispose()
        result = engagehook(args, {"DATABASE_URL": url}, tmp_path)
        assert result.returncode == 2
        assert "revision 0001" in result.stderr and "run `engagehook migrate`" in result.stderr
        assert revision(url) == "0001"

    def test_worker_refuses_a_schema_behind_and_leaves_it(self, tmp_path):
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
        store = Store(url)
        upgrade(store.engine, "0001")
        store.engine.dispose()
        result = engagehook(
            ["worker"], {"DATABASE_URL": url, "ENGAGEHOOK_DATA_DIR": "var"}, tmp_path
        )
        assert result.returncode != 0
        assert "run `engagehook migrate`" in result.stderr
        assert revision(url) == "0001"

    def test_migrate_is_what_upgrades(self, tmp_path):
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
        store = Store(url)
        upgrade(store.engine, "0001")
        store.engine.dispose()
        assert engagehook(["migrate"], {"DATABASE_URL": url}, tmp_path).returncode == 0
        result = engagehook(["event", "e-1"], {"DATABASE_URL": url}, tmp_path)
        assert result.returncode == 1 and "no event 'e-1'" in result.stderr
