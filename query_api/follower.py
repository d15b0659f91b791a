"""A query replica's view of the event log: it reads every partition of the event topic itself (no consumer
group, so every replica sees every event), applies the events to its projections, and answers the consistency
waits of reads.

Start-up notes where the event log ends, loads the datasets from DeepLake, then replays the log from the noted
offsets: what DeepLake already held is applied again, which converges (see query_api/registry.py).

How far writes are applied comes from the applier's committed offsets on the command topic: the applier commits
a command's offset only after its DeepLake commit and after publishing its events. So once the committed offset
passes a command, its events are in the event log, and reading the log up to its end as of that moment makes
the command visible here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from events import DomainEvent, Topics, parse_event, partition_key
from query_api.applied_offsets import AppliedOffsets
from query_api.consistency import ConsistencyLevel, TokenBeyondLog
from query_api.registry import Projections, apply_events, load_all
from query_api.saved_graphs import SavedGraphs
from tributary.bus import ConsistencyToken
from tributary.kafka import topic_partitions
from tributary.limits import MAX_MESSAGE_BYTES
from tributary.metrics import CONSUMER_LAG
from tributary.resilience import Supervised
from tributary.settings import Settings
from tributary.storage import DatasetStore
from tributary.threads import in_thread_to_completion

log = logging.getLogger(__name__)

CATALOG_WAIT_S = 10.0


class EventFollower:
    def __init__(
        self,
        settings: Settings,
        projections: Projections,
        store: DatasetStore,
        saved: SavedGraphs | None = None,
    ) -> None:
        self._settings = settings
        # The graphs saved when the replica last stopped, reused at start-up (query_api/saved_graphs.py).
        self._saved = saved
        self._topics = Topics(settings.topic_prefix)
        self._projections = projections
        self._store = store
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=4 * MAX_MESSAGE_BYTES,
        )
        # A second client for offset queries, so they never wait behind a long fetch.
        self._probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        self._partitions: list[TopicPartition] = []
        self._command_partitions: list[int] = []
        self._applied = AppliedOffsets(self._admin, f"{self._topics.prefix}.applier", self._topics.commands)
        self._positions: dict[TopicPartition, int] = {}
        self._advanced = asyncio.Condition()
        self._caught_up_at = 0.0
        self._caught_up_since_start = False
        self._following = Supervised("event follower", self._run, log)

    async def start(self, catalog: Callable[[], Awaitable[Sequence[tuple[str, str]]]]) -> None:
        """Load the datasets the catalog names, once it covers the event log as it ends now, then follow."""
        await asyncio.gather(self._consumer.start(), self._probe.start(), self._admin.start())
        try:
            await self._load(catalog)
        except BaseException:
            await self.stop()
            raise
        self._following.start()

    async def _load(self, catalog: Callable[[], Awaitable[Sequence[tuple[str, str]]]]) -> None:
        self._partitions = await topic_partitions(self._admin, self._topics.events)
        self._command_partitions = [
            tp.partition for tp in await topic_partitions(self._admin, self._topics.commands)
        ]
        self._consumer.assign(self._partitions)
        ends = await self._probe.end_offsets(self._partitions)
        started = time.monotonic()
        if not await self._projector_reached(ends, started + CATALOG_WAIT_S):
            log.warning("the catalog does not cover the event log yet; datasets created just now load late")
        await asyncio.to_thread(load_all, self._projections, self._store, await catalog(), self._saved)
        log.info(
            "loaded %d datasets from DeepLake in %.2f s", len(self._projections), time.monotonic() - started
        )
        for tp in self._partitions:
            self._consumer.seek(tp, ends[tp])
        self._positions = dict(ends)

    async def stop(self) -> None:
        await self._following.stop()
        await self._applied.stop()
        await asyncio.gather(self._consumer.stop(), self._probe.stop(), self._admin.close())

    async def ready(self) -> bool:
        """Ready once caught up with the event log after start (so a `bounded` read answers at once), and while
        following runs."""
        if not self._following.healthy:
            return False
        if not self._caught_up_since_start:
            ends = await self._probe.end_offsets(self._partitions)
            self._caught_up_since_start = all(self._positions[tp] >= end for tp, end in ends.items())
        return self._caught_up_since_start

    async def _run(self) -> None:
        # After a crash the consumer may have fetched past what was applied: read again from there (applying
        # an event twice converges, see query_api/registry.py).
        for tp, offset in self._positions.items():
            self._consumer.seek(tp, offset)
        while True:
            fetched = await self._consumer.getmany(timeout_ms=100, max_records=2000)
            events: list[DomainEvent] = []
            for records in fetched.values():
                for record in records:
                    try:
                        events.append(parse_event(record.value or b""))
                    except ValidationError as exc:
                        log.error("skipping an unreadable event at offset %s: %s", record.offset, exc)
            if events:
                await in_thread_to_completion(apply_events, self._projections, events)
            async with self._advanced:
                for tp, records in fetched.items():
                    self._positions[tp] = records[-1].offset + 1
                # Before a partition's first fetch its end is unknown (None): not caught up yet.
                ends = {tp: self._consumer.highwater(tp) for tp in self._partitions}
                for tp, end in ends.items():
                    if end is not None:
                        CONSUMER_LAG.labels("query-follower", str(tp.partition)).set(
                            end - self._positions[tp]
                        )
                if all(end is not None and self._positions[tp] >= end for tp, end in ends.items()):
                    self._caught_up_at = time.monotonic()
                self._advanced.notify_all()

    def reflected(self) -> dict[str, int]:
        return {str(tp.partition): offset for tp, offset in self._positions.items()}

    async def reach(
        self,
        level: ConsistencyLevel,
        tenant: str,
        dataset: str,
        token: ConsistencyToken | None,
        timeout: float,
    ) -> bool:
        deadline = time.monotonic() + timeout
        if level == "eventual":
            return True
        if level == "bounded" and time.monotonic() - self._caught_up_at <= self._settings.bounded_staleness_s:
            return True
        if level == "session" and token is not None:
            await self._check_in_log(token)
            if not await self._applied.passed(token.partition, token.offset, deadline):
                return False
        if level == "strong":
            partition = self._command_partition(tenant, dataset)
            end = (await self._probe.end_offsets([partition]))[partition]
            # An empty partition (a deployment restored onto new topics) has no command to wait for, and the
            # applier never commits on it.
            if end > 0 and not await self._applied.passed(partition.partition, end - 1, deadline):
                return False
        return await self._caught_up_with(await self._probe.end_offsets(self._partitions), deadline)

    async def _check_in_log(self, token: ConsistencyToken) -> None:
        if token.partition not in self._command_partitions:
            raise TokenBeyondLog
        partition = TopicPartition(self._topics.commands, token.partition)
        if token.offset >= (await self._probe.end_offsets([partition]))[partition]:
            raise TokenBeyondLog

    async def _projector_reached(self, ends: dict[TopicPartition, int], deadline: float) -> bool:
        """The SQL catalog comes from the projector: wait until it has read the event log up to `ends`."""
        group = f"{self._topics.prefix}.projector"
        while True:
            try:
                committed = await self._admin.list_consumer_group_offsets(group, partitions=list(ends))
            except KafkaError as exc:
                # On a new cluster the group coordinator may not be elected yet: not reached, ask again.
                log.info("could not read the projector's offsets yet: %r", exc)
                committed = {}
            if all(end == 0 or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items()):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)

    async def _caught_up_with(self, ends: dict[TopicPartition, int], deadline: float) -> bool:
        async with self._advanced:
            try:
                await asyncio.wait_for(
                    self._advanced.wait_for(
                        lambda: all(self._positions[tp] >= end for tp, end in ends.items())
                    ),
                    max(0.0, deadline - time.monotonic()),
                )
            except TimeoutError:
                return False
        return True

    def _command_partition(self, tenant: str, dataset: str) -> TopicPartition:
        # The producers' default partitioner (murmur2 of the key), as the command API and applier use it.
        numbers = self._command_partitions
        chosen = DefaultPartitioner()(partition_key(tenant, dataset), numbers, numbers)
        return TopicPartition(self._topics.commands, chosen)
