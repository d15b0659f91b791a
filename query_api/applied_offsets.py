"""How far the applier has got: its consumer group's committed offsets on the command topic, polled by one loop
for every read that waits on them. Each waiting read used to poll Kafka itself every 10 ms, so N reads waiting
on a stream of writes made 100 x N offset requests a second; now it is one request a poll, however many wait.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka.admin import AIOKafkaAdminClient

from tributary import logs
from tributary.resilience import cancel

log = logging.getLogger(__name__)

POLL_S = 0.01
RETRY_S = 0.5


class AppliedOffsets:
    def __init__(self, admin: AIOKafkaAdminClient, group: str, topic: str) -> None:
        self._admin = admin
        self._group = group
        self._topic = topic
        # Committed offsets only grow, so a value seen once stays a safe lower bound.
        self._committed: dict[int, int] = {}
        self._changed = asyncio.Condition()
        self._waiting = 0
        self._poller: asyncio.Task[None] | None = None

    async def passed(self, partition: int, offset: int, deadline: float) -> bool:
        """Wait until the applier committed past the command at `offset` of command partition `partition`."""
        if self._committed.get(partition, -1) > offset:
            return True
        self._waiting += 1
        if self._poller is None:
            # Started by the first read that needs it, it outlives that read: its lines are no request's.
            self._poller = asyncio.create_task(
                self._poll(), name="applied-offsets", context=logs.outside_requests()
            )
        try:
            async with self._changed:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._committed.get(partition, -1) > offset),
                    max(0.0, deadline - time.monotonic()),
                )
            return True
        except TimeoutError:
            return False
        finally:
            self._waiting -= 1

    async def stop(self) -> None:
        if self._poller is not None:
            await cancel(self._poller)

    async def _poll(self) -> None:
        try:
            while self._waiting:
                try:
                    committed = await self._admin.list_consumer_group_offsets(self._group)
                except Exception:
                    # Waiting reads time out with a 504 if Kafka stays away; the next poll may find it back.
                    log.warning("could not read the applier's committed offsets", exc_info=True)
                    await asyncio.sleep(RETRY_S)
                    continue
                grown = {
                    tp.partition: meta.offset
                    for tp, meta in committed.items()
                    if tp.topic == self._topic and meta.offset > self._committed.get(tp.partition, -1)
                }
                if grown:
                    async with self._changed:
                        self._committed.update(grown)
                        self._changed.notify_all()
                await asyncio.sleep(POLL_S)
        finally:
            self._poller = None
