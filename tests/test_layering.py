"""Imports point one way, for every module and every route.

The floors, bottom to top:

- the ground floor (``core``: configuration, logging, build information, wire names) imports
  nothing of the project;
- ``handlers`` imports only itself and the ground floor: no Celery, Flask, workers or ingest;
- ``workers`` may import handlers and the ground floor, never ingest;
- ``ingest`` knows HTTP and enqueueing: it imports the ground floor, the wire names and Celery
  app of ``workers.celery_app``, and from workers and handlers only the public read functions
  named in ``INGEST_MAY_READ``; it runs no SQL of its own on another package's tables;
- the CLI (``engagehook``: ``cli``, ``serve``, ``sender``) sits on top.

Two kinds of checks: every module's imports read from its source (lazy ones inside functions
included), and what a fresh interpreter has loaded after importing each ingest module or
answering each route of ``create_app``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "engagehook", "ingest", "workers", "handlers")
GROUND_FLOOR = ("core",)
TOP = ("engagehook",)
# Read functions ingest's operational routes may call, by module. The structural pass that
# gives the store and the broker their public read functions names them here.
INGEST_MAY_READ: dict[str, frozenset[str]] = {}
INGEST_MAY_IMPORT = ("workers.celery_app",)
# Database drivers and toolkits: ingest reads stores and brokers through their packages.
DATABASE_LIBRARIES = ("sqlalchemy", "sqlite3", "psycopg", "alembic")
# What ingest must never load: validation, schemas, task and store code.
NOT_FOR_INGEST = (
    "marshmallow",
    "apispec",
    "handlers",
    "workers.tasks",
    "workers.processing",
    "workers.runtime",
    "workers.sweeper",
    "workers.validation",
    "workers.schemas",
    "workers.openapi",
    "workers.inflight",
)

INGEST_ADMIN = "ingest/admin.py opens handlers.store.Store itself (structural pass pending)"
INGEST_HEALTH = "/openapi.json builds the spec from workers.openapi (marshmallow) in ingest"
INGEST_METRICS = "ingest/metrics.py runs raw SQL on kombu's and the store's tables"
VIOLATIONS = {
    "ingest.admin": INGEST_ADMIN,
    "ingest.health": INGEST_HEALTH,
    "ingest.metrics": INGEST_METRICS,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> list[str]:
    """Every module of the four packages (Alembic's generated revisions aside)."""
    return sorted(
        module_name(path)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "versions" not in path.parts
    )


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(module: str) -> set[tuple[str, str | None]]:
    """``(module, name)`` for every import statement of ``module``, lazy ones included."""
    path = ROOT.joinpath(*module.split("."))
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found.update((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if is_module(submodule):
                    found.add((submodule, None))
                else:
                    found.add((node.module, alias.name))
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def project_imports(module: str) -> set[tuple[str, str | None]]:
    return {(m, n) for m, n in imports_of(module) if within(m, PACKAGES)}


def forbidden_imports(module: str) -> list[str]:
    """The imports of ``module`` that its floor does not allow, as readable strings."""
    own = module.split(".")[0]
    bad: list[str] = []
    for imported, name in sorted(project_imports(module), key=str):
        shown = imported if name is None else f"{imported}.{name}"
        if within(module, GROUND_FLOOR):
            allowed = within(imported, GROUND_FLOOR)
        elif within(module, TOP):
            allowed = True
        elif own == "handlers":
            allowed = within(imported, ("handlers", *GROUND_FLOOR))
        elif own == "workers":
            allowed = within(imported, ("workers", "handlers", *GROUND_FLOOR))
        elif own == "ingest":
            allowed = (
                within(imported, ("ingest", *GROUND_FLOOR))
                or imported in INGEST_MAY_IMPORT
                or name in INGEST_MAY_READ.get(imported, frozenset())
            )
        else:
            raise AssertionError(f"{module} has no floor: give its package one")
        if not allowed:
            bad.append(shown)
    if own == "ingest":
        bad += sorted(m for m, _ in imports_of(module) if within(m, DATABASE_LIBRARIES))
    return bad


def with_known_violations(modules: list[str]) -> list:
    """``modules`` as parameters, the ones that break the rule today marked strict xfail."""
    return [
        pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=VIOLATIONS[m]))
        if m in VIOLATIONS
        else m
        for m in modules
    ]


def loaded_after(code: str, prefixes: tuple[str, ...], cwd: Path = ROOT) -> list[str]:
    """The modules under ``prefixes`` a fresh interpreter has loaded after running ``code``."""
    script = (
        f"import sys, json\n{code}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if any("
        f"m == p or m.startswith(p + '.') for p in {prefixes!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def not_for_ingest(loaded: list[str]) -> list[str]:
    return [m for m in loaded if m not in INGEST_MAY_READ]


class TestEveryModulesImports:
    @pytest.mark.parametrize("module", with_known_violations(project_modules()))
    def test_a_module_imports_only_what_its_floor_allows(self, module):
        assert forbidden_imports(module) == []

    def test_the_check_sees_lazy_imports_and_every_package(self):
        # The rule table is not vacuous: it covers all four packages and reads function bodies.
        modules = project_modules()
        assert {m.split(".")[0] for m in modules} == set(PACKAGES)
        assert "handlers.store" in {imported for imported, _ in imports_of("ingest.admin")}


INGEST_MODULES = [m for m in project_modules() if within(m, ("ingest",))]


class TestWhatIngestLoads:
    @pytest.mark.parametrize("module", INGEST_MODULES)
    def test_importing_an_ingest_module_loads_no_schema_task_or_store_code(self, module):
        assert not_for_ingest(loaded_after(f"import {module}", NOT_FOR_INGEST)) == []


# Every route of create_app, with a request that reaches its view (admin routes need the token).
ROUTES = {
    "/webhooks": ("POST", "/webhooks"),
    "/healthz": ("GET", "/healthz"),
    "/readyz": ("GET", "/readyz"),
    "/openapi.json": ("GET", "/openapi.json"),
    "/metrics": ("GET", "/metrics"),
    "/admin/appointments/<path:appointment_id>": ("GET", "/admin/appointments/a-1"),
    "/admin/events/<path:event_id>": ("GET", "/admin/events/e-1"),
}
ROUTE_VIOLATIONS = {
    "/openapi.json": INGEST_HEALTH,
    "/admin/appointments/<path:appointment_id>": INGEST_ADMIN,
    "/admin/events/<path:event_id>": INGEST_ADMIN,
}
ADMIN_TOKEN = "layering-admin-token"


def app_code(data_dir: Path) -> str:
    """Python source that builds the ingest app on an embedded broker under ``data_dir``."""
    config = {"ENGAGEHOOK_DATA_DIR": str(data_dir), "ADMIN_TOKEN": ADMIN_TOKEN}
    return f"from ingest.app import create_app\napp = create_app({config!r})\n"


def route_params() -> list:
    return [
        pytest.param(rule, marks=pytest.mark.xfail(strict=True, reason=ROUTE_VIOLATIONS[rule]))
        if rule in ROUTE_VIOLATIONS
        else rule
        for rule in ROUTES
    ]


class TestWhatEachRouteLoads:
    def test_the_cases_cover_every_route_of_the_app(self, tmp_path):
        code = app_code(tmp_path) + (
            "print(json.dumps(sorted(r.rule for r in app.url_map.iter_rules()"
            " if r.endpoint != 'static')))"
        )
        script = f"import json\n{code}"
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            timeout=120,
        )
        assert json.loads(out.stdout.strip().splitlines()[-1]) == sorted(ROUTES)

    @pytest.mark.parametrize("rule", route_params())
    def test_answering_a_route_loads_no_schema_task_or_store_code(self, rule, tmp_path):
        method, url = ROUTES[rule]
        payload = (ROOT / "tests" / "payloads" / "CREATE.json").read_text()
        request = (
            f"response = app.test_client().open({url!r}, method={method!r}, data={payload!r},"
            f" headers={{'Content-Type': 'application/json',"
            f" 'Authorization': 'Bearer {ADMIN_TOKEN}'}})\n"
            # The view ran: a route that failed before its work would prove nothing.
            "assert response.status_code in (200, 202, 404, 503), response.status_code\n"
        )
        loaded = loaded_after(app_code(tmp_path) + request, NOT_FOR_INGEST)
        assert not_for_ingest(loaded) == []


@pytest.mark.parametrize("module", ["handlers", "handlers.store", "handlers.hooks"])
def test_handlers_load_no_celery_no_flask_no_workers(module):
    assert loaded_after(f"import {module}", ("celery", "flask", "workers", "ingest")) == []


def test_the_ground_floor_loads_no_celery_and_nothing_above_it():
    # Importing a name or the settings builds no app and reads no broker.
    code = "import core.config, core.logs, core.names, core.build"
    assert (
        loaded_after(code, ("celery", "kombu", "engagehook", "ingest", "workers", "handlers")) == []
    )


def test_celery_app_module_does_not_import_the_tasks():
    assert loaded_after("import workers.celery_app", ("workers.tasks", "handlers")) == []
