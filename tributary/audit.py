"""Audit: every write, key change and denied request becomes a record (who, what, when, outcome) in SQL and,
where Kafka is configured, on the `<prefix>.audit` topic.

A middleware sees each answer; the principal is known from authentication (`request.state.principal`), or the
request was anonymous. Reads that were allowed are not audited (they would drown the rest). Nor does each
anonymous refusal (a 401, or the 429 of a client that keeps failing authentication) write a record: anyone can
send a flood of them. They are counted per method, path and status, and written as one record per kind every
`REFUSALS_EVERY_S` with the count.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from tributary.auth.principal import Principal
from tributary.db.models import AuditRow
from tributary.http_hygiene import answered_status
from tributary.resilience import RepeatedLog
from tributary.services import Services, services_of

log = logging.getLogger(__name__)
# An outage fails every record: say so once in a while with a count, not once per request.
repeated = RepeatedLog(log)

WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Reads that are posted (search, get, scroll, count) are reads all the same.
READ_SUFFIXES = ("/search", "/search/batch", "/vectors/get", "/scroll", "/count")
REFUSALS_EVERY_S = 10.0
# Distinct paths counted apart in one period; the rest share one record (path "*").
REFUSAL_TARGETS = 100
MAX_TARGET = 512


class AuditEvent(BaseModel):
    id: str
    at: datetime
    tenant: str | None
    subject: str
    action: str
    target: str
    outcome: int
    count: int = 1


class RefusalTally:
    """Anonymous refusals since the last flush, counted per (method, path, status)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def add(self, method: str, path: str, status: int) -> None:
        key = (method, path[:MAX_TARGET], status)
        if key not in self._counts and len(self._counts) >= REFUSAL_TARGETS:
            key = ("*", "*", status)
        self._counts[key] += 1

    def take(self) -> list[AuditEvent]:
        counts, self._counts = self._counts, Counter()
        now = datetime.now(UTC)
        return [
            AuditEvent(
                id=str(uuid.uuid4()),
                at=now,
                tenant=None,
                subject="anonymous",
                action=method,
                target=target,
                outcome=status,
                count=count,
            )
            for (method, target, status), count in counts.items()
        ]


async def flush_refusals(services: Services) -> None:
    for event in services.refusals.take():
        await store(services, event)


async def flush_refusals_periodically(services: Services) -> None:
    while True:
        await asyncio.sleep(REFUSALS_EVERY_S)
        await flush_refusals(services)


class AuditSink(Protocol):
    async def publish(self, event: AuditEvent) -> None: ...


def is_write(method: str, path: str) -> bool:
    """An HTTP request that changes something (reads that are posted are reads all the same)."""
    return method in WRITES and not path.endswith(READ_SUFFIXES)


async def record(
    services: Services, principal: Principal | None, action: str, target: str, outcome: int, write: bool
) -> None:
    """The audit of one answered call, whatever its transport (`outcome`: the HTTP status, or the one a gRPC
    status code stands for): writes and refusals are recorded, allowed reads are not; an anonymous refusal is
    counted, not written one by one."""
    if not write and outcome not in (401, 403, 429):
        return
    if principal is None and outcome in (401, 429):
        services.refusals.add(action, target, outcome)
        return
    event = AuditEvent(
        id=str(uuid.uuid4()),
        at=datetime.now(UTC),
        tenant=principal.tenant if principal else None,
        subject=principal.subject if principal else "anonymous",
        action=action,
        target=target[:MAX_TARGET],
        outcome=outcome,
    )
    await store(services, event)


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = await answered_status(self.app, scope, receive, send)
        method, path = scope["method"], scope["path"]
        services = services_of(scope["app"])
        if not status or not path.startswith("/api/") or services is None:
            return
        principal = scope.get("state", {}).get("principal")
        await record(services, principal, method, path, status, is_write(method, path))


async def store(services: Services, event: AuditEvent) -> None:
    try:
        async with services.sessions.begin() as session:
            session.add(AuditRow(**event.model_dump()))
        if services.audit_sink is not None:
            await services.audit_sink.publish(event)
    except Exception:
        # The answer is already sent; a lost audit record is logged, never turned into a failed request.
        repeated(
            logging.ERROR,
            "could not record an audit event for %s %s",
            event.action,
            event.target,
            exc_info=True,
        )
