"""The maps of the code (README's "How it works", docs/where.md, store.py's table) stay true.

A newcomer finds a rule's file through these tables; a file renamed or split without them
would send them nowhere, so every path they name must exist and every module must be named.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAPS = ("README.md", "docs/where.md", "docs/store.md", "handlers/store.py")
# A project path in backticks: a top-level package followed by a file or folder name.
PATH = re.compile(r"`((?:core|ingest|workers|handlers|engagehook|tests|deploy|bench)/[\w./<>-]*)`")
CONTRACT_SEMANTICS = 13


def named_paths(document: str) -> set[str]:
    return set(PATH.findall((ROOT / document).read_text()))


@pytest.mark.parametrize("document", MAPS)
def test_every_path_a_map_names_exists(document):
    missing = sorted(
        path
        for path in named_paths(document)
        if "<" not in path and not (ROOT / path.rstrip("/")).exists()
    )
    assert missing == [], f"{document} names files that do not exist: {missing}"


def test_the_rule_map_has_every_processing_rule_of_the_contract():
    text = (ROOT / "docs/where.md").read_text()
    numbered = {int(n) for n in re.findall(r"^\| (\d+)\. ", text, flags=re.MULTILINE)}
    assert numbered == set(range(1, CONTRACT_SEMANTICS + 1))


def test_every_module_of_the_store_is_on_its_map():
    """A new file of the store's jobs must be added to the table in handlers/store.py."""
    table = named_paths("handlers/store.py")
    jobs = {"engine", "applying", "failure_records", "lookups", "queries", "hook_outbox", "pruning"}
    assert {f"handlers/{job}.py" for job in jobs} <= table


def test_every_package_module_is_named_by_some_map():
    named = set().union(*(named_paths(document) for document in MAPS))
    # A sub-package named as a folder (``workers/schemas/``) covers its modules; a top-level
    # package (``ingest/``) does not, or the check could not fail.
    folders = {path.rstrip("/") for path in named if path.endswith("/") and path.count("/") > 1}
    unnamed = []
    for package in ("core", "ingest", "workers", "handlers", "engagehook"):
        for module in sorted((ROOT / package).rglob("*.py")):
            relative = module.relative_to(ROOT).as_posix()
            if module.name == "__init__.py" or "migrations" in relative:
                continue
            if relative in named or any(relative.startswith(f + "/") for f in folders):
                continue
            if re.fullmatch(r"handlers/[a-z_]+\.py", relative) and _is_event_type_handler(module):
                continue  # named by the pattern handlers/<eventtype>.py
            unnamed.append(relative)
    assert unnamed == [], f"modules no map names: {unnamed}"


def _is_event_type_handler(module: Path) -> bool:
    return "def handle(" in module.read_text()
