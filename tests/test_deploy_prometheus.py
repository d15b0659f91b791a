"""deploy/prometheus and deploy/grafana: the alert rules and scrape config pass promtool, the rules' unit tests
pass, and every metric they and the dashboard use is one Tributary exports."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import REGISTRY

import tributary.metrics  # noqa: F401  (declares the metrics in the registry)
from tests.deploy_tools import ROOT, require_tool, run_tool
from tests.test_deploy_compose import resolved_compose

PROMETHEUS = ROOT / "deploy" / "prometheus"
INSTALL = "apt-get install --no-install-recommends prometheus (it ships promtool)"


def test_promtool_checks_the_rules_and_the_config() -> None:
    promtool = require_tool("promtool", INSTALL)
    run_tool(promtool, "check", "rules", str(PROMETHEUS / "alerts.yml"))
    run_tool(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))


def test_the_alerts_fire_when_they_should() -> None:
    promtool = require_tool("promtool", INSTALL)
    run_tool(promtool, "test", "rules", str(PROMETHEUS / "alerts-test.yml"))


def exported_names() -> set[str]:
    """Every series name tributary/metrics.py's metrics expose (a histogram's _bucket, _count and _sum)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in suffixes.get(family.type, [""])
        if family.name.startswith("tributary_")
    }


def test_rules_use_only_metrics_the_code_exports() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    expressions = " ".join(rule["expr"] for group in rules["groups"] for rule in group["rules"])
    used = set(re.findall(r"\btributary_[a-z_]+", expressions))
    assert used
    assert used <= exported_names(), f"the alert rules use metrics no code exports: {used - exported_names()}"


def test_prometheus_scrapes_every_role_of_the_compose_file() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    services = resolved_compose()["services"]
    # Every `tributary serve` process: the API roles on their HTTP port, the workers on their health port.
    roles = {
        name
        for name, service in services.items()
        if service.get("image") == "tributary:local" and service.get("command", [])[:1] == ["serve"]
    }
    assert roles == {"applier", "projector", "command-api", "query-api"}
    assert targets == {f"{name}:8080" for name in roles}


def dashboard_queries() -> list[str]:
    """The PromQL of every panel of deploy/grafana/dashboards/tributary.json."""
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "tributary.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_uses_only_metrics_the_code_exports() -> None:
    used = set(re.findall(r"\btributary_[a-z_]+", " ".join(dashboard_queries())))
    assert used <= exported_names(), f"the dashboard uses metrics no code exports: {used - exported_names()}"
    shown = " ".join(dashboard_queries())
    families = {family.name for family in REGISTRY.collect() if family.name.startswith("tributary_")}
    assert {family for family in families if family not in shown} == set(), "metrics without a panel"
