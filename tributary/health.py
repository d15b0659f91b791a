"""Readiness: the checks of a process's dependencies and what they add up to. The HTTP routes that serve them
are entrypoints/health.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 2.0


@dataclass
class Readiness:
    # A failing required check takes the process out of rotation (503); a failing optional one (the Redis cache,
    # a query replica's database) degrades it.
    required: dict[str, Check] = field(default_factory=dict)
    optional: dict[str, Check] = field(default_factory=dict)

    async def report(self) -> tuple[bool, dict[str, object]]:
        """Whether the process is ready, and the body `/readyz` answers."""
        checks = {**self.required, **self.optional}
        results = await asyncio.gather(*(_run(check) for check in checks.values()))
        outcome = dict(zip(checks, results, strict=True))
        ready = all(outcome[name] for name in self.required)
        state = "not ready" if not ready else "ready" if all(outcome.values()) else "degraded"
        return ready, {"status": state, "checks": {k: "ok" if v else "failing" for k, v in outcome.items()}}


async def _run(check: Check) -> bool:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except Exception:
        return False


async def database_answers(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        await connection.execute(text("select 1"))
    return True
