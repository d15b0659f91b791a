"""Audit: every write, key change and denied request becomes a record (who, what, when, outcome) in SQL and,
where Kafka is configured, on the `<prefix>.audit` topic.

A middleware sees each answer; the principal is known from authentication (`request.state.principal`), or the
request was anonymous. Reads that were allowed are not audited (they would drown the rest).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tributary.db.models import AuditRow
from tributary.resilience import RepeatedLog

log = logging.getLogger(__name__)
# An outage fails every record: say so once in a while with a count, not once per request.
repeated = RepeatedLog(log)

WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Reads that are posted (search, get, scroll, count) are reads all the same.
READ_SUFFIXES = ("/search", "/search/batch", "/vectors/get", "/scroll", "/count")


class AuditEvent(BaseModel):
    id: str
    at: datetime
    tenant: str | None
    subject: str
    action: str
    target: str
    outcome: int


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
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, watch)
        if status and audited(scope["method"], scope["path"], status[0]):
            await record(scope, status[0])


async def record(scope: Scope, outcome: int) -> None:
    app = scope["app"]
    principal = getattr(scope.get("state", {}).get("principal"), "model_dump", None)
    who = principal() if principal else None
    event = AuditEvent(
        id=str(uuid.uuid4()),
        at=datetime.now(UTC),
        tenant=who["tenant"] if who else None,
        subject=who["subject"] if who else "anonymous",
        action=scope["method"],
        target=scope["path"][:512],
        outcome=outcome,
    )
    try:
        sessions: async_sessionmaker[AsyncSession] = app.state.sessions
        async with sessions.begin() as session:
            session.add(AuditRow(**event.model_dump()))
        sink: AuditSink | None = getattr(app.state, "audit_sink", None)
        if sink is not None:
            await sink.publish(event)
    except Exception:
        # The answer is already sent; a lost audit record is logged, never turned into a failed request.
        repeated(
            logging.ERROR,
            "could not record an audit event for %s %s",
            event.action,
            event.target,
            exc_info=True,
        )
