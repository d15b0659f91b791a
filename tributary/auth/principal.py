"""The principal a credential resolves to, and `authorize`: the one place that decides what it may do.

Rules, in the order they are checked:
- the operator (the bootstrap admin key) may manage the keys of any tenant, and nothing more;
- a principal acts only within its own tenant (there is no cross-tenant role);
- writes need writer or admin, reads need reader, writer or admin, key management and the tenant's
  administration (its dead letters) need admin;
- a dataset allow-list restricts reads and writes to those datasets; with one, tenant-wide writes and key
  management are refused (an admin limited to some datasets could otherwise mint itself an unrestricted key).
  Tenant-wide reads (listing datasets) stay allowed: the caller shows only the datasets `authorize` allows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from events.names import Name

Role = Literal["admin", "writer", "reader"]
Action = Literal["read", "write", "manage_keys", "administer"]
ROLES: frozenset[Role] = frozenset({"admin", "writer", "reader"})

ROLES_FOR: dict[Action, frozenset[Role]] = {
    "read": frozenset({"reader", "writer", "admin"}),
    "write": frozenset({"writer", "admin"}),
    "manage_keys": frozenset({"admin"}),
    "administer": frozenset({"admin"}),
}


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    tenant: Name
    roles: frozenset[Role]
    # None: every dataset of the tenant.
    datasets: frozenset[Name] | None = None
    via: Literal["key", "jwt"]
    # The bootstrap admin key (TRIBUTARY_ADMIN_KEY): it alone may manage the keys of other tenants, so that a new
    # tenant can get its first admin key. It reads and writes only its own tenant, like every principal.
    operator: bool = False


class Decision(BaseModel):
    """An answer with its reason, safe to show the caller (it names no secret)."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def authorize_role(principal: Principal, action: Action, tenant: str) -> Decision:
    """The first two rules: may `principal` do `action` in `tenant` at all (whatever the dataset)? Routers ask this;
    each route then asks `authorize` about the dataset it touches."""
    if action == "manage_keys" and principal.operator:
        return Decision(allowed=True, reason="allowed")
    if principal.tenant != tenant:
        return Decision(allowed=False, reason="the credential belongs to another tenant")
    needed = ROLES_FOR[action]
    if not principal.roles & needed:
        return Decision(allowed=False, reason=f"{action} needs one of the roles: {', '.join(sorted(needed))}")
    return Decision(allowed=True, reason="allowed")


def authorize(principal: Principal, action: Action, tenant: str, dataset: str | None = None) -> Decision:
    """May `principal` do `action` in `tenant`, on `dataset` (None: tenant-wide, e.g. listing datasets)?"""
    decision = authorize_role(principal, action, tenant)
    if not decision:
        return decision
    if principal.datasets is not None:
        tenant_wide = dataset is None or action == "manage_keys"
        if tenant_wide and action != "read":
            return Decision(
                allowed=False, reason=f"{action} is tenant-wide; the credential is limited to some datasets"
            )
        if dataset is not None and dataset not in principal.datasets:
            return Decision(allowed=False, reason="the credential is not allowed on this dataset")
    return Decision(allowed=True, reason="allowed")
