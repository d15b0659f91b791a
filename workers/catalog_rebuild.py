"""Rebuilding the SQL catalog from the event log: the catalog is a projection, so it can be thrown away and
folded again from the events (Kafka's event topic, or embedded mode's event table).

The catalog's rows are cleared and every event up to the log's end as it was at the start is projected, in one
transaction; then whatever arrived meanwhile is folded too, until the log's end is reached. A projector running
at the same time does no harm: projecting an event twice sets the same values (versions and counts are carried
by the events), so the catalog converges on the latest event either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from events import DomainEvent, Topics, parse_event
from tributary.db.models import BusEventRow, DatasetRow
from tributary.kafka import topic_partitions
from tributary.limits import MAX_MESSAGE_BYTES
from tributary.logs import without_input
from tributary.settings import Settings
from workers.projector import project_event

log = logging.getLogger(__name__)


async def rebuild_catalog(
    sessions: async_sessionmaker[AsyncSession], events: AsyncIterator[list[DomainEvent]]
) -> int:
    """Clear the catalog and fold `events` (batches, oldest first) into it; returns how many were folded."""
    folded = 0
    first = True
    async for batch in events:
        async with sessions.begin() as session:
            if first:
                await session.execute(delete(DatasetRow))
                first = False
            for event in batch:
                await project_event(event, session)
        folded += len(batch)
    if first:  # an empty log: the catalog is empty too
        async with sessions.begin() as session:
            await session.execute(delete(DatasetRow))
    return folded


async def kafka_events(settings: Settings, batch: int = 5000) -> AsyncIterator[list[DomainEvent]]:
    """The event topic from its beginning to its end, re-read until no more arrived; the first batch holds
    everything up to the end as it was when reading started, so the catalog is cleared and refilled at once."""
    topic = Topics(settings.topic_prefix).events
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        fetch_max_bytes=4 * MAX_MESSAGE_BYTES,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await asyncio.gather(consumer.start(), admin.start())
    try:
        partitions = await topic_partitions(admin, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        pending: list[DomainEvent] = []
        while True:
            ends = await consumer.end_offsets(partitions)
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                fetched = await consumer.getmany(*partitions, timeout_ms=500, max_records=batch)
                for records in fetched.values():
                    pending += _readable(record.value or b"" for record in records)
            if not pending:
                return
            yield pending
            pending = []
    finally:
        await asyncio.gather(consumer.stop(), admin.close())


async def embedded_events(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[list[DomainEvent]]:
    """Embedded mode's event table, all of it in the first batch, then what arrived meanwhile."""
    after = 0
    while True:
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(BusEventRow.seq, BusEventRow.body)
                    .where(BusEventRow.seq > after)
                    .order_by(BusEventRow.seq)
                )
            ).all()
        if not rows:
            return
        after = rows[-1].seq
        yield _readable(body for _, body in rows)


def _readable(bodies: Iterable[bytes | str]) -> list[DomainEvent]:
    events = []
    for body in bodies:
        try:
            events.append(parse_event(body))
        except ValidationError as exc:
            log.error("skipping an unreadable event: %s", without_input(exc))
    return events
