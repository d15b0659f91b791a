"""Operations are kept for `operation_retention_s` after their last change, then purged (`GET /operations/{id}`
answers 404 after that), so the table does not grow with every write forever. Every command API process purges
now and then; the DELETE is the same whoever runs it, so replicas need no coordination.

Not the operations of requests with an Idempotency-Key: their command id derives from the key, so a key used
again after a purge would make a command the applier's ledger may still hold as applied, and a different body
would be acknowledged and never written. They stay until the id also derives from the request itself.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tributary.db.models import OperationRow

log = logging.getLogger(__name__)

PURGE_EVERY_S = 600.0


async def purge_expired(sessions: async_sessionmaker[AsyncSession], retention_s: float) -> int:
    """Delete the operations without an Idempotency-Key unchanged for `retention_s`; how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=retention_s)
    async with sessions.begin() as session:
        result = await session.execute(
            delete(OperationRow).where(OperationRow.updated_at < cutoff, OperationRow.request_hash.is_(None))
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge_periodically(sessions: async_sessionmaker[AsyncSession], retention_s: float) -> None:
    while True:
        try:
            purged = await purge_expired(sessions, retention_s)
            if purged:
                log.info("purged %d operations older than %.0f s", purged, retention_s)
        except Exception:
            # The next round tries again; operations only stay a little longer meanwhile.
            log.warning("purging expired operations failed", exc_info=True)
        await asyncio.sleep(PURGE_EVERY_S)
