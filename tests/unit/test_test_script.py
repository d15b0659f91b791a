"""./test.sh installs only when what the install resolves from changed, not on every run, and runs the TypeScript
SDK's tests after pytest. Run here in a copy of the checkout whose venv, tools, npm and services script are
stand-ins that record how they were called."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]
STAND_IN = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >>"{log}"
if [ "${{1:-}}" = -VV ]; then echo "Python 3.11.0 (stand-in)"; fi
exit 0
"""
# `npm ci` fills node_modules; `npm test` exits with STAND_IN_NPM_TEST_RC.
NPM_STAND_IN = """#!/usr/bin/env bash
echo "npm $*" >>"{log}"
if [ "$1" = ci ]; then mkdir -p node_modules; fi
if [ "$1" = test ]; then exit "${{STAND_IN_NPM_TEST_RC:-0}}"; fi
exit 0
"""


def checkout(tmp_path: Path) -> tuple[Path, Path]:
    tree, log = tmp_path / "tree", tmp_path / "calls.log"
    (tree / "deploy/local").mkdir(parents=True)
    (tree / ".venv/bin").mkdir(parents=True)
    (tree / "bin").mkdir()
    shutil.copy(ROOT / "test.sh", tree)
    shutil.copy(ROOT / "pyproject.toml", tree)
    (tree / "clients/python").mkdir(parents=True)
    shutil.copy(ROOT / "clients/python/pyproject.toml", tree / "clients/python")
    (tree / "clients/js").mkdir(parents=True)
    shutil.copy(ROOT / "clients/js/package-lock.json", tree / "clients/js")
    (tree / "bin/npm").write_text(NPM_STAND_IN.format(log=log))
    (tree / "bin/npm").chmod(0o755)
    for tool in (
        tree / "deploy/local/services.sh",
        *(tree / ".venv/bin" / n for n in ("python", "ruff", "mypy")),
        # On the PATH, so that test.sh installs no Debian package for the deployment checks.
        *(tree / "bin" / n for n in ("docker-compose", "promtool")),
    ):
        tool.write_text(STAND_IN.format(log=log))
        tool.chmod(0o755)
    return tree, log


def run(tree: Path, log: Path, **extra: str) -> tuple[int, list[str]]:
    """test.sh's exit code, and the stand-ins' calls in order."""
    log.unlink(missing_ok=True)
    env = os.environ | extra
    env |= {"TRIBUTARY_WHEELHOUSE": str(tree / "wheels"), "PATH": f"{tree / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(tree / "test.sh")], cwd=tree, env=env, capture_output=True)
    return done.returncode, log.read_text().splitlines()


def installs(tree: Path, log: Path) -> tuple[int, int]:
    """How many times one run of test.sh installed the Python packages, and the TypeScript SDK's."""
    rc, calls = run(tree, log)
    assert rc == 0
    assert calls[-1] == "npm test"
    pip = sum(line.startswith("python -m pip install") and " -e " in line for line in calls)
    return pip, calls.count("npm ci --no-audit --no-fund")


def test_an_install_runs_again_only_when_what_it_resolves_from_changes(tmp_path: Path) -> None:
    tree, log = checkout(tmp_path)
    assert installs(tree, log) == (1, 1)
    assert installs(tree, log) == (0, 0)
    with (tree / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# a changed requirement\n")
    assert installs(tree, log) == (1, 0)
    assert installs(tree, log) == (0, 0)
    with (tree / "clients/python/pyproject.toml").open("a") as client:
        client.write("\n# the SDK's requirements changed\n")
    assert installs(tree, log) == (1, 0)
    with (tree / "clients/js/package-lock.json").open("a") as lockfile:
        lockfile.write("\n")
    assert installs(tree, log) == (0, 1)
    assert installs(tree, log) == (0, 0)


def test_the_typescript_suite_runs_after_pytest_and_its_failure_fails_the_script(tmp_path: Path) -> None:
    tree, log = checkout(tmp_path)
    rc, calls = run(tree, log, STAND_IN_NPM_TEST_RC="3")
    assert rc == 3
    pytest = next(i for i, call in enumerate(calls) if call.startswith("python -m pytest"))
    assert calls.index("npm test") > pytest
