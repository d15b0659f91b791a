"""The `tributary` command's argument checks (no server is started: each refusal comes first)."""

from __future__ import annotations

from typer.testing import CliRunner

from tributary.cli import app


def test_only_the_api_roles_take_several_worker_processes() -> None:
    for role in ("embedded", "applier", "projector"):
        answer = CliRunner().invoke(app, ["serve", "--role", role, "--workers", "2"])
        assert answer.exit_code == 2 and "runs as one process" in answer.output, answer.output


def test_an_unknown_role_is_refused() -> None:
    answer = CliRunner().invoke(app, ["serve", "--role", "indexer"])
    assert answer.exit_code == 2 and "unknown role" in answer.output
