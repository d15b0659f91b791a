"""Ingest throughput and latency through the HTTP command API, in Kafka mode and in embedded mode.

    eval "$(bash deploy/local/services.sh env)"    # Kafka mode needs the local services up
    python -m bench.ingest [--mode kafka|embedded|both] [--requests 60] [--batch 1000] [--dims 384]
                           [--rate 10000] [--concurrency 4] [--packed]

Each mode starts real `tributary serve` processes (Kafka: command-api, query-api, applier, projector;
embedded: one process) and prints:
- accepted vectors/s: vectors in 202 answers / time from the first request to the last 202;
- applied vectors/s: vectors / time from the first request until the last operation reads `applied`
  (committed to DeepLake; in Kafka mode also projected);
- acknowledgement-to-applied latency p50/p99, from a second run paced at --rate vectors/s, polling each
  operation every 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from bench.cluster import ADMIN_HEADERS, Processes, embedded_mode, kafka_mode

POLL_S = 0.01


class Bodies:
    """Request bodies encoded once (JSON float lists are slow to encode in Python), with fresh ids each."""

    def __init__(self, batch: int, dims: int, packed: bool) -> None:
        vectors = np.random.default_rng(0).standard_normal((batch, dims)).astype(np.float32)
        if packed:
            self._rows = [f'"{base64.b64encode(row.astype("<f4").tobytes()).decode()}"' for row in vectors]
        else:
            self._rows = [json.dumps([round(float(x), 6) for x in row]) for row in vectors]

    def next(self) -> bytes:
        prefix = uuid.uuid4().hex[:12]
        records = ",".join(
            f'{{"id":"{prefix}-{i}","vector":{row},"metadata":{{"i":{i}}}}}'
            for i, row in enumerate(self._rows)
        )
        return f'{{"vectors":[{records}]}}'.encode()


async def applied_at(queries: httpx.AsyncClient, operation: str, timeout: float = 600) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        answer = await queries.get(f"/api/v1/operations/{operation}")
        if answer.status_code == 200 and answer.json()["status"] != "accepted":
            if answer.json()["status"] != "applied":
                raise RuntimeError(f"operation {operation} was {answer.json()}")
            return time.perf_counter()
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"operation {operation} was not applied within {timeout}s")


async def throughput(
    commands: httpx.AsyncClient, queries: httpx.AsyncClient, args: argparse.Namespace
) -> None:
    bodies = Bodies(args.batch, args.dims, args.packed)
    pending = [bodies.next() for _ in range(args.requests)]
    operations: list[str] = []
    start = time.perf_counter()

    async def sender() -> None:
        while pending:
            body = pending.pop()
            answer = await commands.post(
                "/api/v1/datasets/bench/vectors", content=body, headers={"content-type": "application/json"}
            )
            answer.raise_for_status()
            operations.append(answer.json()["operation_id"])

    await asyncio.gather(*(sender() for _ in range(args.concurrency)))
    accepted = time.perf_counter()
    # One dataset is one partition, applied in order: the last acknowledged operation is the last applied.
    done = max(await asyncio.gather(*(applied_at(queries, op) for op in operations[-args.concurrency :])))
    vectors = args.requests * args.batch
    print(
        f"  accepted: {vectors / (accepted - start):>9,.0f} vectors/s ({args.requests} requests of {args.batch})"
    )
    print(f"  applied:  {vectors / (done - start):>9,.0f} vectors/s")


async def latency(commands: httpx.AsyncClient, queries: httpx.AsyncClient, args: argparse.Namespace) -> None:
    bodies = Bodies(args.batch, args.dims, args.packed)
    interval = args.batch / args.rate
    samples: list[float] = []

    async def one(body: bytes) -> None:
        answer = await commands.post(
            "/api/v1/datasets/bench/vectors", content=body, headers={"content-type": "application/json"}
        )
        answer.raise_for_status()
        acknowledged = time.perf_counter()
        samples.append(await applied_at(queries, answer.json()["operation_id"]) - acknowledged)

    tasks = []
    start = time.perf_counter()
    for n in range(args.requests):
        body = bodies.next()
        await asyncio.sleep(max(0.0, start + n * interval - time.perf_counter()))
        tasks.append(asyncio.create_task(one(body)))
    await asyncio.gather(*tasks)
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"  at {args.rate:,} vectors/s: ack-to-applied p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")


async def drain(
    commands: httpx.AsyncClient, queries: httpx.AsyncClient, running: Processes, args: argparse.Namespace
) -> None:
    """The applier alone: a backlog is published while it is stopped, then it is started and timed from its
    first applied operation to the last, so neither the command API nor its start-up is in the figure."""
    applier = running.stop("applier")
    bodies = Bodies(args.batch, args.dims, args.packed)
    operations = []
    for _ in range(args.requests):
        answer = await commands.post(
            "/api/v1/datasets/bench/vectors",
            content=bodies.next(),
            headers={"content-type": "application/json"},
        )
        answer.raise_for_status()
        operations.append(answer.json()["operation_id"])
    running.start("applier", *applier)
    first, last = await asyncio.gather(
        applied_at(queries, operations[0]), applied_at(queries, operations[-1])
    )
    vectors = (args.requests - 1) * args.batch
    print(f"  applier draining a backlog: {vectors / (last - first):>9,.0f} vectors/s")


async def run(mode: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        starter = kafka_mode if mode == "kafka" else embedded_mode
        async with (
            starter(Path(tmp)) as (command_url, query_url, running),
            httpx.AsyncClient(base_url=command_url, timeout=120, headers=ADMIN_HEADERS) as commands,
            httpx.AsyncClient(base_url=query_url, timeout=120, headers=ADMIN_HEADERS) as queries,
        ):
            created = await commands.post(
                "/api/v1/datasets?wait=true", json={"name": "bench", "dimensions": args.dims}
            )
            if created.json().get("status") != "applied":
                raise RuntimeError(f"could not create the dataset: {created.text}")
            form = "packed base64" if args.packed else "JSON lists"
            print(
                f"{mode} mode, {args.dims}-d vectors as {form}, batches of {args.batch}, "
                f"{args.concurrency} concurrent clients"
            )
            await throughput(commands, queries, args)
            await latency(commands, queries, args)
            if mode == "kafka":
                await drain(commands, queries, running, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["kafka", "embedded", "both"], default="both")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--rate", type=int, default=10_000, help="vectors/s of the latency run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--packed", action="store_true", help="send vectors as base64 float32, not JSON lists"
    )
    args = parser.parse_args()
    for mode in ("kafka", "embedded") if args.mode == "both" else (args.mode,):
        asyncio.run(run(mode, args))


if __name__ == "__main__":
    main()
