"""docker-compose.yml and the Dockerfile cannot rot: they are checked against the CLI and config.

No Docker engine is needed: the compose file is parsed and interpolated here, each engagehook
service's command must parse with the real CLI, its variables must be ones Settings reads and
form a valid configuration, and the healthchecks must point where the commands listen. The
last class boots every service's command against the real Redis and PostgreSQL and runs the
service's own healthcheck against it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from core.config import Settings
from engagehook.cli import build_parser
from tests.processes import free_port
from tests.processes import start
from tests.processes import stop
from tests.processes import stop_all
from tests.processes import wait_until

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
CI_RUN = ROOT / ".ci" / "run"
README = ROOT / "README.md"
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


def redis_bytes(size: str) -> int:
    """A redis.conf memory size (512mb, 2gb, 1048576) in bytes."""
    match = re.fullmatch(r"(\d+)(b|k|kb|m|mb|g|gb)?", size.lower())
    assert match, size
    unit = {"k": 1000, "kb": 1024, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30}
    return int(match[1]) * unit.get(match[2] or "b", 1)


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
        assert settings.webhook_tokens == (DOTENV["WEBHOOK_TOKEN"],)

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
        assert [str(p) for p in web["expose"]] == [port]

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
        # noeviction only applies once a limit is set: without one Redis grows until killed.
        assert redis_bytes(option(command, "--maxmemory")) >= 64 * 2**20
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
            stop_all(processes)


def test_compose_workers_prune_finished_records_by_default(compose):
    settings = Settings.from_env(environment(compose["services"]["worker"]))
    assert settings.retention_days == 30


# -- the edge: a TLS proxy in front of web --------------------------------------------------


def caddy_directive(name: str) -> list[list[str]]:
    """The arguments of every line of the Caddyfile that starts with ``name``."""
    lines = [line.split("#", 1)[0].split() for line in CADDYFILE.read_text().splitlines()]
    return [line[1:] for line in lines if line and line[0] == name]


def caddy_size(size: str) -> int:
    match = re.fullmatch(r"(\d+)(B|KB|KiB|MB|MiB|GB|GiB)?", size)
    assert match, size
    unit = {"KB": 10**3, "KiB": 2**10, "MB": 10**6, "MiB": 2**20, "GB": 10**9, "GiB": 2**30}
    return int(match[1]) * unit.get(match[2] or "B", 1)


def published_host_ips(service: dict[str, Any]) -> list[str]:
    """The host address of each published port ("" when it binds every interface)."""
    out = []
    for mapping in service.get("ports", []):
        parts = str(mapping).split(":")
        out.append(parts[0] if len(parts) == 3 else "")
    return out


class TestEdge:
    """Only the proxy faces the network; it terminates TLS, buffers, and keeps tokens out of logs."""

    def test_only_the_proxy_publishes_ports_to_the_network(self, compose):
        for name, service in compose["services"].items():
            if name == "proxy":
                continue
            assert all(ip == "127.0.0.1" for ip in published_host_ips(service)), name

    def test_web_is_reached_only_through_the_proxy(self, compose):
        assert "ports" not in compose["services"]["web"]
        web_port = option(compose["services"]["web"]["command"], "--port")
        assert caddy_directive("reverse_proxy") == [[f"web:{web_port}", "{"]]
        proxy = compose["services"]["proxy"]
        assert proxy["depends_on"]["web"]["condition"] == "service_healthy"

    def test_proxy_serves_https_with_this_caddyfile(self, compose):
        proxy = compose["services"]["proxy"]
        assert proxy["image"].startswith("caddy:2.")
        assert any(str(p).endswith(":443") for p in proxy["ports"])
        assert any(str(p).endswith(":80") for p in proxy["ports"])  # ACME and the redirect
        mounts = [str(v).split(":") for v in proxy["volumes"]]
        assert ["./deploy/Caddyfile", "/etc/caddy/Caddyfile", "ro"] in mounts
        assert any(m[1] == "/data" and m[0] in compose["volumes"] for m in mounts)
        assert "healthcheck" in proxy

    def test_localhost_gets_the_local_ca_and_a_domain_a_real_certificate(self, compose):
        text = CADDYFILE.read_text()
        assert re.search(r"^localhost \{\n\ttls internal\n", text, flags=re.MULTILINE)
        site = re.search(r"^\{\$ENGAGEHOOK_DOMAIN:([^}]+)\} \{\n(.*?)^\}", text, re.M | re.S)
        assert site and "tls" not in site[2]  # automatic HTTPS: ACME for a public name
        compose_default = environment(compose["services"]["proxy"])["ENGAGEHOOK_DOMAIN"]
        assert compose_default == site[1] == "engagehook.localhost"  # *.localhost: local CA

    def test_proxy_buffers_whole_bodies_up_to_past_max_body_bytes(self, compose):
        limit = Settings.from_env(environment(compose["services"]["web"])).max_body_bytes
        (buffers,) = caddy_directive("request_buffers")
        (max_size,) = caddy_directive("max_size")
        assert caddy_size(buffers[0]) > limit
        assert caddy_size(max_size[0]) > limit  # web answers 413 itself, in its JSON shape

    def test_proxy_cuts_off_clients_that_trickle_their_request(self):
        (read_body,) = caddy_directive("read_body")
        (read_header,) = caddy_directive("read_header")
        assert read_body and read_header

    def test_access_log_redacts_the_token_in_the_query_string(self):
        text = CADDYFILE.read_text()
        block = re.search(r"request>uri query \{(.*?)\}", text, flags=re.S)
        assert block and "replace token REDACTED" in block[1]
        assert caddy_directive("request>headers>Authorization") == [["delete"]]

    def test_web_stops_later_than_gunicorn_finishes_its_requests(self, compose):
        import ingest.gunicorn_conf as gunicorn_conf

        grace = compose["services"]["web"]["stop_grace_period"]
        assert grace.endswith("s")
        assert int(grace[:-1]) > gunicorn_conf.graceful_timeout
        assert "--graceful-timeout" not in compose["services"]["web"]["command"]

    def test_flower_runs_under_an_init_and_only_on_the_host_loopback(self, compose):
        flower = compose["services"]["flower"]
        assert flower["init"] is True
        assert published_host_ips(flower) == ["127.0.0.1"]

    def test_one_shot_migration_has_no_healthcheck_to_fail(self, compose):
        assert compose["services"]["migrate"]["healthcheck"] == {"disable": True}


def caddy_binary() -> str:
    path = shutil.which("caddy")
    if path is None:
        pytest.skip("caddy is not installed (Debian/Ubuntu: apt-get install caddy)")
    return path


def adapted_caddyfile(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    """The Caddyfile as the caddy on this machine reads it (JSON config)."""
    caddy = caddy_binary()
    text = CADDYFILE.read_text()
    version = subprocess.run([caddy, "version"], capture_output=True, text=True, timeout=30)
    found = re.search(r"v?(\d+)\.(\d+)", version.stdout)
    if found and (int(found[1]), int(found[2])) < (2, 7):
        # Caddy before 2.7 spells request buffering `buffer_requests`; the rest is read as is.
        text = re.sub(r"request_buffers \S+", "buffer_requests", text)
    config = tmp_path / "Caddyfile"
    config.write_text(text)
    result = subprocess.run(
        [caddy, "adapt", "--adapter", "caddyfile", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class TestCaddyReadsTheCaddyfile:
    """caddy itself adapts the file (where caddy is installed): what it will do, not what it says."""

    def internal_subjects(self, config: dict[str, Any]) -> set[str]:
        policies = config["apps"].get("tls", {}).get("automation", {}).get("policies", [])
        return {
            subject
            for policy in policies
            if any(issuer["module"] == "internal" for issuer in policy.get("issuers", []))
            for subject in policy.get("subjects", [])
        }

    def test_default_sites_use_the_local_ca(self, tmp_path):
        config = adapted_caddyfile(tmp_path, {"ENGAGEHOOK_DOMAIN": "engagehook.localhost"})
        assert "localhost" in self.internal_subjects(config)

    def test_a_public_domain_is_not_given_the_local_ca(self, tmp_path):
        config = adapted_caddyfile(tmp_path, {"ENGAGEHOOK_DOMAIN": "hooks.example.com"})
        routes = config["apps"]["http"]["servers"]["srv0"]["routes"]
        hosts = {host for route in routes for m in route.get("match", []) for host in m["host"]}
        assert "hooks.example.com" in hosts
        assert "hooks.example.com" not in self.internal_subjects(config)

    def test_every_access_log_redacts_token_and_drops_credentials(self, tmp_path):
        config = adapted_caddyfile(tmp_path, {"ENGAGEHOOK_DOMAIN": "hooks.example.com"})
        logs = {k: v for k, v in config["logging"]["logs"].items() if k != "default"}
        assert logs
        for log in logs.values():
            fields = log["encoder"]["fields"]
            actions = fields["request>uri"]["actions"]
            assert {"parameter": "token", "type": "replace", "value": "REDACTED"} in actions
            assert fields["request>headers>Authorization"]["filter"] == "delete"

    def test_requests_are_buffered_before_they_reach_web(self, tmp_path):
        config = adapted_caddyfile(tmp_path, {})
        text = json.dumps(config)
        assert '"request_buffers"' in text or '"buffer_requests": true' in text
        assert '"dial": "web:8000"' in text


# -- the image and the lock ------------------------------------------------------------------


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if match:
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def declared_requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    return [Requirement(r) for r in declared]


def readme_test_command() -> str:
    blocks = re.findall(r"```sh\n(.*?)\n```", README.read_text(), flags=re.S)
    return blocks[1].strip()


class TestDockerfileBuild:
    """The image installs what CI tested, caches dependencies well, and checks its own health."""

    def stage(self, which: int) -> str:
        return DOCKERFILE.read_text().split("\nFROM ")[which]

    def test_image_uses_the_python_minor_ci_tests_on(self):
        minor = re.search(r"^ARG PYTHON_IMAGE=python:(3\.\d+)-slim$", DOCKERFILE.read_text(), re.M)[
            1
        ]
        ruff_target = tomllib.loads(PYPROJECT.read_text())["tool"]["ruff"]["target-version"]
        assert ruff_target == "py" + minor.replace(".", "")
        assert f"--python-version {minor}" in LOCK.read_text()
        if os.environ.get("CI"):
            assert f"{sys.version_info.major}.{sys.version_info.minor}" == minor

    def test_dependency_layer_is_built_from_the_lock_without_the_readme(self):
        build = self.stage(1)
        first_install = build.index("pip install")
        before = build[:first_install]
        copied_before = [
            line.split()[1:-1] for line in before.splitlines() if line.startswith("COPY ")
        ]
        assert copied_before == [["pyproject.toml", "requirements.lock"]]
        assert "-c requirements.lock" in build[first_install:].splitlines()[0]
        # The real README arrives with the code, after the dependencies are installed.
        assert build.index("COPY README.md") > first_install

    def test_final_install_adds_no_dependency_of_its_own(self):
        build = self.stage(1)
        final = [line for line in build.splitlines() if "pip install --no-deps" in line]
        assert final and "-c requirements.lock" in final[0]

    def test_image_healthcheck_asks_readyz_of_the_default_command(self):
        stage = self.final_stage()
        instruction = re.search(r"^HEALTHCHECK (?:.*\\\n)*.*$", stage, flags=re.M)
        assert instruction, "the image has no HEALTHCHECK"
        default = yaml.safe_load(re.search(r"^CMD (\[.*\])$", stage, flags=re.M)[1])
        port = option(default, "--port")
        assert f"http://127.0.0.1:{port}/readyz" in instruction[0]

    def final_stage(self) -> str:
        return DOCKERFILE.read_text().split("\nFROM ")[-1]

    def test_lock_is_in_the_build_context(self):
        patterns = [line for line in DOCKERIGNORE.read_text().splitlines() if line[:1] != "#"]
        assert "requirements.lock" not in patterns and "*.lock" not in patterns


class TestLock:
    """requirements.lock pins every declared dependency inside pyproject's ranges."""

    def test_every_declared_dependency_is_pinned_inside_its_range(self):
        pins = lock_pins()
        for requirement in declared_requirements():
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{name} is not in requirements.lock"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{name}=={pins[name]} is outside {requirement.specifier}"
            )

    @pytest.mark.parametrize("name", ["celery", "kombu", "billiard", "redis"])
    def test_internals_we_rely_on_are_capped_below_the_next_minor(self, name):
        locked = Version(lock_pins()[name])
        (requirement,) = [r for r in declared_requirements() if canonicalize_name(r.name) == name]
        assert requirement.specifier.contains(locked)
        assert not requirement.specifier.contains(Version(f"{locked.major}.{locked.minor + 1}"))

    @pytest.mark.parametrize("name", ["flask", "marshmallow", "sqlalchemy", "gunicorn", "flower"])
    def test_other_runtime_dependencies_have_an_upper_bound(self, name):
        (requirement,) = [r for r in declared_requirements() if canonicalize_name(r.name) == name]
        assert any(spec.operator == "<" for spec in requirement.specifier)

    def test_ci_runs_the_readmes_test_command_and_it_installs_from_the_lock(self):
        command = readme_test_command()
        assert "\n" not in command
        assert "-c requirements.lock" in command
        assert command in CI_RUN.read_text().splitlines()

    def test_this_environment_matches_the_lock(self):
        from importlib import metadata

        mismatched = {}
        for name, pinned in lock_pins().items():
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue  # an extra this environment did not install, or another platform
            if Version(installed) != Version(pinned):
                mismatched[name] = (installed, pinned)
        if mismatched and not os.environ.get("CI"):
            pytest.skip(f"this venv was installed without the lock: {mismatched}")
        assert mismatched == {}


def test_docker_compose_config_accepts_the_file(tmp_path):
    docker = shutil.which("docker")
    probe = (
        subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if docker
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed here")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **DOTENV},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_flower_exits_on_sigterm_well_within_its_stop_grace_period(compose, tmp_path, redis_url):
    """What `docker compose stop flower` does: SIGTERM to the command, SIGKILL after the grace."""
    import signal
    import time

    flower = compose["services"]["flower"]
    grace = int(flower["stop_grace_period"].removesuffix("s"))
    port = free_port()
    env = {**environment(flower), "REDIS_URL": redis_url, "ENGAGEHOOK_DATA_DIR": str(tmp_path)}
    process = start(adapt(flower["command"], "--port", port), env, tmp_path / "flower.log")
    try:
        auth = tuple(DOTENV["FLOWER_BASIC_AUTH"].split(":"))

        def healthy() -> bool:
            try:
                url = f"http://127.0.0.1:{port}/healthcheck"
                return httpx.get(url, auth=auth, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=60, interval=0.5)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)  # the init forwards it to the command only
        process.wait(timeout=grace)
        elapsed = time.monotonic() - started
    finally:
        stop(process)
    assert process.returncode == 0, (tmp_path / "flower.log").read_text()[-2000:]
    assert elapsed < grace / 2
