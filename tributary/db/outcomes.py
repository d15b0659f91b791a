"""Waiting for a write's outcome: the projector marks its operation applied or rejected from the domain events."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.ext.asyncio import AsyncSession

from tributary.db.models import OperationRow

POLL_INTERVAL_S = 0.02


async def settled(session: AsyncSession, operation_id: str, timeout: float) -> OperationRow | None:
    """The operation's row once it is no longer `accepted` (applied, rejected, or unconfirmed by Kafka), or None
    when `timeout` passed first."""
    deadline = time.monotonic() + timeout
    while True:
        session.expire_all()
        row = await session.get(OperationRow, operation_id, populate_existing=True)
        if row is not None and row.status != "accepted":
            return row
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(POLL_INTERVAL_S)
