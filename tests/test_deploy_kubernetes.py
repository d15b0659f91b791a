"""deploy/kubernetes, checked without a cluster: each overlay rendered, and every object validated against the
Kubernetes schema (kubernetes-validate ships the schemas)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy_tools import ROOT
from tests.kustomize import Manifest, render

OVERLAYS = ROOT / "deploy" / "kubernetes" / "overlays"
# The oldest Kubernetes the manifests are meant for; every API they use is GA there.
KUBERNETES_VERSION = "1.30"


def overlays() -> list[str]:
    return sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())


def by_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def test_there_are_dev_and_prod_overlays() -> None:
    assert {"dev", "prod"} <= set(overlays())


@pytest.mark.parametrize("overlay", overlays())
def test_every_object_is_valid(overlay: str) -> None:
    manifests = render(OVERLAYS / overlay)
    assert manifests
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{overlay}: {manifest['kind']}/{manifest['metadata']['name']}: {error.message}")


@pytest.mark.parametrize("overlay", overlays())
def test_the_rendering_is_kubectls(overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the rendering of tests/kustomize.py is not compared with it")
    result = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    def key(manifest: Manifest) -> tuple[str, str]:
        return manifest["kind"], manifest["metadata"]["name"]

    assert sorted(render(OVERLAYS / overlay), key=key) == sorted(yaml.safe_load_all(result.stdout), key=key)


@pytest.mark.parametrize("overlay", overlays())
def test_workloads(overlay: str) -> None:
    manifests = render(OVERLAYS / overlay)
    deployments = by_kind(manifests, "Deployment")
    assert set(deployments) == {"command-api", "query-api", "projector"}
    [applier] = by_kind(manifests, "StatefulSet").values()
    [migrate] = by_kind(manifests, "Job").values()
    assert pod_spec(migrate)["containers"][0]["args"] == ["migrate"]
    # Static membership: each applier pod's stable name is its Kafka group instance id.
    [container] = pod_spec(applier)["containers"]
    instance_id = {e["name"]: e for e in container["env"]}["TRIBUTARY_INSTANCE_ID"]
    assert instance_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    budgets = by_kind(manifests, "PodDisruptionBudget")
    for workload in [*deployments.values(), applier, migrate]:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            assert container["resources"]["requests"], workload["metadata"]["name"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert {"configMapRef": {"name": "tributary-config"}} in container["envFrom"]
            assert {"secretRef": {"name": "tributary-secrets"}} in container["envFrom"]
    for name in ("command-api", "query-api"):
        [container] = pod_spec(deployments[name])["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for workload in [*deployments.values(), applier]:
        labels = workload["spec"]["selector"]["matchLabels"]
        assert any(b["spec"]["selector"]["matchLabels"] == labels for b in budgets.values()), (
            f"{workload['metadata']['name']} has no PodDisruptionBudget"
        )


@pytest.mark.parametrize("overlay", overlays())
def test_autoscaling(overlay: str) -> None:
    autoscalers = by_kind(render(OVERLAYS / overlay), "HorizontalPodAutoscaler")
    query = autoscalers["query-api"]["spec"]
    assert query["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "query-api"}
    assert [m["resource"]["name"] for m in query["metrics"]] == ["cpu"]
    applier = autoscalers["applier"]["spec"]
    assert applier["scaleTargetRef"]["kind"] == "StatefulSet"
    [lag] = applier["metrics"]
    assert lag["type"] == "External"
    assert lag["external"]["metric"]["selector"]["matchLabels"] == {"consumergroup": "tributary.applier"}


@pytest.mark.parametrize("overlay", overlays())
def test_network_policies_close_everything_else(overlay: str) -> None:
    policies = by_kind(render(OVERLAYS / overlay), "NetworkPolicy")
    deny = policies["tributary-default-deny"]["spec"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "tributary"}}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    # HTTP(S) goes only to private ranges: the DeepLake error reporter's public host is unreachable.
    for rule in policies["tributary-egress"]["spec"]["egress"]:
        if {p["port"] for p in rule["ports"]} & {80, 443}:
            assert all(not peer["ipBlock"]["cidr"].startswith("0.0.0.0") for peer in rule["to"])
