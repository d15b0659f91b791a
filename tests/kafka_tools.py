"""Running workers and reading topics in tests, against the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from entrypoints.http_app import create_app
from entrypoints.worker import run_worker
from events import CommandRejected, CommandRejectedPayload, Topics, partition_key
from tests.helpers import serving
from tributary.kafka import json_headers
from tributary.settings import Settings, WorkerRole


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
async def distributed(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The four distributed roles in this process: clients of the command API and of the query API."""
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
        serving(create_app(settings, "query-api")) as queries,
    ):
        yield commands, queries


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


async def publish_rejection(settings: Settings, dataset: str, reason: str) -> str:
    """Publish a CommandRejected event of a command nobody sent, as an applier would; its operation id."""
    event = CommandRejected(
        tenant=settings.default_tenant,
        dataset=dataset,
        causation_id=uuid.uuid4(),
        payload=CommandRejectedPayload(command_type="UpsertVectors", reason=reason),
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            Topics(settings.topic_prefix).events,
            event.model_dump_json().encode(),
            key=partition_key(event.tenant, event.dataset),
            headers=[(k, v.encode()) for k, v in json_headers(event.type).items()],
        )
    finally:
        await producer.stop()
    return str(event.operation)
