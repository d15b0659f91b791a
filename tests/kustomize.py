"""Renders a kustomization the way `kubectl kustomize` does, for the features deploy/kubernetes uses: resources
(files and directories), namespace, images, replicas and JSON 6902 patches with a target. Anything else is
refused, so the rendering never silently differs; tests/test_deploy_kubernetes.py compares it with kubectl's
where kubectl is installed. CI has no kubectl, and the Kubernetes checks must still run there."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

Manifest = dict[str, Any]
KNOWN_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches"}
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def render(directory: Path) -> list[Manifest]:
    kustomization: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = kustomization.keys() - KNOWN_FIELDS
    if unknown:
        raise ValueError(f"{directory}: tests/kustomize.py does not render {sorted(unknown)}")
    manifests: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        if path.is_dir():
            manifests += render(path)
        else:
            manifests += [m for m in yaml.safe_load_all(path.read_text()) if m]
    for patch in kustomization.get("patches", []):
        operations = yaml.safe_load(
            patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
        )
        targets = [m for m in manifests if _selected(m, patch["target"])]
        if not targets:
            raise ValueError(f"{directory}: a patch selects nothing: {patch['target']}")
        for manifest in targets:
            manifest.update(jsonpatch.apply_patch(manifest, operations))
    if namespace := kustomization.get("namespace"):
        for manifest in manifests:
            if manifest["kind"] not in CLUSTER_SCOPED_KINDS:
                manifest["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        for container in _containers(manifests):
            if re.split(r"[:@]", container["image"])[0] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    for replicas in kustomization.get("replicas", []):
        [workload] = [
            m
            for m in manifests
            if m["metadata"]["name"] == replicas["name"] and m["kind"] in ("Deployment", "StatefulSet")
        ]
        workload["spec"]["replicas"] = replicas["count"]
    return manifests


def _selected(manifest: Manifest, target: dict[str, str]) -> bool:
    # kustomize matches kind and name as anchored regular expressions, labelSelector as equalities.
    if "kind" in target and not re.fullmatch(target["kind"], manifest["kind"]):
        return False
    if "name" in target and not re.fullmatch(target["name"], manifest["metadata"]["name"]):
        return False
    labels = manifest["metadata"].get("labels", {})
    for requirement in filter(None, target.get("labelSelector", "").split(",")):
        key, value = requirement.split("=")
        if labels.get(key) != value:
            return False
    return True


def _containers(manifests: list[Manifest]) -> list[dict[str, Any]]:
    pods = [m["spec"]["template"]["spec"] for m in manifests if "template" in m.get("spec", {})]
    return [c for pod in pods for c in pod.get("containers", []) + pod.get("initContainers", [])]
