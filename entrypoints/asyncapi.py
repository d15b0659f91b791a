"""The AsyncAPI document of the public topics, generated from the code that produces and consumes them."""

from __future__ import annotations

import json
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from entrypoints.kafka_workers import register_applier, register_projector
from events import Topics
from tributary import __version__
from tributary.db.session import engine_for, make_sessionmaker
from tributary.kafka import declare_channels, make_broker, producer_for
from tributary.producer import ResilientProducer
from tributary.settings import Settings
from tributary.storage import DatasetStore
from workers.fencing import PartitionFence


def documented_broker(settings: Settings) -> KafkaBroker:
    """A broker with every channel and subscriber of the distributed deployment registered (not connected)."""
    broker = make_broker(settings, client_id="tributary-docs")
    channels = declare_channels(broker, Topics(settings.topic_prefix))
    sessions = make_sessionmaker(engine_for(settings))
    store = DatasetStore(settings.resolved_storage_root)
    register_applier(
        broker,
        channels,
        ResilientProducer(lambda: producer_for(settings, client_id="docs"), timeout_s=1.0, name="docs"),
        store,
        PartitionFence(sessions, channels.topics.commands, "docs"),
    )
    register_projector(broker, channels, sessions, settings.default_tenant)
    return broker


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    spec = AsyncAPI(
        documented_broker(settings),
        title="Tributary messages",
        version=__version__,
        description=(
            "Commands (imperative, keyed by '<tenant>/<dataset>'), domain events (past tense, published after the "
            "DeepLake commit) and dead letters. Every message is one JSON envelope: id, type, schema_version, "
            "tenant, dataset, occurred_at, idempotency_key, causation_id, trace, operation_id, part, payload."
        ),
        schema_version="3.0.0",
    )
    document: dict[str, Any] = json.loads(spec.to_specification().to_json())
    return document
