"""deploy/prometheus: the alert rules and scrape config pass promtool, the rules' unit tests pass, and every
metric they use is one Tributary exports."""

from __future__ import annotations

import re

import yaml

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


def test_rules_use_only_metrics_the_code_exports() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    expressions = " ".join(rule["expr"] for group in rules["groups"] for rule in group["rules"])
    used = set(re.findall(r"\btributary_[a-z_]+", expressions))
    assert used
    code = " ".join(
        path.read_text()
        for package in ("tributary", "entrypoints", "command_api", "query_api", "workers")
        for path in (ROOT / package).rglob("*.py")
    )
    for metric in used:
        assert metric in code, f"the alert rules use {metric}, which no code exports"


def test_prometheus_scrapes_every_http_role_of_the_compose_file() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    services = resolved_compose()["services"]
    http_roles = {
        name
        for name, service in services.items()
        if service.get("image") == "tributary:local" and "ports" in service
    }
    assert targets == {f"{name}:8080" for name in http_roles}
