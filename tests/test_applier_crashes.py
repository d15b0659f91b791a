"""What no crash and no rebalance may do: lose an acknowledged write or apply one twice. Appliers are killed
with SIGKILL at random points (real processes), or a second applier joins and the first leaves, while
100,000 vectors stream in through the command API."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from pathlib import Path

import httpx
from sqlalchemy import select

from entrypoints.http_app import create_app
from entrypoints.worker import run_worker
from events import Topics
from tests.helpers import eventually, serving
from tests.kafka_tools import workers
from tests.processes import serve, tributary_env
from tests.write_stream import DIMENSIONS, Expected, stream_writes, until_stored
from tributary.db.models import WriterLeaseRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.settings import Settings

DATASETS = ("crash-a", "crash-b")


def applier_process(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    # Static membership: the restarted process takes the partitions back without waiting for the killed one's
    # session to time out.
    return serve("applier", tributary_env(settings, TRIBUTARY_INSTANCE_ID="applier-0"), log)


async def create_datasets(client: httpx.AsyncClient) -> None:
    for name in DATASETS:
        created = await client.post(
            "/api/v1/datasets?wait=true", json={"name": name, "dimensions": DIMENSIONS}
        )
        assert created.json()["status"] == "applied", created.text


def stream_all(
    client: httpx.AsyncClient, requests: int, until: asyncio.Event | None = None
) -> asyncio.Future[list[Expected]]:
    """Stream batches of 1,000 into every dataset at once."""
    return asyncio.gather(
        *(
            stream_writes(client, name, requests=requests, batch=1000, seed=i, until=until)
            for i, name in enumerate(DATASETS)
        )
    )


async def until_holding(log: Path, taken: int) -> None:
    """Wait until `taken` applier processes have each logged taking their partitions' leases."""
    for _ in range(600):
        if (await asyncio.to_thread(log.read_text)).count("holding") >= taken * 4:  # four partitions each
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"applier process {taken} never took its partitions")


async def test_sigkilled_appliers_lose_and_duplicate_nothing(
    distributed_settings: Settings, tmp_path: Path
) -> None:
    settings = distributed_settings
    log = tmp_path / "applier.log"
    process = applier_process(settings, log)
    kills = 0
    try:
        async with workers(settings, "projector"), serving(create_app(settings, "command-api")) as client:
            await create_datasets(client)

            streams = stream_all(client, requests=56)
            rng = random.Random(11)
            while not streams.done():
                # Kill only once the process applies (holds its partitions), at a random point after that.
                await until_holding(log, taken=kills + 1)
                await asyncio.wait([streams], timeout=rng.uniform(0.2, 1.5))
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                process = applier_process(settings, log)
            expected = await streams
            assert sum(e.written for e in expected) >= 100_000
            for name, want in zip(DATASETS, expected, strict=True):
                await until_stored(settings, name, want, timeout=120)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert kills >= 3, f"the stream ended after {kills} kills; the test needs more"


async def lease_holders(settings: Settings) -> dict[int, str]:
    """Who holds each command partition: an applier takes a partition's lease whenever it is assigned it."""
    engine = engine_for(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(WriterLeaseRow.partition, WriterLeaseRow.holder).where(
                    WriterLeaseRow.topic == Topics(settings.topic_prefix).commands
                )
            )
            return {partition: holder for partition, holder in rows}
    finally:
        await engine.dispose()


async def test_a_rebalance_between_two_appliers_loses_and_duplicates_nothing(
    distributed_settings: Settings,
) -> None:
    settings = distributed_settings
    partitions = set(range(settings.command_partitions))
    first_stop, second_stop = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(run_worker(settings, "applier", first_stop))
    second: asyncio.Task[None] | None = None
    rebalanced = asyncio.Event()
    try:
        async with workers(settings, "projector"), serving(create_app(settings, "command-api")) as client:
            await create_datasets(client)
            # The stream goes on until both rebalances have happened, so both fall in the middle of it.
            streams = stream_all(client, requests=30, until=rebalanced)

            async def one_holder() -> str | None:
                holders = await lease_holders(settings)
                return holders[0] if set(holders) == partitions and len(set(holders.values())) == 1 else None

            first_holder = await eventually(one_holder, timeout=60)

            # A second applier joins the group: the partitions are split between the two...
            second = asyncio.create_task(run_worker(settings, "applier", second_stop))

            async def split() -> dict[int, str] | None:
                holders = await lease_holders(settings)
                return holders if len(set(holders.values())) == 2 else None

            shared = await eventually(split, timeout=60)
            assert first_holder in shared.values()
            (second_holder,) = set(shared.values()) - {first_holder}

            # ...then the first leaves in the middle of the stream, and the second takes everything.
            first_stop.set()
            await first

            async def all_taken() -> bool | None:
                holders = await lease_holders(settings)
                return True if set(holders.values()) == {second_holder} else None

            await eventually(all_taken, timeout=60)
            assert not streams.done()
            rebalanced.set()
            expected = await streams
            for name, want in zip(DATASETS, expected, strict=True):
                await until_stored(settings, name, want, timeout=120)
    finally:
        rebalanced.set()
        first_stop.set()
        second_stop.set()
        await asyncio.gather(first, *([second] if second else []))
