"""Fencing the appliers of the command topic: one writer per dataset, also during a rebalance.

The topic key puts every command of a dataset in one partition, so owning a partition means writing its
datasets. Kafka alone does not stop a worker that lost a partition (a stalled process, a slow batch) from
committing to DeepLake after the new owner started. So ownership also lives in SQL: each assignment takes
the partition's lease row and increases its token; an applier applies and commits a batch only inside a
transaction that holds the lease rows of the batch's partitions locked and finds its own tokens in them.
The new owner's token increase waits for that lock, so an old owner's in-flight commit finishes first, and
every commit the old owner tries afterwards is refused (`Fenced`).

A lease that cannot be taken at assignment (the database is down while the worker starts or rebalances) stays
wanted: a background task retries with exponential backoff and jitter until it is taken, and a batch of such a
partition takes it first. Until then nothing is applied there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from aiokafka import ConsumerRebalanceListener, TopicPartition
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tributary.db.models import WriterLeaseRow
from tributary.resilience import Backoff, RepeatedLog, cancel
from tributary.storage import DatasetStore

log = logging.getLogger(__name__)


class Fenced(Exception):
    """This worker no longer owns a partition it was about to write for."""


class LeasePending(Exception):
    """A partition of this worker whose lease could not be taken yet (the database does not answer)."""


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class PartitionFence:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], topic: str, holder: str) -> None:
        self._sessions = sessions
        self._topic = topic
        self.holder = holder
        self._tokens: dict[int, int] = {}
        # Assigned to this worker, lease not taken yet.
        self._wanted: set[int] = set()
        self._taking = asyncio.Lock()
        self._retry: asyncio.Task[None] | None = None
        self._repeated = RepeatedLog(log)

    @property
    def leases_wanted(self) -> frozenset[int]:
        """Assigned partitions whose lease is not taken yet (nothing is applied there meanwhile)."""
        return frozenset(self._wanted)

    async def acquire(self, partitions: Iterable[int]) -> None:
        self._wanted.update(partitions)
        if not await self._take_wanted() and (self._retry is None or self._retry.done()):
            self._retry = asyncio.create_task(self._keep_taking(), name="lease-retry")

    def release(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._tokens.pop(partition, None)
            self._wanted.discard(partition)

    async def close(self) -> None:
        if self._retry is not None:
            await cancel(self._retry)

    async def _take_wanted(self) -> bool:
        """Take every wanted lease; False (logged) if the database refused."""
        try:
            async with self._taking:
                for partition in sorted(self._wanted):
                    token = await self._take(partition)
                    # The partition may have been revoked while its row was locked.
                    if partition in self._wanted:
                        self._tokens[partition] = token
                        self._wanted.discard(partition)
                        log.info("holding %s[%d] with token %d", self._topic, partition, token)
        except Exception as exc:
            self._repeated(logging.WARNING, "cannot take the leases of %s yet: %s", self._topic, exc)
            return False
        self._repeated.resolved("cannot take the leases of %s yet: %s", f"took the leases of {self._topic}")
        return True

    async def _keep_taking(self) -> None:
        backoff = Backoff(first_s=0.2, cap_s=5.0)
        while self._wanted:
            await backoff.sleep()
            await self._take_wanted()

    async def _take(self, partition: int) -> int:
        for _ in range(3):
            try:
                async with self._sessions.begin() as session:
                    row = await session.get(WriterLeaseRow, (self._topic, partition), with_for_update=True)
                    if row is None:
                        row = WriterLeaseRow(
                            topic=self._topic, partition=partition, holder=self.holder, token=1
                        )
                        session.add(row)
                    else:
                        row.holder, row.token = self.holder, row.token + 1
                    return row.token
            except IntegrityError:
                # Another worker created the row at the same moment; take it over on the next round.
                continue
        raise RuntimeError(f"could not take the lease of {self._topic}[{partition}]")

    @asynccontextmanager
    async def holding(self, partitions: Iterable[int]) -> AsyncIterator[None]:
        """Run the body (apply and commit) only while this worker provably owns every partition given."""
        wanted = sorted(set(partitions))
        if self._wanted.intersection(wanted) and not await self._take_wanted():
            raise LeasePending(f"the leases of {self._topic}{sorted(self._wanted)} are not taken yet")
        async with self._sessions.begin() as session:
            rows = await session.execute(
                select(WriterLeaseRow.partition, WriterLeaseRow.token)
                .where(WriterLeaseRow.topic == self._topic, WriterLeaseRow.partition.in_(wanted))
                .order_by(WriterLeaseRow.partition)
                .with_for_update()
            )
            current = {partition: token for partition, token in rows}
            for partition in wanted:
                mine = self._tokens.get(partition)
                if mine is None or current.get(partition) != mine:
                    raise Fenced(
                        f"{self._topic}[{partition}] is held with token {current.get(partition)}, ours is {mine}"
                    )
            yield


class FencingListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Takes the leases of assigned partitions and drops the open DeepLake writers on every change, since
    another worker may have committed to any of those datasets in between."""

    def __init__(self, fence: PartitionFence, store: DatasetStore) -> None:
        self._fence = fence
        self._store = store

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._fence.release(tp.partition for tp in revoked)
        self._store.forget_all()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._store.forget_all()
        await self._fence.acquire(tp.partition for tp in assigned)
