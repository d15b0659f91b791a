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


def audited(method: str, path: str, status: int) -> bool:
    if not path.startswith("/api/"):
        return False
    if status in (401, 403, 429):
        return True
    return method in WRITES and not path.endswith(READ_SUFFIXES)


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = await answered_status(self.app, scope, receive, send)
        if status is None or not audited(scope["method"], scope["path"], status):
            return
        services = services_of(scope["app"])
        if services is None:
            return
        principal = getattr(scope.get("state", {}).get("principal"), "model_dump", None)
        if principal is None and status in (401, 429):
            services.refusals.add(scope["method"], scope["path"], status)
            return
        who = principal() if principal else None
        event = AuditEvent(
            id=str(uuid.uuid4()),
            at=datetime.now(UTC),
            tenant=who["tenant"] if who else None,
            subject=who["subject"] if who else "anonymous",
            action=scope["method"],
            target=scope["path"][:MAX_TARGET],
            outcome=status,
        )
        await store(services, event)


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
