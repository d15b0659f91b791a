"""Partition leases in PostgreSQL: a worker that lost a partition cannot commit for it, and the new owner
waits for the old owner's commit in flight."""

from __future__ import annotations

import asyncio

import pytest

from tributary.db.session import engine_for, make_sessionmaker
from tributary.settings import Settings
from workers.fencing import Fenced, PartitionFence


async def test_the_newest_owner_fences_the_old_one(distributed_settings: Settings) -> None:
    engine = engine_for(distributed_settings)
    sessions = make_sessionmaker(engine)
    old, new = PartitionFence(sessions, "commands", "old"), PartitionFence(sessions, "commands", "new")
    try:
        await old.acquire([0, 1])
        async with old.holding([0, 1]):
            pass

        await new.acquire([1])
        with pytest.raises(Fenced):
            async with old.holding([0, 1]):
                raise AssertionError("the old owner must not get to apply")
        async with old.holding([0]):  # partition 0 is still its own
            pass
        async with new.holding([1]):
            pass
    finally:
        await engine.dispose()


async def test_taking_a_partition_waits_for_the_commit_in_flight(distributed_settings: Settings) -> None:
    engine = engine_for(distributed_settings)
    sessions = make_sessionmaker(engine)
    old, new = PartitionFence(sessions, "commands", "old"), PartitionFence(sessions, "commands", "new")
    try:
        await old.acquire([3])
        async with old.holding([3]):
            taking = asyncio.create_task(new.acquire([3]))
            await asyncio.sleep(0.5)
            assert not taking.done(), "the new owner must wait while the old one commits"
        await asyncio.wait_for(taking, 60)
        with pytest.raises(Fenced):
            async with old.holding([3]):
                pass
    finally:
        await engine.dispose()
