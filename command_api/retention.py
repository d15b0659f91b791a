"""Operations are kept for `operation_retention_s` after their last change, then purged, and the Idempotency-Keys
they hold with them: `GET /operations/{id}` answers 404 after that, and a key used again is a new request. Its
command id derives from the key and the request (command_api/deps.py), so the same request again makes the
command the applier's ledger may still hold (applied once, announced again), and another request a new one.
Every command API process purges now and then; the DELETE is the same whoever runs it, so replicas need no
coordination.
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
    """Delete the operations unchanged for `retention_s`; how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=retention_s)
    async with sessions.begin() as session:
        result = await session.execute(delete(OperationRow).where(OperationRow.updated_at < cutoff))
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
