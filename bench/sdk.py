"""What the Python SDK costs: ingest vectors/s and search QPS through `AsyncTributary` against raw HTTP (httpx)
sending the same requests, at the same concurrency, in one run against an embedded server it starts.

    python -m bench.sdk [--vectors 40000] [--batch 1000] [--dims 384] [--concurrency 4] [--seconds 10]
                        [--rounds 3]

Both sides send the same bodies: vectors packed as base64 float32 per record (packed in the timed loop on both
sides), an Idempotency-Key per write, and reads at `session` consistency with the last write's token, as the
SDK does by default. Raw HTTP decodes each answer's JSON; the SDK validates it into its models. Ingest counts
vectors acknowledged (202) per second; the server's applying, and then its HNSW build, finish before the next
phase starts. The sides alternate over `--rounds` rounds, each printed; the SDK's cost is the median of the
rounds' costs, since the machine's other load moves both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from tributary_client import AsyncTributary
from tributary_client._wire import pack

from bench.cluster import ADMIN_HEADERS, ADMIN_KEY, embedded_mode
from bench.search import indexed


def records(vectors: np.ndarray[Any, Any], prefix: str) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "vector": vector} for i, vector in enumerate(vectors)]


async def raw_ingest(http: httpx.AsyncClient, dataset: str, rows: list[dict[str, Any]], args: Any) -> str:
    """Batches of packed records, `concurrency` requests in flight; the last answer's consistency token."""
    queue = iter(range(0, len(rows), args.batch))
    tokens: list[str] = []

    async def sender() -> None:
        for start in queue:
            body = {
                "vectors": [
                    {"id": row["id"], "vector": pack(row["vector"])}
                    for row in rows[start : start + args.batch]
                ]
            }
            response = await http.post(
                f"/api/v1/datasets/{dataset}/vectors",
                json=body,
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            response.raise_for_status()
            tokens.append(response.json()["consistency_token"])

    await asyncio.gather(*(sender() for _ in range(args.concurrency)))
    return max(tokens, key=lambda token: tuple(int(part) for part in token.split(":")))


async def load(call: Callable[[], Awaitable[object]], concurrency: int, seconds: float) -> float:
    """Calls per second of `concurrency` workers calling one after another for `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


async def settled(sdk: AsyncTributary, dataset: str, expected: int) -> None:
    """Wait until the server has applied what was sent (a `strong` read waits for the end of the dataset's
    command log), so the next phase does not share the CPU with it."""
    if (count := await sdk.count(dataset, consistency="strong")) != expected:
        raise RuntimeError(f"{dataset} holds {count} vectors, not {expected}")


async def one_round(
    url: str, vectors: np.ndarray[Any, Any], queries: np.ndarray[Any, Any], round_: int, args: Any
) -> dict[str, float]:
    figures: dict[str, float] = {}
    limits = httpx.Limits(max_connections=args.concurrency)
    async with (
        AsyncTributary(url, ADMIN_KEY, timeout=120) as sdk,
        httpx.AsyncClient(base_url=url, headers=ADMIN_HEADERS, timeout=120, limits=limits) as http,
    ):
        raw_set, sdk_set = f"raw{round_}", f"sdk{round_}"
        for name in (raw_set, sdk_set):
            await sdk.create_dataset(name, args.dims)
        sides = ["raw", "sdk"] if round_ % 2 == 0 else ["sdk", "raw"]
        raw_token = ""
        for side in sides:
            started = time.perf_counter()
            if side == "raw":
                raw_token = await raw_ingest(http, raw_set, records(vectors, "r"), args)
            else:
                await sdk.upsert_many(
                    sdk_set, records(vectors, "s"), batch_size=args.batch, in_flight=args.concurrency
                )
            figures[f"{side} ingest"] = len(vectors) / (time.perf_counter() - started)
            await settled(sdk, raw_set if side == "raw" else sdk_set, len(vectors))
        await indexed(url)  # until then searches also scan the rows not yet in HNSW, and it builds meanwhile

        counter = iter(range(10**9))
        params = {"consistency": "session", "token": raw_token}

        async def raw_search() -> None:
            body = {"k": 10, "vector": pack(queries[next(counter) % len(queries)])}
            response = await http.post(f"/api/v1/datasets/{raw_set}/search", json=body, params=params)
            response.raise_for_status()
            response.json()

        async def sdk_search() -> None:
            await sdk.search(sdk_set, queries[next(counter) % len(queries)], k=10)

        for side in sides:
            call = raw_search if side == "raw" else sdk_search
            figures[f"{side} search"] = await load(call, args.concurrency, args.seconds)
    return figures


async def run(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.vectors, args.dims)).astype(np.float32)
    queries = rng.standard_normal((256, args.dims)).astype(np.float32)
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with embedded_mode(Path(tmp)) as (url, _, _):
            print(
                f"embedded mode, {args.vectors} x {args.dims}-d vectors in batches of {args.batch}, "
                f"{args.concurrency} concurrent requests, {args.seconds:g} s of search per side, "
                f"{args.rounds} rounds"
            )
            for round_ in range(args.rounds):
                figures = await one_round(url, vectors, queries, round_, args)
                print(f"round {round_ + 1}: " + ", ".join(f"{n} {v:,.0f}" for n, v in figures.items()))
                rounds.append(figures)
    for what, unit in (("ingest", "vectors/s"), ("search", "QPS")):
        raw = statistics.median(r[f"raw {what}"] for r in rounds)
        sdk = statistics.median(r[f"sdk {what}"] for r in rounds)
        # The cost within each round (both sides ran back to back under the same load), then its median.
        cost = statistics.median(1 - r[f"sdk {what}"] / r[f"raw {what}"] for r in rounds)
        print(
            f"{what:7} raw HTTP {raw:>8,.0f} {unit:9}  SDK {sdk:>8,.0f} {unit:9}  SDK cost {cost:+.1%} (median of rounds)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
