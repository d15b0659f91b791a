"""Running workers and reading topics in tests, against the real broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from events import Topics
from tributary.settings import Settings
from tributary.worker import WorkerRole, run_worker


@contextlib.asynccontextmanager
async def workers(settings: Settings, *roles: WorkerRole) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_worker(settings, role, stop)) for role in roles]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def event_reader(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A stream consumer of the public event topic, as a third party would write one."""
    consumer = AIOKafkaConsumer(
        Topics(settings.topic_prefix).events,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"{settings.topic_prefix}.test-reader",
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def command_count(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        topic = Topics(settings.topic_prefix).commands
        partitions = [TopicPartition(topic, p) for p in range(settings.command_partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        return sum(ends.values())
    finally:
        await consumer.stop()
