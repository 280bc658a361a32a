"""The Grafana dashboard and the alerts: only series the service exports, valid PromQL
(promtool), alert unit tests (promtool test rules), runbook sections that exist.

promtool comes from Debian's ``prometheus`` package, which ``make test`` installs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from ecr_ocir_sync.observability.metrics import Metrics
from tests.support.images import Pusher, build_image, layer_bytes
from tests.support.registry import RegistryServer
from tests.support.service import ServiceProcess, ecr_event, service_env

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "ecr-ocir-sync.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "tests"
README = ROOT / "README.md"

# Labels Prometheus itself attaches to every scraped series (ServiceMonitor or plain scrape).
TARGET_LABELS = {"instance", "job", "namespace", "pod", "service", "container", "endpoint"}
SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}
METRIC = re.compile(r"\becr_ocir_sync_[a-z0-9_]+")
SELECTOR = re.compile(r"\b(ecr_ocir_sync_[a-z0-9_]+)\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: install Debian's prometheus package (`make deps`)"
    return found


def _panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title / refId, expression) for every query of the dashboard."""
    return [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in _panels()
        for target in panel["targets"]
    ]


def _alert_rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def _as_promql(expression: str) -> str:
    """Grafana's variables replaced by what they expand to, so promtool can parse it."""
    expression = re.sub(r"\$__(rate_)?interval\b", "5m", expression)
    return re.sub(r"\$\{?\w+\}?", ".*", expression)


# -- what the service exports -----------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Sample name → label names, from a real service's /metrics after some traffic, and the
    label names each series declares (labelled series without samples have none to show)."""
    root = tmp_path_factory.mktemp("monitoring")
    ecr = RegistryServer(root / "ecr").start()
    mel = RegistryServer(root / "mel").start()
    service = ServiceProcess(root / "data", service_env(ecr.host, {"mel": mel.host}))
    try:
        service.start()
        pusher = Pusher(ecr.url)
        digest = pusher.image("watched", "1", build_image([layer_bytes(20_000, 300)]))
        pusher.close()
        answer = service.post(ecr_event("watched", "1", digest=digest))
        service.wait_for_job(answer.json()["job_id"])
        service.post(ecr_event("watched", "2", result="FAILURE"))  # ignored
        service.post(ecr_event("watched", "3"), key="wrong")  # rejected
        text = service.metrics()
    finally:
        service.stop()
        mel.stop()
        ecr.stop()
    declared = {
        collector._name: set(collector._labelnames)  # the declared labels
        for collector in vars(Metrics()).values()
        if isinstance(collector, MetricWrapperBase)
    }
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        base = family.name.removesuffix("_total") if family.type == "counter" else family.name
        labels = declared.get(base, set()) | declared.get(f"{base}_total", set())
        for suffix in SAMPLE_SUFFIXES[family.type]:
            names[f"{family.name}{suffix}"] = set(labels) | (
                {"le"} if suffix == "_bucket" else set()
            )
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def _problems(expression: str, exported: dict[str, set[str]]) -> list[str]:
    used = set(METRIC.findall(expression))
    problems = [f"{name} is not exported" for name in sorted(used - set(exported))]
    known = TARGET_LABELS.union(*(exported.get(name, set()) for name in used))
    problems += [
        f"{name} has no label {label!r}"
        for name, matchers in SELECTOR.findall(expression)
        for label in MATCHER_LABEL.findall(matchers)
        if label not in exported.get(name, set()) | TARGET_LABELS
    ]
    problems += [
        f"no series in it has the label {label!r}"
        for grouping in GROUPING.findall(expression)
        for label in filter(None, (part.strip() for part in grouping.split(",")))
        if label not in known
    ]
    return problems


def test_service_exports_the_series_the_dashboard_and_alerts_rely_on(exported):
    for name in (
        "ecr_ocir_sync_workers_alive",
        "ecr_ocir_sync_workers_configured",
        "ecr_ocir_sync_queue_oldest_pending_age_seconds",
        "ecr_ocir_sync_job_store_writable",
        "ecr_ocir_sync_reconcile_interval_seconds",
    ):
        assert name in exported
    assert "reason" in exported["ecr_ocir_sync_blob_retries_total"]


def test_dashboard_queries_use_only_exported_series_and_labels(exported):
    problems = {
        where: found
        for where, expression in _dashboard_queries()
        if (found := _problems(expression, exported))
    }
    assert problems == {}


def test_dashboard_legends_name_labels_the_queries_keep(exported):
    for panel in _panels():
        for target in panel["targets"]:
            grouped = {
                label.strip()
                for grouping in GROUPING.findall(target["expr"])
                for label in grouping.split(",")
            }
            assert set(LEGEND_LABEL.findall(target["legendFormat"])) <= grouped, panel["title"]


def test_alert_expressions_use_only_exported_series_and_labels(exported):
    problems = {
        rule["alert"]: found
        for rule in _alert_rules()
        if (found := _problems(rule["expr"], exported))
    }
    assert problems == {}


# -- PromQL validity ----------------------------------------------------------------------


def test_dashboard_queries_parse_as_promql(tmp_path):
    rules = [
        {"record": f"dashboard:query_{index}", "expr": _as_promql(expression)}
        for index, (_, expression) in enumerate(_dashboard_queries())
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    checked = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alert_rules_pass_promtool_check():
    checked = subprocess.run(
        [_promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alert_rules())} rules found" in checked.stdout


@pytest.mark.parametrize("test_file", sorted(ALERT_TESTS.glob("*.test.yaml")), ids=lambda p: p.name)
def test_alert_unit_tests_pass(test_file):
    tested = subprocess.run(
        [_promtool(), "test", "rules", test_file.name],
        cwd=ALERT_TESTS,
        capture_output=True,
        text=True,
        check=False,
    )

    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_test_file_where_it_fires_and_where_it_stays_silent(rule):
    checks = [
        check
        for path in ALERT_TESTS.glob("*.test.yaml")
        for case in yaml.safe_load(path.read_text())["tests"]
        for check in case.get("alert_rule_test", [])
        if check["alertname"] == rule["alert"]
    ]

    assert any(check["exp_alerts"] for check in checks), "no case where it fires"
    assert any(not check["exp_alerts"] for check in checks), "no case where it stays silent"


# -- dashboard shape, runbooks, Kubernetes copies -----------------------------------------


def test_dashboard_is_import_ready_with_a_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ids = [panel["id"] for panel in dashboard["panels"]]

    assert dashboard["uid"] == "ecr-ocir-sync"
    assert "id" not in dashboard  # an id would clash with whatever the importing Grafana holds
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _readme_anchors() -> set[str]:
    return {
        _anchor(line.lstrip("#"))
        for line in README.read_text().splitlines()
        if line.startswith("#")
    }


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_names_its_runbook_section_in_the_readme(rule):
    page, _, anchor = rule["annotations"]["runbook"].partition("#")

    assert page == "README.md"
    assert anchor == _anchor(rule["alert"])
    assert anchor in _readme_anchors()


def test_readme_lists_every_dashboard_panel():
    text = README.read_text()
    missing = [panel["title"] for panel in _panels() if f"**{panel['title']}**" not in text]

    assert missing == []


def test_kubernetes_copies_match_the_dashboard_and_the_rules_file():
    checked = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render-monitoring.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stderr
