"""Consuming the domain-event topic: typed events for a consumer group, at least once, with explicit commits.

The event topic (`<prefix>.events`) carries what the write model committed, one JSON envelope per message
(`events.domain`): `DatasetCreated`, `VectorsUpserted` (with the ids, vectors, texts and metadata),
`VectorsDeleted`, `MetadataUpdated`, `DatasetDeleted`, `CommandRejected`. Events of one dataset share a partition,
so they arrive in the order they were committed.

    async with EventStream(bootstrap, group="search-mirror", topic_prefix="tributary") as stream:
        async for event in stream:
            if isinstance(event, VectorsUpserted):
                mirror(event.dataset, event.payload.ids, event.payload.vectors)
            await stream.commit()  # everything yielded so far is done

At least once: an event's offset is committed only by `commit()` (or by `run`, after the handler returned), so
a consumer that stops before committing is given the event again, by the next member of its group. Handlers
deduplicate on `event.id` where applying twice matters (a redelivered command yields an event with the same id).
A message that is not a known event (a newer type, or not an envelope) is logged and passed over.

Each event carries the trace of the write that caused it (`event.trace`, W3C; tributary/tracing.py): `run` calls
the handler in a span that continues it (`handle <type>`), recorded once the consumer's process installs an
OpenTelemetry SDK (`tracing.install`); a loop over the stream continues it with `tracing.continuing`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from events import DomainEvent, Topics, parse_event
from tributary import tracing
from tributary.limits import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


class EventStream:
    """The domain events of one deployment (`topic_prefix`), shared among the members of consumer `group`. A
    group new to the topic starts at its beginning (`from_beginning=False`: at its end)."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        *,
        topic_prefix: str = "tributary",
        from_beginning: bool = True,
        poll_ms: int = 500,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            Topics(topic_prefix).events,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=4 * MAX_MESSAGE_BYTES,
        )
        self._poll_ms = poll_ms
        # Per partition, the offset after the last event yielded: what `commit` records as done.
        self._done: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._consumer.stop()

    async def __aiter__(self) -> AsyncIterator[DomainEvent]:
        """Every event, waiting for new ones; never ends by itself."""
        while True:
            fetched = await self._consumer.getmany(timeout_ms=self._poll_ms)
            for partition, messages in fetched.items():
                for message in messages:
                    self._done[partition] = message.offset + 1
                    try:
                        event = parse_event(message.value or b"")
                    except ValidationError as exc:
                        log.warning(
                            "passing over %s offset %d: not a known event: %s",
                            partition,
                            message.offset,
                            exc.errors(include_url=False)[:1],
                        )
                        continue
                    yield event

    async def commit(self) -> None:
        """Record every event yielded so far as done for the group. Partitions the group has meanwhile given to
        another member are left out: that member reads their uncommitted events again (at least once)."""
        assigned = self._consumer.assignment()
        done = {partition: offset for partition, offset in self._done.items() if partition in assigned}
        self._done.clear()
        if done:
            await self._consumer.commit(done)

    async def run(self, handler: Callable[[DomainEvent], Awaitable[None]]) -> None:
        """Call `handler` on each event and commit once it returned: an event whose handler raised (and the
        events after it) are delivered again to the group, after the exception leaves `run`."""
        async for event in self:
            with tracing.continuing("handle", event):
                await handler(event)
            await self.commit()
