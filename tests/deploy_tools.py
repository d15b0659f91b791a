"""Command-line tools the offline checks of the deployment files run (hadolint, docker-compose, promtool).

test.sh installs them; a missing one fails the test under CI=true and skips it with the install command elsewhere.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import IN_CI

ROOT = Path(__file__).resolve().parent.parent


def require_tool(command: str, install: str) -> str:
    # A tool installed with pip lands beside the interpreter, which need not be on PATH.
    found = shutil.which(command) or shutil.which(command, path=str(Path(sys.executable).parent))
    if found is None:
        reason = f"{command} is not installed: {install} (test.sh does it)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def run_tool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs a checker and fails the test with its output when it refuses."""
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result
