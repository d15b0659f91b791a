"""A Kafka producer that bounds every send and replaces itself when it can no longer deliver.

aiokafka 0.14's idempotent producer numbers each batch per partition when it drains it. A batch that expires
while its partition has no leader (a broker restart) has used a sequence number the broker never saw, and the
client never resets the sequence, so every later batch to that partition fails with `OutOfOrderSequenceNumber`
for as long as the producer lives (upstream aio-libs/aiokafka#1017). The Java client resets the sequence; here
the producer is replaced instead: any delivery failure marks the producer it came from, and the next send starts
a fresh one (a new producer id, sequences from 0). For a transactional producer the fresh one keeps the
transactional id, so starting it fences the old one and the coordinator aborts whatever transaction it left
open. What the replaced producer still holds is dropped, not delivered behind its replacement's batches.

A send is bounded by `kafka_publish_timeout_s`: a broker that is away makes it fail with `PublishFailed`, never
hang for the client's 40 s request timeout or an idempotent producer's endless retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from tributary import logs
from tributary.bus import PublishFailed

log = logging.getLogger(__name__)

# How long a producer that is shut down may take to deliver what it still holds.
CLOSE_GRACE_S = 30.0


@dataclass(frozen=True)
class Outgoing:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class ResilientProducer:
    """One aiokafka producer at a time, made by `make`; sends are serialised per call only for transactions."""

    def __init__(self, make: Callable[[], AIOKafkaProducer], *, timeout_s: float, name: str) -> None:
        self._make, self._timeout_s, self._name = make, timeout_s, name
        self._producer: AIOKafkaProducer | None = None
        self._broken: AIOKafkaProducer | None = None
        self._replacing = asyncio.Lock()
        # One transaction at a time per producer.
        self._transaction = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()

    async def ready(self) -> bool:
        """Readiness: whether a producer that has not lost a batch is running (one that has is replaced here, so
        a process taken out of rotation does not wait for a write to heal it)."""
        try:
            await self._current()
        except Exception:
            return False
        return True

    async def send_all(self, messages: Sequence[Outgoing]) -> list[RecordMetadata]:
        """Enqueue in order, then wait for every acknowledgement: per-partition order holds without a round trip
        per message. Raises PublishFailed; `unconfirmed` says whether some of them may still be delivered."""
        if not messages:
            return []
        enqueued = False
        try:
            async with asyncio.timeout(self._timeout_s):
                producer = await self._current()
                futures = []
                for message in messages:
                    futures.append(await self._send(producer, message))
                    enqueued = True
                # Shielded: the timeout abandons the wait, not aiokafka's futures (whose failures _delivered
                # sees; the abandoned gather's is dropped).
                gathered = asyncio.gather(*futures)
                gathered.add_done_callback(_ignore_outcome)
                results = await asyncio.shield(gathered)
        except Exception as exc:
            raise _failed(exc, unconfirmed=enqueued) from exc
        return list(results)

    async def send_transaction(self, messages: Sequence[Outgoing]) -> list[RecordMetadata]:
        """All of them in one Kafka transaction: a read_committed consumer sees all or none. A transaction that
        fails is abandoned with its producer: the replacement's start aborts it."""
        async with self._transaction:
            committing = False
            try:
                async with asyncio.timeout(self._timeout_s):
                    producer = await self._current()
                    await producer.begin_transaction()
                    try:
                        futures = [await self._send(producer, message) for message in messages]
                        committing = True
                        await producer.commit_transaction()
                    except BaseException:
                        if not committing:
                            with contextlib.suppress(Exception):
                                await producer.abort_transaction()
                        raise
                    results = await asyncio.gather(*futures)
            except Exception as exc:
                if self._producer is not None:
                    self._broken = self._producer
                raise _failed(exc, unconfirmed=committing) from exc
        return list(results)

    async def _send(self, producer: AIOKafkaProducer, message: Outgoing) -> asyncio.Future[RecordMetadata]:
        try:
            future: asyncio.Future[RecordMetadata] = await producer.send(
                message.topic,
                message.value,
                key=message.key,
                headers=[(k, v.encode()) for k, v in message.headers.items()],
            )
        except Exception:
            # The sender task died (it fails every later send the same way) or the batch could not be added.
            self._broken = producer
            raise
        future.add_done_callback(lambda done: self._delivered(producer, done))
        return future

    def _delivered(self, producer: AIOKafkaProducer, future: asyncio.Future[RecordMetadata]) -> None:
        if future.cancelled() or future.exception() is None:
            return
        # Whatever failed, the partition's sequence may now have a gap the broker will never fill.
        if self._broken is not producer and producer is self._producer:
            log.warning("%s producer lost a batch (%r); it will be replaced", self._name, future.exception())
            self._broken = producer

    async def _current(self) -> AIOKafkaProducer:
        async with self._replacing:
            if self._producer is not None and self._producer is self._broken:
                log.warning("replacing the %s producer", self._name)
                self._retire(self._producer)
                self._producer = None
            if self._producer is None:
                producer = self._make()
                try:
                    await logs.apart_from_request(producer.start())
                except BaseException:
                    self._retire(producer)
                    raise
                self._producer = producer
            return self._producer

    def _retire(self, producer: AIOKafkaProducer) -> None:
        task = asyncio.create_task(_abandon(producer))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def stop(self) -> None:
        """Deliver what the producer holds (for at most CLOSE_GRACE_S) and close it."""
        if self._producer is not None:
            try:
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await self._producer.stop()
            except TimeoutError:
                log.warning(
                    "the %s producer did not deliver in %.0f s; closing it", self._name, CLOSE_GRACE_S
                )
                await _abandon(self._producer)
            self._producer = None
        await asyncio.gather(*self._retiring, return_exceptions=True)


def _ignore_outcome(future: asyncio.Future[list[RecordMetadata]]) -> None:
    if not future.cancelled():
        future.exception()


def _failed(exc: Exception, *, unconfirmed: bool) -> PublishFailed:
    reason = "Kafka did not confirm in time" if isinstance(exc, TimeoutError) else f"Kafka: {exc!r}"
    return PublishFailed(reason, unconfirmed=unconfirmed)


async def _abandon(producer: AIOKafkaProducer) -> None:
    """Close a producer and fail what it still holds, without delivering it: a batch delivered after its
    replacement's would put commands out of order. (Its requests answered 503 as unconfirmed; a retry with the
    Idempotency-Key publishes them again.) aiokafka has no public way to drop what a producer holds."""
    # Closed by hand, so marked closed by hand: else its __del__ logs "Unclosed AIOKafkaProducer", once for every
    # producer an outage retired (several a second in a 60 s outage under six writers).
    producer._closed = True
    producer._message_accumulator.fail_all(KafkaError("the producer was replaced"))
    if producer._sender is not None:
        await producer._sender.close()
    await producer.client.close()
