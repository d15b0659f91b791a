"""Kafka plumbing shared by every distributed role: the broker, the documented channels, topic setup."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.publisher import DefaultPublisher

from events import Command, DeadLetter, DomainEvent, Envelope, Topics, partition_key
from tributary import kafka_backoff, tracing
from tributary.audit import AuditEvent
from tributary.bus import ConsistencyToken, EncodedCommand, PublishFailed, count_accepted
from tributary.limits import MAX_MESSAGE_BYTES
from tributary.metrics import CONSUMER_LAG
from tributary.producer import Outgoing, ResilientProducer
from tributary.settings import Settings

log = logging.getLogger(__name__)

kafka_backoff.install()

# How often a worker samples its consumer group's lag (sample_consumer_lag): a fraction of a scrape interval.
LAG_SAMPLE_S = 5.0


def make_broker(settings: Settings, *, client_id: str) -> KafkaBroker:
    # FastStream gives its loggers handlers of their own, writing coloured text: its lines (the broker's, on this
    # logger below it, and its internals') go instead to the root logger's handler (tributary/logs.py), which
    # keeps the topic, group and message id they carry.
    faststream = logging.getLogger("faststream")
    faststream.handlers.clear()
    faststream.propagate = True
    # The broker runs the subscribers and documents the channels; messages are published by ResilientProducers
    # (tributary/producer.py), which FastStream's producer is not.
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        max_request_size=MAX_MESSAGE_BYTES,
        description="Tributary command, domain-event and dead-letter topics",
        logger=logging.getLogger("faststream.kafka"),
    )


@dataclass(frozen=True)
class Channels:
    """The public topics, declared as documented publishers so the AsyncAPI document carries their schemas."""

    topics: Topics
    commands: DefaultPublisher
    events: DefaultPublisher
    dead_letters: DefaultPublisher


def declare_channels(broker: KafkaBroker, topics: Topics) -> Channels:
    return Channels(
        topics=topics,
        commands=broker.publisher(
            topics.commands,
            title=topics.commands,
            description="Commands, keyed by '<tenant>/<dataset>'. Public: producers may publish here directly.",
            schema=Command,
        ),
        events=broker.publisher(
            topics.events,
            title=topics.events,
            description="Domain events, keyed by '<tenant>/<dataset>', published after DeepLake committed them.",
            schema=DomainEvent,
        ),
        dead_letters=broker.publisher(
            topics.dead_letters,
            title=topics.dead_letters,
            description="Messages that could not be applied, with the reason.",
            schema=DeadLetter,
        ),
    )


def json_headers(message_type: str) -> dict[str, str]:
    return {"content-type": "application/json", "message-type": message_type}


def envelope_headers(envelope: Envelope) -> dict[str, str]:
    """The headers of a command or event: its type, and the trace context its envelope carries (W3C
    `traceparent`, `tracestate`), for tools that follow a trace by the headers."""
    return json_headers(envelope.type) | tracing.headers(envelope.trace)


class KafkaCommandPublisher:
    """Publishes a request's commands: one through the idempotent producer, several (a split request) in one
    Kafka transaction, so read_committed consumers see all of them or none."""

    def __init__(self, topics: Topics, settings: Settings) -> None:
        self._topics = topics
        self._single = ResilientProducer(
            lambda: producer_for(settings, client_id="tributary-command-api"),
            timeout_s=settings.kafka_publish_timeout_s,
            name="command",
        )
        # Unique per process: each API replica is its own transactional producer (and its replacements keep the
        # id, so a replacement fences the producer it replaces).
        transactional_id = f"tributary-command-api-{uuid.uuid4().hex}"
        self._transactional = ResilientProducer(
            lambda: producer_for(
                settings, client_id="tributary-command-api", transactional_id=transactional_id
            ),
            timeout_s=settings.kafka_publish_timeout_s,
            name="transactional command",
        )

    async def ready(self) -> bool:
        """Readiness: both producers running and neither has lost a batch (tributary/producer.py)."""
        return await self._single.ready() and await self._transactional.ready()

    async def publish(self, commands: Sequence[EncodedCommand]) -> ConsistencyToken:
        messages = [
            Outgoing(
                self._topics.commands,
                encoded.body,
                key=partition_key(encoded.command.tenant, encoded.command.dataset),
                headers=envelope_headers(encoded.command),
            )
            for encoded in commands
        ]
        if len(messages) == 1:
            (last,) = await self._single.send_all(messages)
        else:
            last = (await self._transactional.send_transaction(messages))[-1]
        count_accepted(commands)
        return ConsistencyToken(partition=last.partition, offset=last.offset)

    async def close(self) -> None:
        await self._single.stop()
        await self._transactional.stop()


def producer_for(
    settings: Settings, *, client_id: str, transactional_id: str | None = None
) -> AIOKafkaProducer:
    # Idempotent with acks=all: a retried send never duplicates, and an acknowledged send is on every in-sync
    # replica.
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        transactional_id=transactional_id,
        enable_idempotence=True,
        acks="all",
        max_request_size=MAX_MESSAGE_BYTES,
    )


async def broker_answers(broker: KafkaBroker, timeout: float = 1.0) -> bool:
    """Readiness: the cluster answers a metadata request for no topic (its brokers only). FastStream's `ping`
    asks for every topic's metadata each time: 170 ms of a client's CPU on a cluster of 6,000 topics, paid at
    every readiness probe and every round of the gRPC health service. Naming a topic instead would let a broker
    that creates topics on demand create it, before `ensure_topics`, with the wrong partition count."""
    try:
        async with asyncio.timeout(timeout):
            await broker.config.admin_client.describe_topics([])
    except Exception:
        return False
    return True


async def ensure_topics(settings: Settings) -> None:
    """Create the topics if they are missing. The command topic's partition count bounds applier parallelism."""
    topics = Topics(settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="tributary-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        config = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
        wanted = [
            NewTopic(
                topics.commands, settings.command_partitions, settings.topic_replication, topic_configs=config
            ),
            NewTopic(
                topics.events, settings.command_partitions, settings.topic_replication, topic_configs=config
            ),
            NewTopic(topics.dead_letters, 1, settings.topic_replication, topic_configs=config),
            NewTopic(topics.audit, 1, settings.topic_replication),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                log.info("topics were created concurrently")
    finally:
        await admin.close()


async def topic_partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    """The partitions of a topic; a topic created a moment ago may not have them in the metadata yet."""
    for _ in range(300):
        (described,) = await admin.describe_topics([topic])
        partitions = [p["partition"] for p in described.get("partitions", [])]
        if described.get("error_code") == 0 and partitions:
            return [TopicPartition(topic, p) for p in sorted(partitions)]
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions in the cluster metadata")


async def sample_consumer_lag(settings: Settings, group: str, topic: str, consumer: str) -> None:
    """Every LAG_SAMPLE_S, how far the consumer group's committed offsets are behind the end of each partition
    of `topic`, as tributary_consumer_lag_messages{consumer=...}. Measured from Kafka, not from the worker's own
    progress, so a worker that is stuck (or whose partitions went to another) still shows the group's backlog."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id=f"tributary-{consumer}-lag"
    )
    probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await asyncio.gather(admin.start(), probe.start())
    try:
        while True:
            partitions = await topic_partitions(admin, topic)
            starts = await probe.beginning_offsets(partitions)
            ends = await probe.end_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            for tp in partitions:
                # No commit yet: the group starts from the earliest offset (auto_offset_reset).
                done = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else starts[tp]
                CONSUMER_LAG.labels(consumer, str(tp.partition)).set(max(0, ends[tp] - done))
            await asyncio.sleep(LAG_SAMPLE_S)
    finally:
        await asyncio.gather(admin.close(), probe.stop())


def consumer_record(message: KafkaMessage) -> ConsumerRecord[bytes, bytes]:
    """The aiokafka record behind a FastStream message of a non-batch subscriber."""
    return cast("ConsumerRecord[bytes, bytes]", message.raw_message)


def consumer_records(message: KafkaMessage) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    """The aiokafka records behind a FastStream message of a batch subscriber."""
    raw = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


def dead_letter(topics: Topics, reason: str, record: ConsumerRecord[bytes, bytes]) -> Outgoing:
    letter = DeadLetter(
        reason=reason,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode(errors="replace") if record.key else None,
        message=(record.value or b"").decode(errors="replace"),
    )
    return Outgoing(
        topics.dead_letters, letter.model_dump_json().encode(), headers=json_headers("DeadLetter")
    )


class KafkaAuditSink:
    """Audit records on `<prefix>.audit`, keyed by tenant."""

    def __init__(self, settings: Settings) -> None:
        self._topic = Topics(settings.topic_prefix).audit
        self._producer = ResilientProducer(
            lambda: producer_for(settings, client_id="tributary-audit"),
            timeout_s=settings.kafka_publish_timeout_s,
            name="audit",
        )

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, event: AuditEvent) -> None:
        try:
            await self._producer.send_all(
                [Outgoing(self._topic, event.model_dump_json().encode(), key=(event.tenant or "").encode())]
            )
        except PublishFailed as exc:
            # Kafka is away: the SQL audit row has it; a traceback per request would say nothing more.
            log.warning("audit event %s %s not published: %s", event.action, event.target, exc.reason)
