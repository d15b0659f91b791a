"""deploy/compose, checked without a Docker engine by Debian's docker-compose (`config` resolves and validates the
file against the Compose schema)."""

from __future__ import annotations

import functools
import os
import subprocess
from typing import Any

import yaml

from tests.deploy_tools import ROOT, require_tool, run_tool
from tributary.auth.keys import new_key

COMPOSE_FILE = ROOT / "deploy" / "compose" / "docker-compose.yml"
INSTALL = "apt-get install --no-install-recommends docker-compose"


@functools.cache
def resolved_compose() -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors merged, variables substituted); read-only."""
    compose = require_tool("docker-compose", INSTALL)
    environment = {**os.environ, "TRIBUTARY_ADMIN_KEY": new_key().key}
    result = run_tool(compose, "-f", str(COMPOSE_FILE), "config", env=environment)
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_config_is_valid_and_every_service_has_what_it_waits_for() -> None:
    services = resolved_compose()["services"]
    assert {"kafka", "postgres", "redis", "s3", "prometheus", "grafana", "migrate"} <= services.keys()
    for name, service in services.items():
        for dependency, wait in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} waits for {dependency}, which is not a service"
            if wait["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency] or services[dependency].get("build"), (
                    f"{name} waits for {dependency} to be healthy, but {dependency} has no healthcheck"
                )


def test_roles_start_after_the_migration() -> None:
    services = resolved_compose()["services"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for service in services.values():
        if service.get("command", [])[:1] == ["serve"]:
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_admin_key_is_required_not_committed() -> None:
    compose = require_tool("docker-compose", INSTALL)
    environment = {k: v for k, v in os.environ.items() if k != "TRIBUTARY_ADMIN_KEY"}
    result = subprocess.run(
        [compose, "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "TRIBUTARY_ADMIN_KEY" in result.stderr
