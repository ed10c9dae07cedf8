"""The shipped Grafana dashboard and Prometheus configuration cannot drift from the code:
every metric their queries name is one ``axis serve`` exports, and the YAML parses."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from axis.metrics import HubMetrics
from axis.settings import Settings

CONFIG = Path(__file__).resolve().parents[1] / "config"
DASHBOARD = CONFIG / "grafana" / "axis-dashboard.json"
PROMETHEUS = CONFIG / "prometheus" / "prometheus.yml"
ALERTS = CONFIG / "prometheus" / "axis-alerts.yml"
METRIC_NAME = re.compile(r"\baxis_[a-z0-9_]+\b")
# The sample names each family type exposes (prometheus_client, text format 0.0.4).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry can export, labelled families with no child yet
    included."""
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SUFFIXES[family.type]
    }


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """What worker 0 of ``axis serve`` exports (queue depths included)."""
    metrics = HubMetrics()
    metrics.watch_queues(dict)
    return exported_names(metrics.registry)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def yaml_file(path: Path) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), path
    return loaded


def test_every_dashboard_query_names_exported_metrics(
    dashboard: dict[str, Any], exported: set[str]
) -> None:
    named = {name for expr in queries(dashboard) for name in METRIC_NAME.findall(expr)}
    assert named, "the dashboard queries no axis_ metric"
    assert named <= exported, f"not exported by axis serve: {sorted(named - exported)}"


def test_the_dashboard_shows_what_operators_watch(dashboard: dict[str, Any]) -> None:
    exprs = queries(dashboard)
    for needed in (
        "axis_submissions_total", "axis_rejections_total", "axis_queue_messages",
        "axis_queue_consumers", "axis_dead_letters_total", "axis_retries_by_level_total",
        "axis_log_appends_total", "axis_registry_systems", "axis_registry_certificates",
        "axis_certificates_expiring",
    ):  # fmt: skip
        assert any(needed in expr for expr in exprs), needed
    for quantile in ("0.5", "0.99"):
        assert any(f"histogram_quantile({quantile}, " in e and "axis_receipt_seconds_bucket" in e
                   for e in exprs), quantile  # fmt: skip


def test_the_dashboard_is_importable(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_prometheus_scrapes_the_workers_metrics_ports() -> None:
    config = yaml_file(PROMETHEUS)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "axis-hub"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    ports = [int(target.rsplit(":", 1)[1]) for target in targets]
    first = int(Settings.__dataclass_fields__["metrics_port"].default)  # type: ignore[arg-type]
    assert ports == list(range(first, first + len(ports)))  # worker i: metrics_port + i
    assert all(t.startswith("127.0.0.1:") for t in targets)  # where axis serve listens
    assert config["rule_files"] == [ALERTS.name]


def test_alert_rules_name_exported_metrics(exported: set[str]) -> None:
    rules = [rule for group in yaml_file(ALERTS)["groups"] for rule in group["rules"]]
    assert rules
    for rule in rules:
        assert rule["alert"] and rule["annotations"]["summary"], rule
        named = set(METRIC_NAME.findall(rule["expr"]))
        assert named <= exported, f"{rule['alert']}: {sorted(named - exported)}"
