"""The Prometheus deploy/local/services.sh runs, from a test: what it scrapes, and what its HTTP API answers."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx

from tests import services
from tests.helpers import eventually


@contextlib.contextmanager
def scraped_by(prometheus: services.Prometheus, run: str, ports: dict[str, int]) -> Iterator[None]:
    """Prometheus scrapes these roles (labelled with their role and this run) until the block ends."""
    listing = prometheus.targets / f"{run}.json"
    groups = [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"role": role, "run": run}}
        for role, port in ports.items()
    ]
    listing.write_text(json.dumps(groups))
    try:
        yield
    finally:
        listing.unlink(missing_ok=True)


async def query(prometheus: services.Prometheus, promql: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = (await client.get(f"{prometheus.url}/api/v1/query", params={"query": promql})).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def scalar(prometheus: services.Prometheus, promql: str) -> float:
    """The value of a one-series `promql` now (NaN when it has none)."""
    result = await query(prometheus, promql)
    return float(result[0]["value"][1]) if result else math.nan


async def value_when(prometheus: services.Prometheus, promql: str, wanted: float) -> float:
    """The scalar value of `promql` once it is at least `wanted` (generous deadline: a scrape a second)."""

    async def reached() -> float | None:
        found = await scalar(prometheus, promql)
        return found if found >= wanted else None

    try:
        return await eventually(reached, timeout=90, every=0.5)
    except AssertionError:
        raise AssertionError(f"{promql} never reached {wanted}: {await query(prometheus, promql)}") from None
