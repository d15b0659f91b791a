"""Both transports dead-letter the same way: the same commands of the same stream go to the dead letters (the
topic, or the embedded log's rows marked dead) with the same reasons, and their neighbours are applied."""

from __future__ import annotations

import asyncio

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import select

from entrypoints.embedded_bus import EmbeddedBus
from events import (
    CreateDataset,
    CreateDatasetPayload,
    DeadLetter,
    Topics,
    UpsertVectors,
    UpsertVectorsPayload,
    partition_key,
)
from tests.kafka_tools import workers
from tributary.bus import ConsistencyToken
from tributary.db.migrate import upgrade
from tributary.db.models import BusCommandRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.deeplake_lib import deeplake
from tributary.settings import Settings
from tributary.storage import DatasetStore

KEY = partition_key("default", "mixed")


def upsert(vector_id: str, dims: int = 4) -> bytes:
    payload = UpsertVectorsPayload(ids=[vector_id], vectors=np.ones((1, dims), dtype=np.float32))
    return UpsertVectors(tenant="default", dataset="mixed", payload=payload).model_dump_json().encode()


def stream() -> list[bytes]:
    create = CreateDataset(tenant="default", dataset="mixed", payload=CreateDatasetPayload(dimensions=4))
    return [
        create.model_dump_json().encode(),
        upsert("a"),
        # Poison: not a command at all.
        b'{"type": "UpsertVectors", "garbage": true}',
        # A command the applier rejects.
        upsert("b", dims=3),
        upsert("c"),
    ]


def stored_ids(settings: Settings) -> list[str]:
    ds = deeplake.open_read_only(f"{settings.resolved_storage_root}/default/mixed")
    return sorted(str(i) for i in ds["id"][:])


async def kafka_letters(settings: Settings, bodies: list[bytes], expected: int) -> dict[int, str]:
    """The dead letters of the Kafka applier, by index in `bodies`."""
    topics = Topics(settings.topic_prefix)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True)
    dead_letters = AIOKafkaConsumer(
        topics.dead_letters, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    async with workers(settings, "applier"):
        await producer.start()
        await dead_letters.start()
        try:
            for body in bodies:
                await producer.send(topics.commands, body, key=KEY)
            await producer.flush()
            letters = [
                DeadLetter.model_validate_json((await asyncio.wait_for(dead_letters.getone(), 60)).value)
                for _ in range(expected)
            ]
        finally:
            await producer.stop()
            await dead_letters.stop()
    assert all(letter.key == KEY.decode() for letter in letters)
    return {bodies.index(letter.message.encode()): letter.reason for letter in letters}


async def embedded_letters(settings: Settings, bodies: list[bytes]) -> dict[int, str]:
    """The rows the embedded bus marked dead, by index in `bodies` (the others must be done)."""
    settings.data_dir.mkdir(parents=True)
    engine = engine_for(settings)
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    try:
        # Written to the log as they are, as Kafka takes them from any producer.
        async with sessions.begin() as session:
            rows = [BusCommandRow(key=KEY.decode(), body=body.decode(), status="pending") for body in bodies]
            session.add_all(rows)
            await session.flush()
            seqs = [row.seq for row in rows]
        bus = EmbeddedBus(sessions, DatasetStore(settings.resolved_storage_root), settings.default_tenant)
        await bus.start()
        try:
            assert await bus.wait_applied(ConsistencyToken(0, seqs[-1]), timeout=60)
        finally:
            await bus.stop()
        async with sessions() as session:
            outcome = (
                await session.execute(
                    select(BusCommandRow.seq, BusCommandRow.status, BusCommandRow.reason).order_by(
                        BusCommandRow.seq
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert {status for _, status, reason in outcome if reason is None} == {"done"}
    return {seqs.index(seq): reason for seq, status, reason in outcome if status == "dead" and reason}


async def test_both_transports_dead_letter_the_same_commands_for_the_same_reasons(
    distributed_settings: Settings, embedded_settings: Settings
) -> None:
    bodies = stream()
    embedded = await embedded_letters(embedded_settings, bodies)
    kafka = await kafka_letters(distributed_settings, bodies, expected=len(embedded))

    assert sorted(embedded) == [2, 3]
    assert embedded[2].startswith("invalid command") and "dataset" in embedded[2]
    assert embedded[3] == "vectors have 3 dimensions, the dataset has 4"
    assert kafka == embedded
    assert stored_ids(embedded_settings) == stored_ids(distributed_settings) == ["a", "c"]
