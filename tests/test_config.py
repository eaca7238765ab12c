"""Configuration: read in one place, invalid values stop every role at start, secrets masked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigError
from core.config import Settings
from tests.test_compose import variables_settings_reads

OPERATIONS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"

INVALID = [
    ("VISIBILITY_TIMEOUT", "abc", "VISIBILITY_TIMEOUT must be a whole number, got 'abc'"),
    ("VISIBILITY_TIMEOUT", "0", "VISIBILITY_TIMEOUT must be greater than 0"),
    ("MAX_BODY_BYTES", "-5", "MAX_BODY_BYTES must be greater than 0"),
    ("VALIDATION_MODE", "lenient", "VALIDATION_MODE must be one of"),
    ("REDIS_URL", "http://cache:6379", "REDIS_URL must start with redis://"),
    ("LOG_LEVEL", "chatty", "LOG_LEVEL must be one of"),
    ("WORKER_METRICS_PORT", "70000", "WORKER_METRICS_PORT must be a TCP port"),
    ("WORKER_METRICS_PORT", "http", "WORKER_METRICS_PORT must be a TCP port"),
    ("FLOWER_BASIC_AUTH", "admin", "FLOWER_BASIC_AUTH must be user:password pairs"),
    ("FLOWER_BASIC_AUTH", "admin:", "FLOWER_BASIC_AUTH must be user:password pairs"),
]
SECRETS = {
    "WEBHOOK_TOKEN": "tok-5b1f0c7e",
    "WEBHOOK_HMAC_SECRET": "hmac-old-91ad,hmac-new-22fe",
    "ADMIN_TOKEN": "adm-7e3c04aa",
    "REDIS_URL": "redis://:redis-pw-3a9c@cache:6379/0",
    "DATABASE_URL": "postgresql+psycopg://engagehook:pg-pw-0d4e@db:5432/engagehook",
    "FLOWER_BASIC_AUTH": "ops:flower-pw-6f21",
}
SECRET_VALUES = [
    "tok-5b1f0c7e",
    "hmac-old-91ad",
    "hmac-new-22fe",
    "adm-7e3c04aa",
    "redis-pw-3a9c",
    "pg-pw-0d4e",
    "flower-pw-6f21",
]


def engagehook(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engagehook.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


class TestFromEnv:
    """Settings.from_env is the one reader of the environment."""

    def test_nothing_set_gives_the_documented_defaults(self):
        settings = Settings.from_env({})
        assert settings.embedded
        assert (settings.visibility_timeout, settings.max_body_bytes) == (300, 1_048_576)
        assert (settings.validation_mode, settings.log_level) == ("tolerant", "INFO")
        assert settings.worker_metrics_port is None and settings.flower_basic_auth == ()

    @pytest.mark.parametrize("name,raw,message", INVALID)
    def test_invalid_value_is_refused_with_what_to_fix(self, name, raw, message):
        with pytest.raises(ConfigError, match=re.escape(message)):
            Settings.from_env({name: raw})

    def test_values_are_normalised(self):
        settings = Settings.from_env(
            {"LOG_LEVEL": "warning", "WORKER_METRICS_PORT": "9808", "FLOWER_BASIC_AUTH": "a:b, c:d"}
        )
        assert settings.log_level == "WARNING"
        assert settings.worker_metrics_port == 9808
        assert settings.flower_basic_auth == ("a:b", "c:d")

    def test_every_variable_read_is_documented_in_the_operations_table(self):
        documented = set(re.findall(r"^\| `([A-Z_]+)` \|", OPERATIONS.read_text(), re.MULTILINE))
        assert variables_settings_reads() - documented == set()


@pytest.mark.slow
class TestFailFast:
    """Every role stops before doing anything when the configuration is invalid."""

    @pytest.mark.parametrize(
        "command", [["worker"], ["web"], ["serve"], ["flower"], ["config"], ["migrate"]]
    )
    def test_invalid_visibility_timeout_stops_the_role_with_the_message(self, command, tmp_path):
        result = engagehook(
            command, {"VISIBILITY_TIMEOUT": "abc", "ENGAGEHOOK_DATA_DIR": str(tmp_path / "var")}
        )
        assert result.returncode != 0
        assert result.stderr.strip() == (
            "engagehook: configuration error: VISIBILITY_TIMEOUT must be a whole number, got 'abc'"
        )
        assert not (tmp_path / "var").exists()  # nothing was created before the check

    @pytest.mark.parametrize("name,raw,message", INVALID[2:])
    def test_each_invalid_variable_stops_the_worker(self, name, raw, message, tmp_path):
        result = engagehook(["worker"], {name: raw, "ENGAGEHOOK_DATA_DIR": str(tmp_path)})
        assert result.returncode != 0
        assert message in result.stderr


class TestConfigCommand:
    """`engagehook config` prints the effective configuration with every secret masked."""

    def test_config_prints_effective_values_and_masks_secrets(self, tmp_path):
        result = engagehook(
            ["config"],
            {**SECRETS, "VISIBILITY_TIMEOUT": "420", "ENGAGEHOOK_DATA_DIR": str(tmp_path)},
        )
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        assert shown["visibility_timeout"] == 420
        assert shown["webhook_tokens"] == ["***"]
        assert shown["webhook_hmac_secrets"] == ["***", "***"]
        assert shown["admin_token"] == "***"
        assert shown["flower_basic_auth"] == ["ops:***"]
        assert shown["redis_url"] == "redis://:***@cache:6379/0"
        assert shown["database_url"] == "postgresql+psycopg://engagehook:***@db:5432/engagehook"
        leaked = [
            secret for secret in SECRET_VALUES if secret in result.stdout or secret in result.stderr
        ]
        assert leaked == []


class TestRetryWaitsFitTheVisibilityTimeout:
    """Issue 14.9: a retry held longer than VISIBILITY_TIMEOUT is delivered again, so none is."""

    @pytest.fixture
    def timeout_of(self):
        """Run the tasks module under a given VISIBILITY_TIMEOUT, restored afterwards."""
        # Imported here, not at collection: registering the tasks early changes other tests.
        from workers import tasks

        before = tasks.app.settings

        def use(timeout: int):
            tasks.app.settings = Settings(visibility_timeout=timeout)
            return tasks

        yield use
        tasks.app.settings = before

    @pytest.mark.parametrize("timeout", [10, 60, 121, 300])
    def test_every_event_and_hook_wait_is_at_most_half_the_timeout(self, timeout, timeout_of):
        tasks = timeout_of(timeout)
        waits = [tasks.retry_countdown(n) for n in range(tasks.EVENT_MAX_RETRIES + 2)] + [
            tasks.backoff_countdown(n, 1.0) for n in range(Settings().hook_max_retries + 2)
        ]
        assert max(waits) <= timeout / 2

    def test_sixty_seconds_still_spans_most_of_a_minute_long_outage(self, timeout_of):
        tasks = timeout_of(60)
        schedules = [
            sum(tasks.retry_countdown(n) for n in range(tasks.EVENT_MAX_RETRIES))
            for _ in range(200)
        ]
        assert min(schedules) >= 45


class TestOnlyTheEnvironmentsOwnAppReadsIt:
    """Issue 13: importing a name or building a test-config app reads no environment."""

    BROKEN = {**os.environ, "VISIBILITY_TIMEOUT": "abc"}

    def run(self, code: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=self.BROKEN,
            cwd=Path(__file__).resolve().parent.parent,
            timeout=120,
        )

    def test_a_test_config_app_ignores_a_broken_environment(self, tmp_path):
        config = {"ENGAGEHOOK_DATA_DIR": str(tmp_path)}
        code = (
            "from ingest.app import create_app\n"
            f"app = create_app({config!r})\n"
            "print(app.test_client().get('/healthz').status_code)\n"
        )
        done = self.run(code)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[-1] == "200"

    def test_importing_the_celery_app_module_builds_no_app(self):
        done = self.run("import workers.celery_app as m; print(m._app is None)")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[-1] == "True"

    def test_the_environments_app_is_built_on_first_use_and_refuses_a_bad_value(self):
        done = self.run("import workers.celery_app as m; m.app")
        assert done.returncode != 0
        assert "VISIBILITY_TIMEOUT" in done.stderr
