"""A publishing producer that loses a batch is replaced, and a publish to a broker that is away fails within its
bound (tributary/producer.py), against the real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import OutOfOrderSequenceNumber

from events import Topics
from tests.processes import free_port
from tributary.bus import PublishFailed
from tributary.kafka import ensure_topics, producer_for
from tributary.producer import Outgoing, ResilientProducer
from tributary.settings import Settings

pytestmark = pytest.mark.kafka


def settings_for(bootstrap: str, prefix: str, tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, kafka_bootstrap=bootstrap, topic_prefix=prefix)  # type: ignore[call-arg]


@pytest.fixture
async def topic_settings(kafka_bootstrap: str, run_id: str, tmp_path: Path) -> Settings:
    """Settings of this test's topics, created."""
    settings = settings_for(kafka_bootstrap, run_id, tmp_path)
    await ensure_topics(settings)
    return settings


def open_a_sequence_gap(producer: AIOKafkaProducer, tp: TopicPartition) -> None:
    """What aiokafka 0.14 leaves behind when a batch expires while its partition has no leader (a broker
    restart): a sequence number used that the broker never saw (aio-libs/aiokafka#1017)."""
    producer._txn_manager.increment_sequence_number(tp, 1)  # type: ignore[union-attr]


async def test_a_partition_is_not_stuck_after_a_sequence_gap(topic_settings: Settings) -> None:
    settings = topic_settings
    topic = Topics(settings.topic_prefix).commands
    message = Outgoing(topic, b"{}", key=b"tenant/dataset")

    # The bug: aiokafka's own producer never recovers; every later batch to the partition is refused.
    plain = producer_for(settings, client_id="plain")
    await plain.start()
    try:
        sent = await plain.send_and_wait(topic, b"{}", key=b"tenant/dataset")
        open_a_sequence_gap(plain, TopicPartition(topic, sent.partition))
        for _ in range(3):
            with pytest.raises(OutOfOrderSequenceNumber):
                await plain.send_and_wait(topic, b"{}", key=b"tenant/dataset")
    finally:
        await plain.stop()

    resilient = ResilientProducer(
        lambda: producer_for(settings, client_id="resilient"), timeout_s=30, name="test"
    )
    try:
        (first,) = await resilient.send_all([message])
        open_a_sequence_gap(resilient._producer, TopicPartition(topic, first.partition))  # type: ignore[arg-type]
        # The batch that meets the gap fails (the client hears 503) ...
        with pytest.raises(PublishFailed):
            await resilient.send_all([message])
        # ... and the producer it came from is replaced (at the next send, or by the readiness check): the
        # partition takes writes again, in order.
        assert await resilient.ready()
        later = await resilient.send_all([message, message])
        assert [m.partition for m in later] == [first.partition] * 2
        assert later[0].offset < later[1].offset
        assert await resilient.ready()
    finally:
        await resilient.stop()


async def test_a_transaction_is_not_stuck_after_a_sequence_gap(topic_settings: Settings) -> None:
    settings = topic_settings
    topic = Topics(settings.topic_prefix).commands
    messages = [Outgoing(topic, b"{}", key=b"tenant/dataset")] * 3
    resilient = ResilientProducer(
        lambda: producer_for(settings, client_id="resilient", transactional_id=f"{settings.topic_prefix}-tx"),
        timeout_s=30,
        name="test",
    )
    try:
        first = await resilient.send_transaction(messages)
        open_a_sequence_gap(resilient._producer, TopicPartition(topic, first[0].partition))  # type: ignore[arg-type]
        with pytest.raises(PublishFailed):
            await resilient.send_transaction(messages)
        # The failed transaction is abandoned with its producer; its replacement (same transactional id) fences
        # it, and the next transaction commits.
        later = await resilient.send_transaction(messages)
        assert len(later) == 3 and later[0].offset > first[-1].offset
    finally:
        await resilient.stop()


async def test_a_publish_to_a_broker_that_is_away_fails_within_its_bound(tmp_path: Path) -> None:
    settings = settings_for(f"127.0.0.1:{free_port()}", "away", tmp_path)
    resilient = ResilientProducer(lambda: producer_for(settings, client_id="away"), timeout_s=2, name="test")
    try:
        with pytest.raises(PublishFailed) as failed:
            await asyncio.wait_for(resilient.send_all([Outgoing("away.commands", b"{}")]), 60)
        # Nothing reached a producer: the request did nothing, and says so.
        assert not failed.value.unconfirmed
        assert not await resilient.ready()
    finally:
        await resilient.stop()
