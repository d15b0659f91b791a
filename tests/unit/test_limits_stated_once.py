"""The limits several parts must agree on come from tributary/limits.py: no other source spells them, and the
settings and the brokers we deploy are tied to them."""

from __future__ import annotations

import ast
import operator
import re
from pathlib import Path

import yaml

from tributary.limits import COMMAND_BATCH, LEDGER_SIZE, MAX_MESSAGE_BYTES
from tributary.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tributary", "entrypoints", "command_api", "query_api", "workers", "events", "schemas")


OPERATORS = {
    ast.Mult: operator.mul,
    ast.Add: operator.add,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
}


def integer(node: ast.expr) -> int | None:
    """The value of an integer literal or of arithmetic on integer literals (32 * 1024 * 1024, 1 << 25)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = integer(node.left), integer(node.right)
        small = isinstance(node.op, ast.Mult | ast.Add) or (right is not None and right < 64)
        if left is not None and right is not None and small:
            return int(OPERATORS[type(node.op)](left, right))
    return None


def spelled_values(tree: ast.Module) -> set[int]:
    return {
        value
        for node in ast.walk(tree)
        if isinstance(node, ast.expr) and (value := integer(node)) is not None
    }


def test_the_message_limit_is_spelled_only_in_limits() -> None:
    spelling = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if MAX_MESSAGE_BYTES in spelled_values(ast.parse(path.read_text()))
    }
    assert spelling == {"tributary/limits.py"}


def test_settings_are_tied_to_the_message_limit() -> None:
    fields = Settings.model_fields
    assert fields["max_body_bytes"].default == MAX_MESSAGE_BYTES
    [bound] = [m.le for m in fields["command_part_bytes"].metadata if getattr(m, "le", None) is not None]
    assert bound == MAX_MESSAGE_BYTES


def test_the_ledger_outlasts_a_redelivered_batch() -> None:
    assert LEDGER_SIZE > COMMAND_BATCH


def test_the_brokers_we_deploy_accept_our_largest_message() -> None:
    compose = yaml.safe_load((ROOT / "deploy/compose/docker-compose.yml").read_text())
    kafka = compose["services"]["kafka"]["environment"]
    assert int(kafka["KAFKA_MESSAGE_MAX_BYTES"]) >= MAX_MESSAGE_BYTES
    assert int(kafka["KAFKA_REPLICA_FETCH_MAX_BYTES"]) >= MAX_MESSAGE_BYTES
    local = (ROOT / "deploy/local/services.sh").read_text()
    for key in ("message.max.bytes", "replica.fetch.max.bytes"):
        [value] = re.findall(rf"^{re.escape(key)}=(\d+)$", local, re.MULTILINE)
        assert int(value) >= MAX_MESSAGE_BYTES
