"""Request bodies parsed by pydantic-core's JSON parser instead of the standard library's.

A batch of 1,000 384-d vectors is about 3 MB of JSON floats: `json.loads` took 116 ms of it on this machine,
`pydantic_core.from_json` 37 ms (bench/ingest.py measures the route end to end). The route class is the
FastAPI way to give routes a custom Request; validation still runs through the declared Pydantic models.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute

# A number literal that may overflow a double: an exponent of three digits or more, or 309 digits in a row.
_MAYBE_HUGE = re.compile(rb"[eE][+-]?[0-9]{3}|[0-9]{309}")


# Larger bodies are parsed on a worker thread: 30 MiB of JSON takes the parser long enough to stall every other
# request of the process meanwhile. Smaller ones are not worth the hop.
THREAD_ABOVE_BYTES = 256 * 1024


class _Request(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                if len(body) > THREAD_ABOVE_BYTES:
                    self._json = await asyncio.to_thread(_parse, body)
                else:
                    self._json = _parse(body)
            except ValueError as exc:
                # FastAPI turns this exception type into its usual 422 "JSON decode error", with the reason.
                raise json.JSONDecodeError(str(exc), body.decode(errors="replace"), 0) from exc
        return self._json


def _parse(body: bytes) -> Any:
    # NaN and Infinity are not JSON: refused by the parser.
    parsed = pydantic_core.from_json(body, allow_inf_nan=False)
    # A literal like 1e400 parses as infinity. Walking the whole body costs about as much as parsing it, so it is
    # walked only when the bytes hold such a literal (or a string that looks like one).
    if _MAYBE_HUGE.search(body) and not _finite(parsed):
        raise ValueError("numbers must be finite: a value overflows a double")
    return parsed


def _finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


class JSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(_Request(request.scope, request.receive))

        return route_handler
