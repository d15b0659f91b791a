"""The layers, checked on the source (ast, nothing imported): the shared kernel under the roles, the roles under
the composition root (entrypoints/), transports only in adapters, and the app's state read in one place."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ("tributary", "events", "schemas")
ROLES = ("command_api", "query_api", "workers")
COMPOSITION_ROOT = "entrypoints"
# `python -m tributary` runs this file; nothing imports it, so it is not an arrow out of the kernel.
LAUNCHER = "tributary/__main__.py"

TRANSPORTS = frozenset({"fastapi", "starlette", "uvicorn", "faststream", "aiokafka", "grpc"})
# The only modules outside entrypoints/ that may import a transport: the HTTP adapters (routes, dependencies,
# middleware, the error shape) and the Kafka clients (the publisher, the replica's follower, the applier's
# fence, the stream consumers' helper). Every other module (the handlers: workers/applier.py, projector.py, isolation.py; the command side's
# operations, splitting and retention; the query side's projections, search and cache) is transport-free,
# and so is any module added later unless it is named here.
TRANSPORT_ADAPTERS = frozenset(
    {
        "tributary/audit.py",
        "tributary/deps.py",
        "tributary/errors.py",
        "tributary/http_hygiene.py",
        "tributary/http_metrics.py",
        "tributary/http_tracing.py",
        "tributary/json_route.py",
        "tributary/kafka.py",
        "tributary/kafka_backoff.py",
        "tributary/producer.py",
        "tributary/stream.py",
        "command_api/deps.py",
        "query_api/deps.py",
        "query_api/follower.py",
        "query_api/applied_offsets.py",
        "workers/fencing.py",
        "workers/catalog_rebuild.py",
    }
)
# The one reader of `app.state` (`services_of`, used by the dependencies of tributary/deps.py and by the audit
# middleware); entrypoints/http_app.py sets it.
STATE_READER = "tributary/services.py"
STATE_WRITER = "entrypoints/http_app.py"


def modules(*packages: str) -> Iterator[tuple[str, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), str(path))


def imported(tree: ast.Module) -> set[str]:
    """The top-level packages a module imports (relative imports stay in their own package)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_every_package_is_found() -> None:
    found = {name.split("/")[0] for name, _ in modules(*KERNEL, *ROLES, COMPOSITION_ROOT)}
    assert found == {*KERNEL, *ROLES, COMPOSITION_ROOT}


def test_the_kernel_imports_no_role_and_not_the_composition_root() -> None:
    wrong = {
        name: sorted(imported(tree) & {*ROLES, COMPOSITION_ROOT})
        for name, tree in modules(*KERNEL)
        if name != LAUNCHER
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def test_a_role_imports_no_other_role_and_not_the_composition_root() -> None:
    wrong = {
        name: sorted(imported(tree) & ({*ROLES, COMPOSITION_ROOT} - {name.split("/")[0]}))
        for name, tree in modules(*ROLES)
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def is_transport_adapter(name: str) -> bool:
    return name in TRANSPORT_ADAPTERS or "/routes/" in name


def test_handlers_and_services_import_no_transport() -> None:
    wrong = {
        name: sorted(imported(tree) & TRANSPORTS)
        for name, tree in modules(*KERNEL, *ROLES)
        if not is_transport_adapter(name)
    }
    assert {name: found for name, found in wrong.items() if found} == {}
    for handler in ("workers/applier.py", "workers/projector.py", "workers/isolation.py"):
        assert not is_transport_adapter(handler)


def test_the_adapter_list_names_only_modules_that_need_it() -> None:
    # A module that stopped importing a transport leaves the list, so the list stays the truth.
    trees = dict(modules(*KERNEL, *ROLES))
    assert {name for name in TRANSPORT_ADAPTERS if not imported(trees[name]) & TRANSPORTS} == set()


APP = re.compile(r"(^|\.)app$|\[['\"]app['\"]\]$")


def state_uses(tree: ast.Module) -> Iterator[tuple[int, bool]]:
    """(line, is a write) of each use of an app's `.state` (a request's own `request.state` is not the app's)."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "state" and APP.search(ast.unparse(node.value)):
            parent = parents.get(node)
            yield node.lineno, isinstance(parent, ast.Attribute) and isinstance(parent.ctx, ast.Store)


@pytest.mark.parametrize("writes", [False, True], ids=["read", "written"])
def test_the_app_state_is_used_in_one_place(writes: bool) -> None:
    allowed = STATE_WRITER if writes else STATE_READER
    uses = {
        name: lines
        for name, tree in modules(*KERNEL, *ROLES, COMPOSITION_ROOT)
        if (lines := [line for line, write in state_uses(tree) if write == writes])
    }
    assert set(uses) == {allowed}, uses


def test_the_state_check_sees_reads_and_writes() -> None:
    tree = ast.parse(
        'request.app.state.x\ngetattr(scope["app"].state, "y")\napp.state.z = 1\nrequest.state.w'
    )
    assert sorted(state_uses(tree)) == [(1, False), (2, False), (3, True)]
