"""docker-compose.yml and the Dockerfile cannot rot: they are checked against the CLI and config.

No Docker engine is needed: the compose file is parsed and interpolated here, each engagehook
service's command must parse with the real CLI, its variables must be ones Settings reads and
form a valid configuration, and the healthchecks must point where the commands listen. The
last class boots every service's command against the real Redis and PostgreSQL and runs the
service's own healthcheck against it.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from engagehook.cli import build_parser
from engagehook.config import Settings
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import wait_until

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENGAGEHOOK_SERVICES = {"migrate": "migrate", "web": "web", "worker": "worker", "flower": "flower"}
# What an operator puts in .env; the compose file refuses to start without the first three.
DOTENV = {
    "POSTGRES_PASSWORD": "pg-secret",
    "WEBHOOK_TOKEN": "hook-token",
    "FLOWER_BASIC_AUTH": "ops:flower-secret",
}
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


class MissingVariable(Exception):
    """Compose would refuse to start: a ${VAR:?message} variable is unset."""


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's variable interpolation for the forms the file uses ($$ escapes a dollar)."""

    def one(match: re.Match) -> str:
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = values.get(name)
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else arg
        if op in (":?", "?"):
            if not value:
                raise MissingVariable(f"{name}: {arg}")
            return value
        return value or ""

    parts = text.split("$$")
    return "$".join(_VARIABLE.sub(one, part) for part in parts)


def resolve(node: Any, values: dict[str, str]) -> Any:
    """The compose document with every string interpolated."""
    if isinstance(node, dict):
        return {key: resolve(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, values) for value in node]
    return interpolate(node, values) if isinstance(node, str) else node


def load_compose(values: dict[str, str] | None = None) -> dict[str, Any]:
    return resolve(yaml.safe_load(COMPOSE.read_text()), DOTENV if values is None else values)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


class RecordingEnviron(dict):
    """An environment that remembers every variable name it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


def variables_settings_reads() -> set[str]:
    environ = RecordingEnviron()
    Settings.from_env(environ)
    return environ.asked


def dockerfile_env() -> dict[str, str]:
    """The ENV of the Dockerfile's final stage (what every container starts with)."""
    final = DOCKERFILE.read_text().split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", final, flags=re.MULTILINE):
        for pair in shlex.split(block.replace("\\\n", " ")):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def healthcheck_command(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", test[1]]
    assert test[0] == "CMD", test
    return list(test[1:])


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


class TestEngagehookServices:
    """Each engagehook service runs a real CLI command with a configuration Settings accepts."""

    @pytest.mark.parametrize("service,subcommand", ENGAGEHOOK_SERVICES.items())
    def test_service_command_parses_with_the_cli(self, compose, service, subcommand):
        args = build_parser().parse_args(compose["services"][service]["command"])
        assert args.command == subcommand

    @pytest.mark.parametrize("service", ENGAGEHOOK_SERVICES)
    def test_service_runs_the_image_built_from_this_repository(self, compose, service):
        spec = compose["services"][service]
        assert spec["build"] == "."
        assert spec["image"] == compose["services"]["web"]["image"]
        assert "entrypoint" not in spec  # the image's ENTRYPOINT is `engagehook`

    @pytest.mark.parametrize("service", ENGAGEHOOK_SERVICES)
    def test_service_variables_are_all_read_by_settings(self, compose, service):
        unknown = set(environment(compose["services"][service])) - variables_settings_reads()
        assert unknown == set()

    @pytest.mark.parametrize("service", ENGAGEHOOK_SERVICES)
    def test_service_environment_is_a_valid_configuration(self, compose, service):
        env = {**dockerfile_env(), **environment(compose["services"][service])}
        settings = Settings.from_env(env)
        assert settings.data_dir == Path("/var/lib/engagehook")

    @pytest.mark.parametrize("service", ["web", "worker", "flower"])
    def test_service_uses_the_compose_redis(self, compose, service):
        settings = Settings.from_env(environment(compose["services"][service]))
        assert not settings.embedded
        assert urlsplit(settings.redis_url).hostname == "redis"

    @pytest.mark.parametrize("service", ["migrate", "web", "worker"])
    def test_service_uses_the_compose_postgres_with_its_credentials(self, compose, service):
        url = urlsplit(Settings.from_env(environment(compose["services"][service])).store_url)
        postgres = environment(compose["services"]["postgres"])
        assert url.scheme == "postgresql+psycopg"
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert url.username == postgres["POSTGRES_USER"]
        assert url.password == postgres["POSTGRES_PASSWORD"] == DOTENV["POSTGRES_PASSWORD"]
        assert url.path == "/" + postgres["POSTGRES_DB"]

    def test_flower_gets_no_database_credentials(self, compose):
        assert "DATABASE_URL" not in environment(compose["services"]["flower"])

    @pytest.mark.parametrize("secret", sorted(DOTENV))
    def test_compose_refuses_to_start_without_each_secret(self, secret):
        with pytest.raises(MissingVariable, match=secret):
            load_compose({k: v for k, v in DOTENV.items() if k != secret})

    def test_web_requires_authentication(self, compose):
        settings = Settings.from_env(environment(compose["services"]["web"]))
        assert settings.webhook_token == DOTENV["WEBHOOK_TOKEN"]

    def test_flower_requires_basic_auth(self, compose):
        settings = Settings.from_env(environment(compose["services"]["flower"]))
        assert settings.flower_basic_auth == (DOTENV["FLOWER_BASIC_AUTH"],)


class TestHealthchecks:
    """Healthchecks exist and point where the service's command listens."""

    def test_web_healthcheck_calls_readyz_on_the_port_web_binds(self, compose):
        web = compose["services"]["web"]
        port = option(web["command"], "--port")
        assert option(web["command"], "--host") == "0.0.0.0"
        assert f"http://127.0.0.1:{port}/readyz" in " ".join(healthcheck_command(web))
        assert all(mapping.endswith(f":{port}") for mapping in web["ports"])

    def test_flower_healthcheck_calls_flower_on_its_port(self, compose):
        flower = compose["services"]["flower"]
        port = option(flower["command"], "--port")
        assert f"http://127.0.0.1:{port}/healthcheck" in " ".join(healthcheck_command(flower))

    def test_worker_healthcheck_pings_both_roles_of_this_worker_through_the_broker(self, compose):
        check = " ".join(healthcheck_command(compose["services"]["worker"]))
        assert "-A workers.celery_app inspect ping" in check
        assert "events@$HOSTNAME" in check and "hooks@$HOSTNAME" in check

    def test_redis_healthcheck_pings(self, compose):
        assert healthcheck_command(compose["services"]["redis"]) == ["redis-cli", "ping"]

    def test_postgres_healthcheck_asks_for_the_engagehook_database(self, compose):
        check = healthcheck_command(compose["services"]["postgres"])
        assert check[0] == "pg_isready"
        assert option(check, "-d") == environment(compose["services"]["postgres"])["POSTGRES_DB"]


class TestDurabilityAndScaling:
    """Queued messages survive restarts; worker and web replicas can be added freely."""

    def test_redis_persists_with_aof_and_never_evicts(self, compose):
        command = compose["services"]["redis"]["command"]
        assert option(command, "--appendonly") == "yes"
        assert option(command, "--maxmemory-policy") == "noeviction"
        assert any(volume.endswith(":/data") for volume in compose["services"]["redis"]["volumes"])

    def test_postgres_keeps_its_data_in_a_named_volume(self, compose):
        volumes = compose["services"]["postgres"]["volumes"]
        named = [v.split(":")[0] for v in volumes if v.endswith(":/var/lib/postgresql/data")]
        assert named and named[0] in compose["volumes"]

    def test_migrate_runs_once_before_web_and_worker(self, compose):
        assert compose["services"]["migrate"]["restart"] == "no"
        for service in ("web", "worker"):
            depends = compose["services"][service]["depends_on"]
            assert depends["migrate"]["condition"] == "service_completed_successfully"
            assert depends["redis"]["condition"] == "service_healthy"
            assert depends["postgres"]["condition"] == "service_healthy"

    @pytest.mark.parametrize("service", ["web", "worker"])
    def test_scalable_service_has_no_fixed_name_or_single_host_port(self, compose, service):
        spec = compose["services"][service]
        assert "container_name" not in spec
        for mapping in spec.get("ports", []):
            host = mapping.rsplit(":", 1)[0]
            assert "-" in host, f"{service} publishes one host port; --scale would clash"

    def test_worker_exposes_its_metrics_port(self, compose):
        worker = compose["services"]["worker"]
        port = environment(worker)["WORKER_METRICS_PORT"]
        assert port in [str(p) for p in worker["expose"]]


class TestDockerfile:
    """One slim, multi-stage, non-root image whose entry point is the CLI."""

    def final_stage(self) -> str:
        return DOCKERFILE.read_text().split("\nFROM ")[-1]

    def test_image_is_multi_stage(self):
        assert len(re.findall(r"^FROM ", DOCKERFILE.read_text(), flags=re.MULTILINE)) >= 2
        assert "COPY --from=build" in self.final_stage()

    def test_image_is_slim(self):
        assert re.search(
            r"^ARG PYTHON_IMAGE=python:3\.1[1-9]-slim$", DOCKERFILE.read_text(), flags=re.MULTILINE
        )

    def test_image_runs_as_an_unprivileged_user(self):
        users = re.findall(r"^USER (\S+)$", self.final_stage(), flags=re.MULTILINE)
        assert users and users[-1].split(":")[0] not in ("root", "0")

    def test_image_entry_point_is_the_cli_and_default_command_parses(self):
        stage = self.final_stage()
        assert 'ENTRYPOINT ["engagehook"]' in stage
        default = re.search(r"^CMD (\[.*\])$", stage, flags=re.MULTILINE)[1]
        assert build_parser().parse_args(yaml.safe_load(default)).command == "serve"

    def test_build_copies_every_package_setuptools_installs(self):
        pyproject = (ROOT / "pyproject.toml").read_text()
        packages = re.search(r"include = \[(.*?)\]", pyproject)[1]
        wanted = {name.strip(' "*') for name in packages.split(",")}
        copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE.read_text(), flags=re.MULTILINE))
        assert wanted == copied
        for source in copied | {"pyproject.toml", "README.md"}:
            assert (ROOT / source).exists()

    @pytest.mark.parametrize("excluded", [".git", ".venv", "var", "tests", ".env"])
    def test_build_context_leaves_out_local_state(self, excluded):
        assert excluded in DOCKERIGNORE.read_text().split()


def adapt(command: list[str], port_option: str | None, port: int | None) -> list[str]:
    """A compose command with its container port replaced by one free on this machine."""
    command = list(command)
    if port_option:
        command[command.index(port_option) + 1] = str(port)
    return command


@pytest.mark.slow
class TestComposeCommandsBoot:
    """Each engagehook service's command starts on real services and passes its healthcheck."""

    @pytest.fixture
    def local_env(self, compose, tmp_path, redis_url, postgres_url):
        def env_for(service: str) -> dict[str, str]:
            env = environment(compose["services"][service])
            if "REDIS_URL" in env:
                env["REDIS_URL"] = redis_url
            if "DATABASE_URL" in env:
                env["DATABASE_URL"] = postgres_url
            env["ENGAGEHOOK_DATA_DIR"] = str(tmp_path / service)
            # The healthchecks call `python` and `celery` as the image's PATH finds them.
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
            env["HOSTNAME"] = socket.gethostname()
            return env

        return env_for

    def healthy(self, command: list[str], env: dict[str, str]) -> bool:
        result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, timeout=30)
        return result.returncode == 0

    def test_every_service_command_boots_and_passes_its_healthcheck(
        self, compose, local_env, tmp_path
    ):
        services = compose["services"]
        migrate = subprocess.run(
            [sys.executable, "-m", "engagehook.cli", *services["migrate"]["command"]],
            env={**os.environ, **local_env("migrate")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert migrate.returncode == 0, migrate.stderr

        web_port, flower_port, metrics_port = free_port(), free_port(), free_port()
        web_env, worker_env, flower_env = local_env("web"), local_env("worker"), local_env("flower")
        worker_env["WORKER_METRICS_PORT"] = str(metrics_port)
        container_web_port = option(services["web"]["command"], "--port")
        container_flower_port = option(services["flower"]["command"], "--port")
        processes = [
            start(
                adapt(services["web"]["command"], "--port", web_port), web_env, tmp_path / "web.log"
            ),
            start(
                adapt(services["worker"]["command"], None, None),
                worker_env,
                tmp_path / "worker.log",
            ),
            start(
                adapt(services["flower"]["command"], "--port", flower_port),
                flower_env,
                tmp_path / "flower.log",
            ),
        ]
        try:
            web_check = [
                part.replace(f":{container_web_port}/", f":{web_port}/")
                for part in healthcheck_command(services["web"])
            ]
            flower_check = [
                part.replace(f":{container_flower_port}/", f":{flower_port}/")
                for part in healthcheck_command(services["flower"])
            ]
            worker_check = healthcheck_command(services["worker"])
            wait_until(lambda: self.healthy(web_check, web_env), timeout=60, interval=0.5)
            wait_until(lambda: self.healthy(flower_check, flower_env), timeout=60, interval=0.5)
            wait_until(lambda: self.healthy(worker_check, worker_env), timeout=60, interval=1)
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
        finally:
            for process in processes:
                stop(process)
