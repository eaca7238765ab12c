"""The shipped alert rules and Grafana dashboard only name metrics engagehook really serves.

Both files are parsed; every ``engagehook_*`` series they query must appear in a real scrape
(the web app's /metrics after traffic, plus the worker's registry after task signals), with
the label names it is filtered on and, for exact matches, a label value the code emits.
``promtool check rules`` (and the rule unit tests beside the rules) run where promtool is
installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.config import Settings
from core.names import PROCESS_WEBHOOK
from core.names import RUN_HOOK
from handlers.store import Store
from ingest.app import create_app
from ingest.queue import SpoolingQueue
from ingest.spool import Spool
from tests.builders import body
from tests.builders import load_payload
from tests.fakes import SwitchableQueue
from tests.fakes import UnreachableQueue
from workers import metrics as worker_metrics

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "alerts.rules.yml"
RULE_TESTS = MONITORING / "alerts.test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
JSON = {"Content-Type": "application/json"}

# A series selector: a metric name, then optionally its {matchers}.
_SELECTOR = re.compile(r"\b(engagehook_[a-z0-9_]+)\b(\{[^}]*\})?")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


class FakeTask:
    """Just what the worker's signal receivers read of a Celery task."""

    def __init__(self, name: str, argsrepr: str | None = None) -> None:
        self.name = name
        self.request = type("Request", (), {"argsrepr": argsrepr})()


def rule_expressions() -> dict[str, str]:
    document = yaml.safe_load(RULES.read_text())
    return {
        rule.get("alert") or rule["record"]: rule["expr"]
        for group in document["groups"]
        for rule in group["rules"]
    }


def dashboard_expressions() -> dict[str, str]:
    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    document = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} [{target['refId']}]": target["expr"]
        for panel in panels(document["panels"])
        for target in panel.get("targets", [])
    }


def selectors(expression: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(metric, [(label, operator, value)]) for every engagehook series an expression reads."""
    return [
        (match[1], _MATCHER.findall(match[2] or "")) for match in _SELECTOR.finditer(expression)
    ]


def exposed_series(text: str, into: dict[str, list[dict[str, str]]]) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            into.setdefault(sample.name, []).append(dict(sample.labels))


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, list[dict[str, str]]]:
    """Every sample name (with its label sets) the web app and the worker serve after traffic."""
    data_dir = tmp_path_factory.mktemp("monitoring") / "var"
    data_dir.mkdir()
    env = {"ENGAGEHOOK_DATA_DIR": str(data_dir)}
    store = Store(Settings.from_env(env).store_url)
    store.migrate()  # the store gauges are served once the store answers
    store.engine.dispose()
    settings = Settings.from_env(env)
    spooling = SpoolingQueue(SwitchableQueue(down=True), Spool(settings.spool_dir, 10_000_000))
    app = create_app(env, queue=spooling)
    client = app.test_client()
    assert client.post("/webhooks", data=body(load_payload()), headers=JSON).status_code == 202
    assert client.post("/webhooks", data=b"{nope", headers=JSON).status_code == 400
    unavailable = create_app(env, queue=UnreachableQueue()).test_client()
    assert unavailable.post("/webhooks", data=body(load_payload()), headers=JSON).status_code == 503

    series: dict[str, list[dict[str, str]]] = {}
    exposed_series(client.get("/metrics").get_data(as_text=True), series)
    exposed_series(unavailable.get("/metrics").get_data(as_text=True), series)

    # The worker side: one of each outcome through the same signal receivers Celery calls.
    event = FakeTask(PROCESS_WEBHOOK, "(event_id='e', eventType='CREATE', appointment_id='a')")
    hook = FakeTask(RUN_HOOK)
    for task_id, retval in (("t1", "processed:CREATE"), ("t2", "dead_lettered:invalid")):
        worker_metrics._on_prerun(task_id=task_id, task=event)
        worker_metrics._on_postrun(task_id=task_id, task=event, retval=retval, state="SUCCESS")
    for retval in ("hook:crm", "dead_lettered:hook"):
        worker_metrics._on_postrun(task_id="h", task=hook, retval=retval, state="SUCCESS")
    for task in (event, hook):
        worker_metrics._on_retry(sender=task)
        worker_metrics._on_failure(sender=task)
    exposed_series(generate_latest(worker_metrics.exposition_registry()).decode(), series)
    return series


ALL_EXPRESSIONS = {
    **{f"rule {name}": expr for name, expr in rule_expressions().items()},
    **{f"panel {name}": expr for name, expr in dashboard_expressions().items()},
}


class TestShippedFiles:
    """The rules and the dashboard exist, parse, and cover what operators must be told."""

    def test_rules_cover_every_failure_an_operator_must_hear_of(self):
        text = " ".join(rule_expressions().values())
        for needed in (
            'engagehook_dead_letters{kind="event"}',  # dead letters growing
            "engagehook_oldest_pending_seconds",  # oldest pending message too old
            'engagehook_oldest_pending_seconds{source="spool"}',  # spool not draining
            'engagehook_hook_runs_total{outcome="dead_lettered"}',  # hook dead letters
            "reason=~",  # ingest 5xx / 503
            "engagehook_events_processed_total",  # no worker consuming
        ):
            assert needed in text, needed

    def test_every_alert_has_a_severity_and_a_summary(self):
        document = yaml.safe_load(RULES.read_text())
        for rule in (r for group in document["groups"] for r in group["rules"]):
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]

    def test_dashboard_is_grafana_json_with_a_datasource_variable(self):
        document = json.loads(DASHBOARD.read_text())
        assert document["uid"] and document["title"]
        variables = [v["name"] for v in document["templating"]["list"] if v["type"] == "datasource"]
        assert variables == ["datasource"]
        ids = [panel["id"] for panel in document["panels"]]
        assert len(ids) == len(set(ids))
        assert len(dashboard_expressions()) >= 10

    def test_operations_guide_points_at_the_files_instead_of_copying_rules(self):
        guide = OPERATIONS.read_text()
        assert "deploy/monitoring/alerts.rules.yml" in guide
        assert "deploy/monitoring/grafana-dashboard.json" in guide
        assert "```promql" not in guide


@pytest.mark.parametrize("where", sorted(ALL_EXPRESSIONS))
def test_expression_reads_only_series_engagehook_serves(where, served):
    expression = ALL_EXPRESSIONS[where]
    found = selectors(expression)
    assert found, f"{where} reads no engagehook metric"
    for metric, matchers in found:
        assert metric in served, f"{where}: {metric} is not served by web or worker"
        label_sets = served[metric]
        for label, operator, wanted in matchers:
            assert any(label in labels for labels in label_sets), (
                f"{where}: {metric} has no {label}"
            )
            if operator == "=":
                values = {labels.get(label) for labels in label_sets}
                assert wanted in values, f"{where}: {metric}{{{label}}} never is {wanted!r}"


def test_selector_extraction_sees_names_and_matchers():
    """The check above is only as good as this parser: it must see every selector."""
    found = selectors(
        'max(engagehook_a{kind="event", reason=~"x|y"}) and on() rate(engagehook_b_total[5m])'
    )
    assert found == [
        ("engagehook_a", [("kind", "=", "event"), ("reason", "=~", "x|y")]),
        ("engagehook_b_total", []),
    ]


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian/Ubuntu: apt-get install prometheus)")
    return path


def test_promtool_accepts_the_rules(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_in_promtool_rule_unit_tests(promtool):
    result = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=MONITORING,
    )
    assert result.returncode == 0, result.stdout + result.stderr
