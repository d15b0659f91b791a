"""Submitting a request's command: record the operation, publish (split into parts when it is large), and
optionally wait for its outcome. A request with an Idempotency-Key is recorded once: a retry gets the first
answer and publishes nothing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from command_api.splitting import split_command
from events import Command
from schemas.datasets import Accepted
from tributary.bus import CommandPublisher
from tributary.db.models import OperationRow

POLL_INTERVAL_S = 0.02


class IdempotencyKeyReused(Exception):
    """The key was first used for a different request."""


class FirstAttemptInFlight(Exception):
    """The first request with this key is still being published."""


@dataclass(frozen=True)
class Submission:
    command: Command
    # A hash of the request that carried an Idempotency-Key (the command's id then derives from the key).
    request_hash: str | None = None
    ids: list[str] | None = None


async def submit(
    submission: Submission,
    session: AsyncSession,
    publisher: CommandPublisher,
    *,
    part_bytes: int,
    wait: bool,
    timeout: float,
) -> Accepted:
    command = submission.command
    op_id = str(command.id)
    # The row exists before the command can be applied, so the projector always finds it to update; its
    # primary key makes a second request with the same Idempotency-Key fail here, before publishing.
    session.add(
        OperationRow(
            id=op_id,
            tenant=command.tenant,
            dataset=command.dataset,
            command_type=command.type,
            status="accepted",
            request_hash=submission.request_hash,
            ids=submission.ids,
        )
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        accepted = await _first_answer(op_id, submission.request_hash, session)
    else:
        accepted = await _publish(command, op_id, session, publisher, part_bytes)
        accepted = accepted.model_copy(update={"ids": submission.ids})
    if not wait or accepted.status != "accepted":
        return accepted
    return await _await_outcome(accepted, session, timeout)


async def replay(
    op_id: str, request_hash: str, session: AsyncSession, *, wait: bool, timeout: float
) -> Accepted | None:
    """The first answer to a request retried with the same Idempotency-Key, or None if it is new."""
    if await session.get(OperationRow, op_id) is None:
        return None
    accepted = await _first_answer(op_id, request_hash, session)
    if not wait or accepted.status != "accepted":
        return accepted
    return await _await_outcome(accepted, session, timeout)


async def _publish(
    command: Command, op_id: str, session: AsyncSession, publisher: CommandPublisher, part_bytes: int
) -> Accepted:
    try:
        token = await publisher.publish(split_command(command, part_bytes))
    except Exception:
        # Nothing was published (a transaction aborts whole): forget the operation, so a retry starts over.
        await session.delete(await session.get_one(OperationRow, op_id))
        await session.commit()
        raise
    await session.execute(
        update(OperationRow).where(OperationRow.id == op_id).values(consistency_token=str(token))
    )
    await session.commit()
    return Accepted(operation_id=op_id, consistency_token=str(token), status="accepted")


async def _first_answer(op_id: str, request_hash: str | None, session: AsyncSession) -> Accepted:
    row = await session.get_one(OperationRow, op_id, populate_existing=True)
    if request_hash is None or row.request_hash != request_hash:
        raise IdempotencyKeyReused(op_id)
    if row.consistency_token is None:
        raise FirstAttemptInFlight(op_id)
    return Accepted.model_validate(
        {
            "operation_id": op_id,
            "consistency_token": row.consistency_token,
            "status": row.status,
            "reason": row.reason,
            "ids": row.ids,
        }
    )


async def _await_outcome(accepted: Accepted, session: AsyncSession, timeout: float) -> Accepted:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.expire_all()
        row = await session.get(OperationRow, accepted.operation_id, populate_existing=True)
        if row is not None and row.status != "accepted":
            return accepted.model_copy(update={"status": row.status, "reason": row.reason})
        await asyncio.sleep(POLL_INTERVAL_S)
    return accepted
