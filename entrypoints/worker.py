"""Runs a worker role (applier or projector) against Kafka until it is told to stop (SIGTERM or SIGINT: the
broker stops consuming, in-flight work ends, the database pool closes), with `/healthz`, `/readyz` and
`/metrics` (its consumer group's lag sampled from Kafka among them) on a small HTTP port when one is given
(`--port`, `health_port`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from functools import partial

from entrypoints.bootstrap import configure_tracing, freeze_startup_heap
from entrypoints.health import serving_health
from entrypoints.kafka_workers import register_applier, register_projector
from events import Topics
from tributary.backup_store import open_backup_store
from tributary.db.session import engine_for, make_sessionmaker
from tributary.health import Readiness, database_answers
from tributary.kafka import (
    broker_answers,
    declare_channels,
    ensure_topics,
    make_broker,
    producer_for,
    sample_consumer_lag,
)
from tributary.producer import ResilientProducer
from tributary.resilience import Supervised
from tributary.settings import Settings, WorkerRole
from tributary.storage import DatasetStore
from workers.dead_letters import sample_dead_letters
from workers.fencing import PartitionFence, holder_name

log = logging.getLogger(__name__)

# Longer than a client's write (kafka_publish_timeout_s): a batch's events can be tens of MB (VectorsUpserted
# carries the vectors), and a batch whose publish times out is read and published again, so too short a bound
# would repeat work on a busy but healthy broker instead of only bounding an outage.
APPLIER_PUBLISH_TIMEOUT_S = 60.0


async def run_worker(
    settings: Settings, role: WorkerRole, stop: asyncio.Event | None = None, port: int | None = None
) -> None:
    stop = stop or _stop_on_signals()
    configure_tracing(role)
    broker = make_broker(settings, client_id=f"tributary-{role}")
    channels = declare_channels(broker, Topics(settings.topic_prefix))
    engine = engine_for(settings)
    sessions = make_sessionmaker(engine)
    readiness = Readiness(
        required={
            "database": lambda: database_answers(engine),
            "kafka": lambda: broker_answers(broker),
        }
    )
    fence = producer = None
    if role == "applier":
        fence = PartitionFence(sessions, channels.topics.commands, holder_name())
        store = DatasetStore(settings.resolved_storage_root, backups=open_backup_store(settings))
        producer = ResilientProducer(
            lambda: producer_for(settings, client_id="tributary-applier"),
            timeout_s=APPLIER_PUBLISH_TIMEOUT_S,
            name="applier",
        )
        register_applier(broker, channels, producer, store, fence, settings.instance_id)
        readiness.required["leases"] = partial(_leases_held, fence)
        readiness.required["kafka_publish"] = producer.ready
    else:
        register_projector(broker, channels, sessions, settings.default_tenant)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        port = port or settings.health_port
        if port is not None:
            await stack.enter_async_context(serving_health(readiness, settings.host, port))
        await ensure_topics(settings)
        if fence is not None:
            stack.push_async_callback(fence.close)
        if producer is not None:
            stack.push_async_callback(producer.stop)
        stack.push_async_callback(broker.stop)
        await broker.start()
        if port is not None:
            group, topic = (
                (f"{channels.topics.prefix}.applier", channels.topics.commands)
                if role == "applier"
                else (f"{channels.topics.prefix}.projector", channels.topics.events)
            )
            lag = Supervised("consumer lag", partial(sample_consumer_lag, settings, group, topic, role), log)
            lag.start()
            stack.push_async_callback(lag.stop)
        if role == "projector":
            counting = Supervised("dead-letter count", partial(sample_dead_letters, sessions), log)
            counting.start()
            stack.push_async_callback(counting.stop)
        if producer is not None:
            # Started now rather than by the first batch's events (a failure here is retried by that batch).
            await producer.ready()
        freeze_startup_heap(stack)
        log.info("%s running against %s", role, settings.kafka_bootstrap)
        await stop.wait()
        log.info("%s stopping", role)


async def _leases_held(fence: PartitionFence) -> bool:
    return not fence.leases_wanted


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
