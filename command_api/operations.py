"""Submitting a request's command: record the operation, publish (split into parts when it is large), and
optionally wait for its outcome. A request with an Idempotency-Key is recorded once: a retry gets the first
answer and publishes nothing, unless the first attempt's publish was never confirmed (Kafka away): then the
retry publishes the same command again, which the applier recognises if the first one did arrive."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from command_api.splitting import split_command
from events import Command
from schemas.datasets import Accepted
from tributary import tracing
from tributary.bus import CommandPublisher, ConsistencyToken, EncodedCommand, PublishFailed
from tributary.db.models import OperationRow
from tributary.db.outcomes import settled


class IdempotencyKeyReused(Exception):
    """The key was first used for a different request."""


class FirstAttemptInFlight(Exception):
    """The first request with this key is still being published."""


class NotPublished(Exception):
    """Publishing failed. `status` is what the operation's row now says: "unconfirmed" when the command may still
    arrive, None when nothing was sent (the row is gone, a retry starts over)."""

    # Kafka is away: by then a replaced producer and the backed-off reconnects have had time to find it again.
    retry_after_s = 5

    def __init__(self, operation_id: str, status: str | None, failure: PublishFailed) -> None:
        super().__init__(failure.reason)
        self.operation_id, self.status, self.reason = operation_id, status, failure.reason

    @property
    def message(self) -> str:
        return f"the command could not be published, retry later ({self.reason})"


class OutOfTurn(Exception):
    """A write of a stream found the write before it not published (refused or failed): it publishes nothing."""


class InOrder:
    """The publishes of a stream of writes, in the order the stream sent them, while each write prepares (checks,
    records its operation, serialises) as the one before it is published and acknowledged: `turn()` hands each
    write, in stream order, a publisher that waits for the previous write's publish to succeed."""

    def __init__(self, publisher: CommandPublisher) -> None:
        self._publisher = publisher
        self._last: asyncio.Future[bool] | None = None

    def turn(self) -> Turn:
        turn = Turn(self._publisher, self._last)
        self._last = turn.published
        return turn


class Turn:
    """One write's place in an `InOrder` stream; `close()` once the write is over, published or not, so the
    writes after it stop waiting."""

    def __init__(self, publisher: CommandPublisher, previous: asyncio.Future[bool] | None) -> None:
        self._publisher, self._previous = publisher, previous
        self.published: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def publish(self, commands: Sequence[EncodedCommand]) -> ConsistencyToken:
        if self._previous is not None and not await asyncio.shield(self._previous):
            raise OutOfTurn("the write before this one in the stream was not published")
        token = await self._publisher.publish(commands)
        self.published.set_result(True)
        return token

    def close(self) -> None:
        if not self.published.done():
            self.published.set_result(False)


# As long as the operations table's column (tributary/db/models.py) keeps.
MAX_IDEMPOTENCY_KEY = 256


@dataclass(frozen=True)
class Keyed:
    """A request's Idempotency-Key and the hash of what it asks for (method, path, body)."""

    key: str
    request_hash: str


@dataclass(frozen=True)
class Submission:
    command: Command
    # Set for a request with an Idempotency-Key (the command's id then derives from the key and the hash).
    keyed: Keyed | None = None
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
    # The row exists before the command can be applied, so the projector always finds it to update; its unique
    # Idempotency-Key (or, for the same request, its primary key) makes a second attempt fail here, before
    # publishing.
    session.add(
        OperationRow(
            id=op_id,
            tenant=command.tenant,
            dataset=command.dataset,
            command_type=command.type,
            status="accepted",
            idempotency_key=submission.keyed.key if submission.keyed else None,
            request_hash=submission.keyed.request_hash if submission.keyed else None,
            ids=submission.ids,
        )
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if submission.keyed is None:
            raise
        row = await _keyed_row(command.tenant, submission.keyed.key, session) or await session.get(
            OperationRow, op_id, populate_existing=True
        )
        if row is None:
            raise
        first = _first_answer(row, submission.keyed.request_hash)
        if first is None:
            ids = row.ids
            if not await _claim(op_id, session):
                raise FirstAttemptInFlight(op_id) from None
            first = await _publish(command, op_id, session, publisher, part_bytes, retried=True)
            first = first.model_copy(update={"ids": ids})
        accepted = first
    else:
        accepted = await _publish(command, op_id, session, publisher, part_bytes, retried=False)
        accepted = accepted.model_copy(update={"ids": submission.ids})
    if not wait or accepted.status != "accepted":
        return accepted
    return await _await_outcome(accepted, session, timeout)


async def replay(
    tenant: str, keyed: Keyed, session: AsyncSession, *, wait: bool, timeout: float
) -> Accepted | None:
    """The first answer to a request retried with the same Idempotency-Key, or None if it is new (or its first
    attempt was never confirmed, and is to be published again)."""
    row = await _keyed_row(tenant, keyed.key, session)
    if row is None:
        return None
    accepted = _first_answer(row, keyed.request_hash)
    if accepted is None:
        return None
    if not wait:
        return accepted
    return await _await_outcome(accepted, session, timeout)


async def _publish(
    command: Command,
    op_id: str,
    session: AsyncSession,
    publisher: CommandPublisher,
    part_bytes: int,
    *,
    retried: bool,
) -> Accepted:
    try:
        with tracing.producing("publish", command) as span:
            # The command carries this span's context, so its consumers continue the request's trace.
            traced = tracing.stamped(command)
            # Serialising a large command takes milliseconds of CPU: off the event loop, which serves other
            # requests.
            token = await publisher.publish(await asyncio.to_thread(split_command, traced, part_bytes))
            span.set_attribute("tributary.consistency_token", str(token))
    except PublishFailed as exc:
        if exc.unconfirmed or retried:
            # It may still arrive (or an earlier attempt's did): keep the row, so the status says so and a retry
            # with the key publishes again. The projector may have seen it applied meanwhile: that stands.
            await session.execute(
                update(OperationRow)
                .where(OperationRow.id == op_id, OperationRow.status == "accepted")
                .values(status="unconfirmed", reason=f"publishing was not confirmed: {exc.reason}")
            )
            await session.commit()
            raise NotPublished(op_id, "unconfirmed", exc) from exc
        await _forget(op_id, session)
        raise NotPublished(op_id, None, exc) from exc
    except Exception:
        await _forget(op_id, session)
        raise
    await session.execute(
        update(OperationRow).where(OperationRow.id == op_id).values(consistency_token=str(token))
    )
    await session.commit()
    return Accepted(operation_id=op_id, consistency_token=str(token), status="accepted")


async def _forget(op_id: str, session: AsyncSession) -> None:
    # Nothing was published (a transaction aborts whole): forget the operation, so a retry starts over.
    await session.delete(await session.get_one(OperationRow, op_id))
    await session.commit()


async def _claim(op_id: str, session: AsyncSession) -> bool:
    """Take an operation whose publish was never confirmed for publishing again; False if another retry did."""
    claimed = await session.execute(
        update(OperationRow)
        .where(
            OperationRow.id == op_id,
            OperationRow.consistency_token.is_(None),
            OperationRow.status != "accepted",
        )
        .values(status="accepted", reason=None)
    )
    await session.commit()
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


async def _keyed_row(tenant: str, key: str, session: AsyncSession) -> OperationRow | None:
    found = await session.execute(
        select(OperationRow)
        .where(OperationRow.tenant == tenant, OperationRow.idempotency_key == key)
        .execution_options(populate_existing=True)
    )
    return found.scalar_one_or_none()


def _first_answer(row: OperationRow, request_hash: str) -> Accepted | None:
    """What the first attempt answered (without `?wait=true`): accepted, whatever became of the operation since,
    so a retry gets the same answer before and after the outcome, and across restarts (`?wait=true` waits for
    the outcome again). None when the first attempt has no answer to give: its publish was never confirmed (the
    retry publishes the same command again)."""
    # A row without a hash, found by the id that derives from this very request, is its own operation that the
    # projector recreated (an outcome event read again after the operation expired).
    if row.request_hash is not None and row.request_hash != request_hash:
        raise IdempotencyKeyReused(row.id)
    if row.consistency_token is None:
        if row.status == "accepted":
            raise FirstAttemptInFlight(row.id)
        return None
    return Accepted(
        operation_id=row.id, consistency_token=row.consistency_token, status="accepted", ids=row.ids
    )


async def _await_outcome(accepted: Accepted, session: AsyncSession, timeout: float) -> Accepted:
    row = await settled(session, accepted.operation_id, timeout)
    if row is None:
        return accepted
    return accepted.model_copy(
        update={"status": row.status, "reason": row.reason, "rejection": row.rejection}
    )
