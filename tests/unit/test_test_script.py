"""./test.sh installs only when what the install resolves from changed, not on every run. Run here in a copy
of the checkout whose venv, tools and services script are stand-ins that record how they were called."""

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


def checkout(tmp_path: Path) -> tuple[Path, Path]:
    tree, log = tmp_path / "tree", tmp_path / "calls.log"
    (tree / "deploy/local").mkdir(parents=True)
    (tree / ".venv/bin").mkdir(parents=True)
    (tree / "bin").mkdir()
    shutil.copy(ROOT / "test.sh", tree)
    shutil.copy(ROOT / "pyproject.toml", tree)
    (tree / "clients/python").mkdir(parents=True)
    shutil.copy(ROOT / "clients/python/pyproject.toml", tree / "clients/python")
    for tool in (
        tree / "deploy/local/services.sh",
        *(tree / ".venv/bin" / n for n in ("python", "ruff", "mypy")),
        # On the PATH, so that test.sh installs no Debian package for the deployment checks.
        *(tree / "bin" / n for n in ("docker-compose", "promtool")),
    ):
        tool.write_text(STAND_IN.format(log=log))
        tool.chmod(0o755)
    return tree, log


def installs(tree: Path, log: Path) -> int:
    log.unlink(missing_ok=True)
    env = os.environ | {
        "TRIBUTARY_WHEELHOUSE": str(tree / "wheels"),
        "PATH": f"{tree / 'bin'}:{os.environ['PATH']}",
    }
    subprocess.run(["bash", str(tree / "test.sh")], cwd=tree, env=env, check=True, capture_output=True)
    return sum(
        line.startswith("python -m pip install") and " -e " in line for line in log.read_text().splitlines()
    )


def test_the_install_runs_again_only_when_pyproject_changes(tmp_path: Path) -> None:
    tree, log = checkout(tmp_path)
    assert installs(tree, log) == 1
    assert installs(tree, log) == 0
    with (tree / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# a changed requirement\n")
    assert installs(tree, log) == 1
    assert installs(tree, log) == 0
    with (tree / "clients/python/pyproject.toml").open("a") as client:
        client.write("\n# the SDK's requirements changed\n")
    assert installs(tree, log) == 1
