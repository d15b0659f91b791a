"""`authorize`: every role against every action, tenant isolation and dataset allow-lists, as one table."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tributary.auth.principal import Action, Principal, Role, authorize


def principal(*roles: Role, tenant: str = "acme", datasets: set[str] | None = None) -> Principal:
    return Principal(
        subject="s",
        tenant=tenant,
        roles=frozenset(roles),
        datasets=None if datasets is None else frozenset(datasets),
        via="key",
    )


ALLOWED, DENIED = True, False
CASES: list[tuple[str, Principal, Action, str, str | None, bool]] = [
    # Roles against actions, on a dataset of the principal's own tenant.
    ("reader reads", principal("reader"), "read", "acme", "docs", ALLOWED),
    ("reader cannot write", principal("reader"), "write", "acme", "docs", DENIED),
    ("reader cannot manage keys", principal("reader"), "manage_keys", "acme", None, DENIED),
    ("writer reads", principal("writer"), "read", "acme", "docs", ALLOWED),
    ("writer writes", principal("writer"), "write", "acme", "docs", ALLOWED),
    ("writer cannot manage keys", principal("writer"), "manage_keys", "acme", None, DENIED),
    ("admin reads", principal("admin"), "read", "acme", "docs", ALLOWED),
    ("admin writes", principal("admin"), "write", "acme", "docs", ALLOWED),
    ("admin manages keys", principal("admin"), "manage_keys", "acme", None, ALLOWED),
    ("no role, no read", principal(), "read", "acme", "docs", DENIED),
    ("roles add up", principal("reader", "writer"), "write", "acme", "docs", ALLOWED),
    # Tenant-wide actions.
    ("reader lists datasets", principal("reader"), "read", "acme", None, ALLOWED),
    ("writer creates tenant-wide", principal("writer"), "write", "acme", None, ALLOWED),
    # Tenant isolation: no role reaches another tenant.
    ("admin of another tenant", principal("admin", tenant="other"), "read", "acme", "docs", DENIED),
    ("writer of another tenant", principal("writer", tenant="other"), "write", "acme", "docs", DENIED),
    ("keys of another tenant", principal("admin", tenant="other"), "manage_keys", "acme", None, DENIED),
    # A dataset allow-list restricts further.
    ("listed dataset read", principal("reader", datasets={"docs"}), "read", "acme", "docs", ALLOWED),
    ("listed dataset write", principal("writer", datasets={"docs"}), "write", "acme", "docs", ALLOWED),
    ("unlisted dataset read", principal("admin", datasets={"docs"}), "read", "acme", "logs", DENIED),
    ("unlisted dataset write", principal("writer", datasets={"docs"}), "write", "acme", "logs", DENIED),
    ("listed but wrong role", principal("reader", datasets={"docs"}), "write", "acme", "docs", DENIED),
    (
        "listed, other tenant",
        principal("reader", tenant="o", datasets={"docs"}),
        "read",
        "acme",
        "docs",
        DENIED,
    ),
    ("empty list allows nothing", principal("admin", datasets=set()), "read", "acme", "docs", DENIED),
    ("limited reader lists", principal("reader", datasets={"docs"}), "read", "acme", None, ALLOWED),
    ("limited writer tenant-wide", principal("writer", datasets={"docs"}), "write", "acme", None, DENIED),
    ("limited admin keys", principal("admin", datasets={"docs"}), "manage_keys", "acme", None, DENIED),
    ("limited admin, keys", principal("admin", datasets={"docs"}), "manage_keys", "acme", "docs", DENIED),
]


@pytest.mark.parametrize(
    ("who", "action", "tenant", "dataset", "allowed"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_authorize(who: Principal, action: Action, tenant: str, dataset: str | None, allowed: bool) -> None:
    decision = authorize(who, action, tenant, dataset)
    assert decision.allowed is allowed
    assert bool(decision) is allowed


def test_denials_say_why() -> None:
    assert authorize(principal("reader"), "write", "acme", "docs").reason == (
        "write needs one of the roles: admin, writer"
    )
    assert "another tenant" in authorize(principal("admin", tenant="b"), "read", "acme", "d").reason
    assert (
        "not allowed on this dataset"
        in authorize(principal("reader", datasets={"x"}), "read", "acme", "d").reason
    )


def test_principal_is_frozen_and_validated() -> None:
    who = principal("reader")
    with pytest.raises(ValidationError):
        who.tenant = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        principal("superuser")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        principal("reader", tenant="../etc")
    with pytest.raises(ValidationError):
        principal("reader", datasets={"Bad Name"})
