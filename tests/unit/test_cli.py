"""The `tributary` command's argument and settings checks (no server is started: each refusal comes first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from entrypoints.cli import app


def test_only_the_api_roles_take_several_worker_processes() -> None:
    for role in ("embedded", "applier", "projector"):
        answer = CliRunner().invoke(app, ["serve", "--role", role, "--workers", "2"])
        assert answer.exit_code == 2 and "runs as one process" in answer.output, answer.output


def test_an_unknown_role_is_refused() -> None:
    answer = CliRunner().invoke(app, ["serve", "--role", "indexer"])
    assert answer.exit_code == 2 and "unknown role" in answer.output


def test_a_bad_setting_is_one_line_naming_the_variable_and_the_expected_form(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIBUTARY_")}
    run = subprocess.run(
        [sys.executable, "-m", "tributary", "migrate"],
        env=env | {"TRIBUTARY_ADMIN_KEY": "hunter2", "TRIBUTARY_DATA_DIR": str(tmp_path)},
        cwd=tmp_path,  # no .env file
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    assert run.stdout == ""
    (line,) = run.stderr.splitlines()
    assert line.startswith(
        "tributary: TRIBUTARY_ADMIN_KEY: must be an API key in the trb_<prefix>_<secret> format"
    )
    # How to make one, and never the value itself.
    assert "new_key()" in line and "hunter2" not in line
