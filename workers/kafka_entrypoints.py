"""Kafka entrypoints of the workers: thin subscribers that decode, call the plain handlers, and publish.

Offsets are committed only after a message was handled and its events were published (AckPolicy.NACK_ON_ERROR:
an exception seeks back and the message is delivered again), so delivery is at least once and the
idempotent handlers make the effect once.
"""

from __future__ import annotations

import asyncio
import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from events import CommandRejected, parse_command, parse_event, partition_key
from tributary.kafka import Channels, consumer_record, json_headers, publish_dead_letter
from tributary.storage import DatasetStore
from workers.applier import apply_command
from workers.projector import project_event

log = logging.getLogger(__name__)


def register_applier(broker: KafkaBroker, channels: Channels, store: DatasetStore) -> None:
    topics = channels.topics

    @broker.subscriber(
        topics.commands,
        group_id=f"{topics.prefix}.applier",
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_partition_fetch_bytes=32 * 1024 * 1024,
        title=f"{topics.commands}:applier",
        description="Applies commands to DeepLake, one writer per dataset, then publishes the domain events.",
    )
    async def on_command(message: KafkaMessage) -> None:
        # The body is decoded here, not by FastStream, so an unreadable one is dead-lettered, not retried.
        record = consumer_record(message)
        try:
            command = parse_command(message.body)
        except ValidationError as exc:
            log.warning("dead-lettering an unreadable command at offset %s: %s", record.offset, exc)
            await publish_dead_letter(channels, f"invalid command: {exc}", record)
            return
        events = await asyncio.to_thread(apply_command, command, store)
        for event in events:
            await channels.events.publish(
                event.model_dump_json().encode(),
                key=partition_key(event.tenant, event.dataset),
                headers=json_headers(event.type),
            )
            if isinstance(event, CommandRejected):
                await publish_dead_letter(channels, event.payload.reason, record)


def register_projector(
    broker: KafkaBroker, channels: Channels, sessions: async_sessionmaker[AsyncSession]
) -> None:
    topics = channels.topics

    @broker.subscriber(
        topics.events,
        group_id=f"{topics.prefix}.projector",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_partition_fetch_bytes=32 * 1024 * 1024,
        title=f"{topics.events}:projector",
        description="Folds domain events into the SQL projections (catalog, counts, operation status).",
    )
    async def on_event(message: KafkaMessage) -> None:
        try:
            event = parse_event(message.body)
        except ValidationError as exc:
            # Events come from our own applier; an unreadable one is from a newer schema or a foreign
            # producer, and must not stop the projection.
            log.error("skipping an unreadable event at offset %s: %s", consumer_record(message).offset, exc)
            return
        async with sessions.begin() as session:
            await project_event(event, session)
