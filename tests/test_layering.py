"""Imports point one way, for every module and every route.

The floors, bottom to top:

- the ground floor (``core``: configuration, logging, build information, wire names) imports
  nothing of the project;
- ``handlers`` imports only itself and the ground floor: no Celery, Flask, workers or ingest;
  each eventType handler imports only the handler API (``handlers.api``) and
  ``handlers.events``, and loads no database code;
- ``workers`` may import handlers and the ground floor, never ingest;
- ``ingest`` knows HTTP and enqueueing: it imports the ground floor, the wire names and Celery
  app of ``workers.celery_app``, and from workers and handlers only the public read functions
  named in ``INGEST_MAY_READ``; it imports no database library and runs no SQL of its own;
- the CLI (``engagehook``: ``cli``, ``serve``, ``sender``) sits on top.

What ingest may have loaded (``NOT_FOR_INGEST``: validation, schemas, tasks, store code):

- importing any ingest module, and answering ``/webhooks`` or ``/healthz``: none of it;
- a route that reads the store or the broker (``/readyz``, ``/metrics``, ``/admin/...``,
  ``/console/...``): only what importing its read modules (``handlers.reads``,
  ``workers.broker_reads``) loads, and that never includes an eventType handler, the hook
  runner, Marshmallow or a task;
- ``/openapi.json``: what ``workers.openapi`` loads, the schemas the document describes, and
  still no handler, store or task code.

Two kinds of checks: every module's imports read from its source (lazy ones inside functions
included), and what a fresh interpreter has loaded after importing each ingest module or
answering each route of ``create_app``.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "engagehook", "ingest", "workers", "handlers")
GROUND_FLOOR = ("core",)
TOP = ("engagehook",)
STORE_READS = ("handlers.reads",)
BROKER_READS = ("workers.broker_reads",)
SCHEMA_READS = ("workers.openapi",)
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
# What no read module may bring along: the code that writes, validates or runs hooks.
NEVER_FOR_INGEST = (
    "marshmallow",
    "handlers.registry",
    "handlers.create",
    "handlers.hook_runner",
    "handlers.hooks",
    "workers.tasks",
    "workers.processing",
    "workers.runtime",
    "workers.sweeper",
)


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


def source_of(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def exported_names(module: str) -> frozenset[str]:
    """The names in ``module``'s ``__all__``, read from its source (not imported)."""
    for node in ast.parse(source_of(module).read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        ):
            return frozenset(ast.literal_eval(node.value))
    raise AssertionError(f"{module} has no __all__")


# Read functions ingest's operational routes may call, by module: handlers.reads exports them
# (the store class only for annotations: ingest gets a store from open_store, never builds one).
INGEST_MAY_READ: dict[str, frozenset[str]] = {
    "handlers.reads": exported_names("handlers.reads") - {"Store"},
    "workers.broker_reads": frozenset({"BrokerReader", "QUEUES"}),
    "workers.openapi": frozenset({"build_openapi"}),
}


def imports_of(module: str) -> set[tuple[str, str | None]]:
    """``(module, name)`` for every import statement of ``module``, lazy ones included."""
    source = source_of(module)
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


def not_for_ingest(loaded: list[str], reads: tuple[str, ...] = ()) -> list[str]:
    """What of ``loaded`` ingest should not have loaded, given the read modules it called."""
    allowed = loaded_by_reads(reads)
    return [m for m in loaded if m not in allowed]


@functools.cache
def loaded_by_reads(reads: tuple[str, ...]) -> frozenset[str]:
    """What importing ``reads`` loads: the same for every route and module that may call them."""
    return frozenset(loaded_after("".join(f"import {m}\n" for m in reads), NOT_FOR_INGEST))


class TestEveryModulesImports:
    @pytest.mark.parametrize("module", project_modules())
    def test_a_module_imports_only_what_its_floor_allows(self, module):
        assert forbidden_imports(module) == []

    def test_the_check_sees_lazy_imports_and_every_package(self):
        # The rule table is not vacuous: it covers all four packages and reads function bodies.
        modules = project_modules()
        assert {m.split(".")[0] for m in modules} == set(PACKAGES)
        assert "handlers.reads" in {imported for imported, _ in imports_of("ingest.admin")}
        assert forbidden_imports("ingest.metrics") == []
        assert "handlers.store" in {m for m, _ in imports_of("handlers.reads")}


INGEST_MODULES = [m for m in project_modules() if within(m, ("ingest",))]


class TestWhatIngestLoads:
    @pytest.mark.parametrize("module", INGEST_MODULES)
    def test_importing_an_ingest_module_loads_no_schema_task_or_store_code(self, module):
        assert not_for_ingest(loaded_after(f"import {module}", NOT_FOR_INGEST)) == []


# Every route of create_app: a request that reaches its view, and the read modules it may load.
# Admin routes need the token, console routes a session (see ``request_code``).
ROUTES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "/webhooks": ("POST", "/webhooks", ()),
    "/healthz": ("GET", "/healthz", ()),
    "/readyz": ("GET", "/readyz", STORE_READS),
    "/openapi.json": ("GET", "/openapi.json", SCHEMA_READS),
    "/metrics": ("GET", "/metrics", STORE_READS + BROKER_READS),
    "/admin/appointments/<path:appointment_id>": ("GET", "/admin/appointments/a-1", STORE_READS),
    "/admin/events/<path:event_id>": ("GET", "/admin/events/e-1", STORE_READS),
    "/admin/events": ("GET", "/admin/events", STORE_READS),
    "/admin/dead-letters": ("GET", "/admin/dead-letters", STORE_READS),
    "/admin/dead-letters/replay": ("POST", "/admin/dead-letters/replay", STORE_READS),
    "/admin/hook-runs": ("GET", "/admin/hook-runs", STORE_READS),
    "/admin/hook-runs/<int:run_id>/replay": ("POST", "/admin/hook-runs/1/replay", STORE_READS),
    "/console/static/<path:filename>": ("GET", "/console/static/console.css", ()),
    "/console/login": ("GET", "/console/login", ()),
    "/console/logout": ("POST", "/console/logout", ()),
    "/console/": ("GET", "/console/", STORE_READS),
    "/console/events": ("GET", "/console/events", STORE_READS),
    "/console/events/<path:event_id>": ("GET", "/console/events/e-1", STORE_READS),
    "/console/appointments/<path:appointment_id>": (
        "GET",
        "/console/appointments/a-1",
        STORE_READS,
    ),
    "/console/appointments": ("GET", "/console/appointments?id=a-1", STORE_READS),
    "/console/dead-letters": ("GET", "/console/dead-letters", STORE_READS),
    "/console/dead-letters/replay": ("POST", "/console/dead-letters/replay", STORE_READS),
    "/console/hook-runs": ("GET", "/console/hook-runs", STORE_READS),
    "/console/hook-runs/<int:run_id>/replay": ("POST", "/console/hook-runs/1/replay", STORE_READS),
}
ADMIN_TOKEN = "layering-admin-token"
CSRF = "layering-csrf"


def app_code(data_dir: Path) -> str:
    """Python source that builds the ingest app on an embedded broker under ``data_dir``."""
    config = {"ENGAGEHOOK_DATA_DIR": str(data_dir), "ADMIN_TOKEN": ADMIN_TOKEN}
    return f"from ingest.app import create_app\napp = create_app({config!r})\n"


def request_code(method: str, url: str) -> str:
    """Python source that sends one request as an operator would, asserting its view ran."""
    if url.startswith("/console/"):
        # A logged-in session with a known CSRF token, and the form the console's pages send.
        send = (
            "client = app.test_client()\n"
            "with client.session_transaction() as session:\n"
            f"    session.update(operator=True, csrf={CSRF!r})\n"
            f"response = client.open({url!r}, method={method!r},"
            f" data={{'csrf_token': {CSRF!r}, 'ids': 'e-1'}})\n"
        )
    else:
        payload = (ROOT / "tests" / "payloads" / "CREATE.json").read_text()
        if url.endswith("/replay"):
            payload = json.dumps({"ids": ["e-1"]})
        send = (
            f"response = app.test_client().open({url!r}, method={method!r}, data={payload!r},"
            f" headers={{'Content-Type': 'application/json',"
            f" 'Authorization': 'Bearer {ADMIN_TOKEN}'}})\n"
        )
    # The view ran: a route refused before its work (401, 403) would prove nothing.
    return send + (
        "assert response.status_code in (200, 202, 302, 303, 404, 502, 503), response.status_code\n"
    )


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

    @pytest.mark.parametrize("rule", sorted(ROUTES))
    def test_answering_a_route_loads_only_its_read_modules(self, rule, tmp_path):
        method, url, reads = ROUTES[rule]
        loaded = loaded_after(app_code(tmp_path) + request_code(method, url), NOT_FOR_INGEST)
        assert not_for_ingest(loaded, reads) == []

    @pytest.mark.parametrize("reads", [STORE_READS, BROKER_READS, SCHEMA_READS])
    def test_a_read_module_loads_no_handler_hook_runner_or_task(self, reads):
        code = "".join(f"import {m}\n" for m in reads)
        brought = loaded_after(code, NEVER_FOR_INGEST)
        if reads == SCHEMA_READS:  # the document describes the schemas: those are its input
            brought = [m for m in brought if not within(m, ("marshmallow",))]
        assert brought == []

    def test_the_webhook_path_loads_nothing_of_the_store(self, tmp_path):
        method, url, reads = ROUTES["/webhooks"]
        assert reads == ()
        loaded = loaded_after(app_code(tmp_path) + request_code(method, url), ("handlers",))
        assert loaded == []


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


HANDLER_API = ("handlers.api", "handlers.events")


def event_type_handler_modules() -> list[str]:
    """The modules the registry maps eventTypes to (read from its source, not imported)."""
    return sorted(m for m, _ in project_imports("handlers.registry") if m not in HANDLER_API)


@pytest.mark.parametrize("module", event_type_handler_modules())
def test_a_handler_imports_only_the_handler_api(module):
    imported = {m for m, _ in project_imports(module)}
    assert imported <= set(HANDLER_API), imported - set(HANDLER_API)


@pytest.mark.parametrize("module", event_type_handler_modules())
def test_a_handler_loads_no_database_code(module):
    assert loaded_after(f"import {module}", (*DATABASE_LIBRARIES, "handlers.store")) == []


def test_the_handler_api_is_still_importable_from_the_store():
    code = "from handlers.store import AppointmentTransaction, Handler\n"
    assert "handlers.api" in loaded_after(code, ("handlers.api",))
