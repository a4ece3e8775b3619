"""Alert rules, dashboard and the monitor in the chart.

The rule file is checked by promtool (syntax, then behaviour on sample series), every metric a rule or a
dashboard panel queries must be defined in the services' code (a renamed metric would otherwise silence an
alert for ever), and every rule links a runbook section that exists in docs/operations.md.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from .conftest import ROOT, Profile

RULES = ROOT / "helm" / "lfr" / "files" / "prometheus-rules.yaml"
DASHBOARD = ROOT / "helm" / "lfr" / "files" / "grafana-dashboard.json"
PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "rules_test.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def _dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def _metrics_in(expr: str) -> set[str]:
    """Metric names an expression selects (lfr_* names; functions and label names are not metrics)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    return {m for m in re.findall(r"\b(lfr_[a-z0-9_]+)\b", without_labels) if m not in PROMQL_WORDS}


def _defined_metrics() -> set[str]:
    """Names the services export: Counter/Gauge/Histogram definitions (histograms add their series)."""
    names: set[str] = set()
    pattern = re.compile(r"\b(Counter|Gauge|Histogram)\(\s*\"(lfr_[a-z0-9_]+)\"", re.S)
    for path in (ROOT / "services" / "lfr").rglob("*.py"):
        for kind, name in pattern.findall(path.read_text()):
            names.add(name)
            if kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool not installed (Debian package prometheus; `make promtool-deps` installs it as root)"
        )
    return path


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_rules_fire_on_the_series_they_watch() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", str(PROMTOOL_TESTS)],
        capture_output=True,
        text=True,
        cwd=PROMTOOL_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_a_rule_or_panel_queries_exists_in_the_code() -> None:
    defined = _defined_metrics()
    assert "lfr_stage_dead_letters_total" in defined  # the scan itself works
    used = {expr: _metrics_in(expr) for expr in [r["expr"] for r in _rules()] + _dashboard_exprs()}
    assert all(used.values()), [e for e, m in used.items() if not m]
    missing = {expr: sorted(m - defined) for expr, m in used.items() if m - defined}
    assert not missing, missing


def test_the_rules_cover_what_operations_must_hear_about() -> None:
    watched = set().union(*(_metrics_in(r["expr"]) for r in _rules()))
    for metric in (
        "lfr_consumer_lag_total",  # lag growing
        "lfr_monitor_camera_silent",  # camera silent
        "lfr_stage_dead_letters_total",  # dead letters
        "lfr_webhook_attempts_failed_total",  # webhook failures
        "lfr_keystore_errors_total",  # key-store errors
        "lfr_audit_append_failures_total",  # audit append failures
    ):
        assert metric in watched, metric


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_rule_links_a_runbook_section_that_exists() -> None:
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", OPERATIONS.read_text(), re.M)}
    for rule in _rules():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/operations.md", url
        assert anchor in anchors, f"{rule['alert']}: no section for #{anchor} in docs/operations.md"


def test_chart_renders_the_rules_and_dashboard(production: Profile) -> None:
    (rule,) = production.of_kind("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rendered = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert [r["alert"] for r in rendered] == [r["alert"] for r in _rules()]
    assert all(r["annotations"]["runbook_url"].startswith("docs/operations.md#") for r in rendered)
    (dashboard,) = [
        c for c in production.of_kind("ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    ]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["lfr-operations.json"])["uid"] == "lfr-operations"


def test_runbook_links_follow_the_configured_base(rc: ModuleType) -> None:
    base = "https://docs.police.example/lfr/operations"
    rendered = rc.render(
        {"observability": {"prometheusRule": {"enabled": True}, "runbookBaseUrl": base}},
        release="lfr",
        namespace="lfr",
    )
    (rule,) = [o for o in rc.objects(rendered) if o["kind"] == "PrometheusRule"]
    urls = {r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert urls and all(u.startswith(base + "#") for u in urls)


def test_monitor_runs_once_with_kafka_and_redis_only(rc: ModuleType, production: Profile) -> None:
    (deploy,) = [d for d in production.of_kind("Deployment") if d["metadata"]["name"].endswith("-monitor")]
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    container = rc.pod_template(deploy)["spec"]["containers"][0]
    assert container["args"] == ["monitor"]
    env = {e["name"]: e for e in container["env"]}
    assert env["LFR_MONITOR__APP_ID"]["value"] == production.merged["monitor"]["appId"]
    for absent in ("LFR_MILVUS__URI", "LFR_REDIS__KEYSTORE_URL", "LFR_CRYPTO__ALERT_KEY", "LFR_MODELS__DIR"):
        assert absent not in env, absent
    (policy,) = [p for p in production.of_kind("NetworkPolicy") if p["metadata"]["name"].endswith("-monitor")]
    assert len(policy["spec"]["egress"]) == 3  # DNS, Kafka, Redis


def test_the_topics_job_creates_the_changelogs_of_the_configured_monitor(rc: ModuleType) -> None:
    rendered = rc.render({"monitor": {"appId": "force-monitor"}}, release="lfr", namespace="lfr")
    (job,) = [o for o in rc.objects(rendered) if o["kind"] == "Job"]
    env = {e["name"]: e.get("value") for e in rc.pod_template(job)["spec"]["containers"][0]["env"]}
    assert env["LFR_MONITOR__APP_ID"] == "force-monitor"
    (deploy,) = [
        o
        for o in rc.objects(rendered)
        if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-monitor")
    ]
    monitor_env = {e["name"]: e.get("value") for e in rc.pod_template(deploy)["spec"]["containers"][0]["env"]}
    assert monitor_env["LFR_MONITOR__APP_ID"] == "force-monitor"
