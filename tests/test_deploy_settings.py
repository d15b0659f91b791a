"""The compose file and the Kubernetes manifests start the same roles as the local deployment (README) with the
same settings, and every setting they name exists."""

from __future__ import annotations

import re
import shlex
from typing import Any, get_args

import pytest

from tests.deploy_tools import ROOT
from tests.kustomize import Manifest, render
from tests.test_deploy_compose import resolved_compose
from tests.test_deploy_kubernetes import OVERLAYS, overlays
from tributary.auth.keys import new_key
from tributary.settings import Role, Settings

DISTRIBUTED_ROLES = set(get_args(Role)) - {"embedded"}
SETTING_NAMES = {f"TRIBUTARY_{name.upper()}" for name in Settings.model_fields}


def readme_roles() -> set[str]:
    return set(re.findall(r"tributary serve --role ([a-z-]+)", (ROOT / "README.md").read_text()))


def role_of(command: list[str]) -> str:
    """`serve --role X ...` -> X; `migrate` -> migrate."""
    if command[:1] == ["migrate"]:
        return "migrate"
    assert command[:2] == ["serve", "--role"], f"unexpected command {shlex.join(command)}"
    return command[2]


def compose_roles() -> dict[str, dict[str, str]]:
    """role -> the environment the compose file gives it."""
    services = resolved_compose()["services"]
    return {
        role_of(service["command"]): {k: str(v) for k, v in service["environment"].items()}
        for service in services.values()
        if service.get("image") == "tributary:local"
    }


def kubernetes_roles(overlay: str) -> dict[str, set[str]]:
    """role -> the names of the variables its pod gets (its env, and the whole ConfigMap and Secret it imports)."""
    manifests = render(OVERLAYS / overlay)
    imported: dict[str, set[str]] = {}
    for manifest in manifests:
        if manifest["kind"] in ("ConfigMap", "Secret"):
            imported[manifest["metadata"]["name"]] = set(manifest.get("data", manifest.get("stringData", {})))
    roles: dict[str, set[str]] = {}
    for workload in _workloads(manifests):
        [container] = workload["spec"]["template"]["spec"]["containers"]
        names = {e["name"] for e in container.get("env", [])}
        for source in container["envFrom"]:
            reference = source.get("configMapRef") or source["secretRef"]
            # The prod overlay leaves the Secret to the operator: it holds the keys of the dev overlay's.
            names |= imported.get(reference["name"], set()) or _dev_secret_keys(reference["name"])
        roles[role_of(container["args"])] = names
    return roles


def _workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet", "Job")]


def _dev_secret_keys(name: str) -> set[str]:
    [secret] = [
        m for m in render(OVERLAYS / "dev") if m["kind"] == "Secret" and m["metadata"]["name"] == name
    ]
    return set(secret["stringData"])


def test_readme_compose_and_kubernetes_start_every_role() -> None:
    assert readme_roles() == DISTRIBUTED_ROLES
    assert set(compose_roles()) == DISTRIBUTED_ROLES | {"migrate"}
    for overlay in overlays():
        assert set(kubernetes_roles(overlay)) == DISTRIBUTED_ROLES | {"migrate"}, overlay


def test_every_tributary_variable_is_a_setting() -> None:
    """In the compose file, the manifests and the image."""
    named = {name for env in compose_roles().values() for name in env}
    for overlay in overlays():
        named |= {name for names in kubernetes_roles(overlay).values() for name in names}
    named |= set(re.findall(r"TRIBUTARY_[A-Z_]+(?==)", (ROOT / "Dockerfile").read_text()))
    tributary = {name for name in named if name.startswith("TRIBUTARY_")}
    assert tributary - SETTING_NAMES == set()


@pytest.mark.parametrize("overlay", overlays())
def test_compose_and_kubernetes_set_the_same_variables_per_role(overlay: str) -> None:
    compose = {role: set(env) for role, env in compose_roles().items()}
    assert kubernetes_roles(overlay) == compose


def test_readme_settings_are_set_by_both() -> None:
    # The settings of the README's distributed deployment (the block that starts the roles); others, such as
    # the embedding endpoints, are the operator's choice.
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    [distributed] = [block for block in blocks if "tributary serve --role" in block]
    readme = set(re.findall(r"TRIBUTARY_[A-Z_]+(?==)", distributed))
    assert {"TRIBUTARY_KAFKA_BOOTSTRAP", "TRIBUTARY_DATABASE_URL", "TRIBUTARY_REDIS_URL"} <= readme
    for role in DISTRIBUTED_ROLES:
        assert readme <= set(compose_roles()[role])
        for overlay in overlays():
            assert readme <= kubernetes_roles(overlay)[role]


def test_compose_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for role, environment in compose_roles().items():
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.database_url is not None and settings.redis_url is not None, role
        for name in environment:
            monkeypatch.delenv(name)


def test_kubernetes_config_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for overlay in overlays():
        [config] = [m for m in render(OVERLAYS / overlay) if m["kind"] == "ConfigMap"]
        data: dict[str, Any] = config["data"]
        for name, value in data.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("TRIBUTARY_ADMIN_KEY", new_key().key)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.storage_root == data["TRIBUTARY_STORAGE_ROOT"]
