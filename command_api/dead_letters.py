"""The dead-letter service: list, inspect, replay and purge the dead letters that either transport stored
(workers/dead_letters.py), whatever asks: the admin routes (command_api/routes/dead_letters.py) for one tenant,
the server's CLI for any.

A replay is a new command: the original with an id derived from the original's, no operation or part of the
request it came from, and its original Idempotency-Key. It is submitted like any write (an operation row, then
published), keyed by that id, so replaying the same command again answers the first replay's operation and
publishes nothing; and were it published twice, the applier's ledger would recognise the same id and apply it
once."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import uuid5

from pydantic import ValidationError
from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from command_api.operations import FirstAttemptInFlight, Keyed, Submission, submit
from events import Command, parse_command
from events.envelope import utc_now
from schemas.datasets import Accepted
from schemas.dead_letters import (
    DeadLetterDetail,
    DeadLetterList,
    DeadLetterView,
    ReplayedLetter,
    ReplayReport,
    UnreplayableLetter,
)
from tributary.bus import CommandPublisher
from tributary.db.models import DeadLetterRow, DeadLetterStatus
from tributary.failures import Conflict, NotFound
from tributary.logs import without_input
from tributary.settings import Settings


class NotReplayable(Conflict):
    """The dead letter's message is not a command: it can be inspected and purged, not replayed."""


@dataclass(frozen=True)
class DeadLetters:
    """The dead letters of `tenant` (None: of every tenant, for the server's own CLI)."""

    tenant: str | None
    session: AsyncSession
    settings: Settings
    # Needed to replay only.
    publisher: CommandPublisher | None = None

    async def list(
        self, *, status: DeadLetterStatus | None, dataset: str | None, limit: int, offset: int
    ) -> DeadLetterList:
        query = self._select(status, dataset).order_by(DeadLetterRow.failed_at, DeadLetterRow.id)
        rows = (await self.session.scalars(query.offset(offset).limit(limit + 1))).all()
        return DeadLetterList(
            dead_letters=[DeadLetterView.model_validate(row) for row in rows[:limit]],
            next_offset=offset + limit if len(rows) > limit else None,
        )

    async def get(self, letter_id: str) -> DeadLetterDetail:
        row = await self._row(letter_id)
        envelope = await asyncio.to_thread(_json_object, row.message)
        return DeadLetterDetail.model_validate(
            {
                **DeadLetterView.model_validate(row).model_dump(),
                "envelope": envelope,
                "message": None if envelope is not None else row.message,
            }
        )

    async def replay(self, letter_id: str) -> Accepted:
        row = await self._row(letter_id)
        return await self._replay(row.id, row.message)

    async def replay_all(self, dataset: str | None) -> ReplayReport:
        """Every dead letter not replayed yet, in the order its commands were first sent."""
        query = self._select("dead", dataset).order_by(
            DeadLetterRow.source_topic, DeadLetterRow.partition, DeadLetterRow.offset, DeadLetterRow.failed_at
        )
        report = ReplayReport(replayed=[], skipped=[])
        # Plain values: a replay that finds its operation made before rolls the session back, which expires rows.
        letters = (
            await self.session.execute(query.with_only_columns(DeadLetterRow.id, DeadLetterRow.message))
        ).all()
        for letter_id, message in letters:
            try:
                accepted = await self._replay(letter_id, message)
            except NotReplayable as exc:
                report.skipped.append(UnreplayableLetter(dead_letter=letter_id, reason=exc.reason))
            else:
                report.replayed.append(ReplayedLetter(dead_letter=letter_id, operation=accepted))
        return report

    async def purge(self, letter_id: str) -> None:
        await self._delete([(await self._row(letter_id)).id])

    async def purge_all(self, *, status: DeadLetterStatus | None, dataset: str | None) -> int:
        ids = (
            await self.session.scalars(self._select(status, dataset).with_only_columns(DeadLetterRow.id))
        ).all()
        await self._delete(ids)
        return len(ids)

    async def _delete(self, ids: Sequence[str]) -> None:
        await self.session.execute(delete(DeadLetterRow).where(DeadLetterRow.id.in_(ids)))
        await self.session.commit()

    async def _replay(self, letter_id: str, message: str) -> Accepted:
        if self.publisher is None:
            raise RuntimeError("replaying needs a command publisher")
        command = await asyncio.to_thread(_replay_command, letter_id, message)
        try:
            accepted = await submit(
                Submission(
                    command,
                    Keyed(f"replay:{command.id}", hashlib.sha256(message.encode()).hexdigest()),
                ),
                self.session,
                self.publisher,
                part_bytes=self.settings.command_part_bytes,
                wait=False,
                timeout=self.settings.wait_timeout_s,
            )
        except FirstAttemptInFlight:
            raise Conflict(f"dead letter {letter_id} is being replayed; retry") from None
        await self.session.execute(
            update(DeadLetterRow)
            .where(DeadLetterRow.id == letter_id)
            .values(status="replayed", replay_operation=accepted.operation_id)
        )
        await self.session.commit()
        return accepted

    async def _row(self, letter_id: str) -> DeadLetterRow:
        row = await self.session.get(DeadLetterRow, letter_id, populate_existing=True)
        # Another tenant's dead letter is "not found", as if it did not exist.
        if row is None or (self.tenant is not None and row.tenant != self.tenant):
            raise NotFound(f"dead letter {letter_id!r} not found")
        return row

    def _select(self, status: DeadLetterStatus | None, dataset: str | None) -> Select[DeadLetterRow]:
        query = select(DeadLetterRow)
        if self.tenant is not None:
            query = query.where(DeadLetterRow.tenant == self.tenant)
        if status is not None:
            query = query.where(DeadLetterRow.status == status)
        if dataset is not None:
            query = query.where(DeadLetterRow.dataset == dataset)
        return query


def _replay_command(letter_id: str, message: str) -> Command:
    try:
        original = parse_command(message)
    except ValidationError as exc:
        raise NotReplayable(
            f"dead letter {letter_id} is not a command ({without_input(exc)}): it can only be purged"
        ) from None
    return original.model_copy(
        update={
            "id": uuid5(original.id, "replay"),
            "occurred_at": utc_now(),
            "operation_id": None,
            "part": None,
        }
    )


def _json_object(message: str) -> dict[str, object] | None:
    try:
        body = json.loads(message)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
