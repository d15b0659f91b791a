"""Submitting a command: record the operation, publish, and optionally wait for its outcome."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from events import Command
from schemas.datasets import Accepted
from tributary.bus import CommandPublisher
from tributary.db.models import OperationRow

POLL_INTERVAL_S = 0.02


async def submit(
    command: Command, session: AsyncSession, publisher: CommandPublisher, *, wait: bool, timeout: float
) -> Accepted:
    op_id = str(command.id)
    # The row exists before the command can be applied, so the projector always finds it to update.
    session.add(
        OperationRow(
            id=op_id,
            tenant=command.tenant,
            dataset=command.dataset,
            command_type=command.type,
            status="accepted",
        )
    )
    await session.commit()
    try:
        token = await publisher.publish(command)
    except Exception:
        await session.delete(await session.get_one(OperationRow, op_id))
        await session.commit()
        raise
    await session.execute(
        update(OperationRow).where(OperationRow.id == op_id).values(consistency_token=str(token))
    )
    await session.commit()
    accepted = Accepted(operation_id=op_id, consistency_token=str(token), status="accepted")
    if not wait:
        return accepted
    return await _await_outcome(accepted, session, timeout)


async def _await_outcome(accepted: Accepted, session: AsyncSession, timeout: float) -> Accepted:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.expire_all()
        row = await session.get(OperationRow, accepted.operation_id, populate_existing=True)
        if row is not None and row.status != "accepted":
            return accepted.model_copy(update={"status": row.status, "reason": row.reason})
        await asyncio.sleep(POLL_INTERVAL_S)
    return accepted
