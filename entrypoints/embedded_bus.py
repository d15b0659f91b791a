"""The embedded bus: one process, no servers. Commands go to a SQLite log before they are acknowledged, and a
background task applies them in order through the batch pipeline the Kafka applier uses (`workers.pipeline`); a
dead letter is a row marked dead with its reason.

A command acknowledged with 202 is in the log, so it is applied after a restart even if the process died
first. Applying is at least once (a crash after the DeepLake commit and before the log row is marked done
repeats it); the handlers are idempotent, so the effect is once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from events import DeadLetter, DomainEvent, parse_event, partition_key
from tributary.bus import ConsistencyToken, EncodedCommand, count_accepted
from tributary.db.models import BusCommandRow, BusEventRow
from tributary.limits import COMMAND_BATCH
from tributary.resilience import Backoff, RepeatedLog, Supervised
from tributary.storage import DatasetStore
from tributary.threads import in_thread_to_completion
from workers.dead_letters import store_dead_letter
from workers.pipeline import ApplierPipeline, Settled
from workers.projector import project_event

log = logging.getLogger(__name__)

PENDING, DONE, DEAD = "pending", "done", "dead"
# The `source_topic` of the dead letters of this log.
BUS_SOURCE = "bus_commands"
# Commands written by another process (the CLI's dead-letter replay) wake no one: the log is read again at least
# this often.
POLL_S = 1.0


class EmbeddedBus:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: DatasetStore,
        default_tenant: str,
        on_events: Callable[[list[DomainEvent]], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._default_tenant = default_tenant
        # Called (in a thread) with each batch's events before the batch counts as applied: the in-process
        # search projections, so a read that waited for a command sees it.
        self._on_events = on_events
        self._wake = asyncio.Event()
        self._applied = asyncio.Condition()
        self._applied_seq = 0
        self._applying = Supervised("embedded bus", self._run, log)
        self._started = False
        self._pipeline = ApplierPipeline[Row[int, str, str]](
            store, body=lambda row: row.body, position=lambda row: ConsistencyToken(0, row.seq)
        )
        self._backoff = Backoff(first_s=0.5, cap_s=10.0)
        self._repeated = RepeatedLog(log)

    async def publish(self, commands: Sequence[EncodedCommand]) -> ConsistencyToken:
        async with self._sessions.begin() as session:
            rows = [
                BusCommandRow(
                    key=partition_key(encoded.command.tenant, encoded.command.dataset).decode(),
                    body=encoded.body.decode(),
                    status=PENDING,
                )
                for encoded in commands
            ]
            session.add_all(rows)
            await session.flush()
            seq = rows[-1].seq
        count_accepted(commands)
        self._wake.set()
        return ConsistencyToken(partition=0, offset=seq)

    async def start(self) -> None:
        if not self._started:
            self._started = True
            self._applied_seq = await self._processed_prefix()
            self._applying.start()

    async def stop(self) -> None:
        await self._applying.stop()
        self._started = False

    async def ready(self) -> bool:
        """Applying runs (it is restarted after a crash; readiness says 503 meanwhile)."""
        return self._applying.healthy

    @property
    def applied_seq(self) -> int:
        return self._applied_seq

    async def last_seq(self) -> int:
        """The newest command in the log."""
        async with self._sessions() as session:
            return int(await session.scalar(select(func.coalesce(func.max(BusCommandRow.seq), 0))) or 0)

    async def wait_applied(self, token: ConsistencyToken, timeout: float) -> bool:
        """True once the command at `token` (and all before it) has been applied."""
        async with self._applied:
            try:
                await asyncio.wait_for(
                    self._applied.wait_for(lambda: self._applied_seq >= token.offset), timeout
                )
            except TimeoutError:
                return False
        return True

    async def events(self, after_seq: int = 0) -> list[tuple[int, DomainEvent]]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(BusEventRow.seq, BusEventRow.body)
                .where(BusEventRow.seq > after_seq)
                .order_by(BusEventRow.seq)
            )
            return [(seq, parse_event(body)) for seq, body in rows]

    async def _processed_prefix(self) -> int:
        """The highest seq up to which every command is already processed (from an earlier run)."""
        async with self._sessions() as session:
            first_pending = await session.scalar(
                select(func.min(BusCommandRow.seq)).where(BusCommandRow.status == PENDING)
            )
            if first_pending is not None:
                return int(first_pending) - 1
            return int(await session.scalar(select(func.coalesce(func.max(BusCommandRow.seq), 0))) or 0)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            applied = await self._apply_pending()
            if not applied:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def _apply_pending(self) -> int:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(BusCommandRow.seq, BusCommandRow.body, BusCommandRow.key)
                    .where(BusCommandRow.status == PENDING)
                    .order_by(BusCommandRow.seq)
                    .limit(COMMAND_BATCH)
                )
            ).all()
        if not rows:
            return 0
        try:
            await self._record(await self._pipeline.apply(rows))
        except Exception:
            # The commands stay pending and are retried; a bug must not spin the loop at full speed.
            self._repeated(
                logging.ERROR,
                "embedded bus: applying commands from %s failed; retrying",
                rows[0].seq,
                exc_info=True,
            )
            await self._backoff.sleep()
            return len(rows)
        self._backoff.reset()
        async with self._applied:
            self._applied_seq = rows[-1].seq
            self._applied.notify_all()
        return len(rows)

    async def _record(self, settled: Settled[Row[int, str, str]]) -> None:
        """The batch's events, their projection and the rows' outcome, in one SQL transaction."""
        async with self._sessions.begin() as session:
            for encoded in settled.events:
                event = encoded.event
                session.add(
                    BusEventRow(
                        key=partition_key(event.tenant, event.dataset).decode(), body=encoded.body.decode()
                    )
                )
                await project_event(event, session)
            for letter in settled.dead_letters:
                await session.execute(
                    update(BusCommandRow)
                    .where(BusCommandRow.seq == letter.message.seq)
                    .values(status=DEAD, reason=letter.reason)
                )
                dead = DeadLetter(
                    reason=letter.reason,
                    source_topic=BUS_SOURCE,
                    offset=letter.message.seq,
                    key=letter.message.key,
                    message=letter.message.body,
                )
                await store_dead_letter(dead, session, default_tenant=self._default_tenant)
            await session.execute(
                update(BusCommandRow)
                .where(
                    BusCommandRow.seq.in_([row.seq for row in settled.messages]),
                    BusCommandRow.status == PENDING,
                )
                .values(status=DONE)
            )
        if self._on_events is not None:
            await in_thread_to_completion(self._on_events, [encoded.event for encoded in settled.events])
