"""Request bodies parsed by pydantic-core's JSON parser instead of the standard library's, off the event loop
when they are large.

A batch of 1,000 384-d vectors is about 3 MB of JSON floats: `json.loads` took 116 ms of it on this machine,
`pydantic_core.from_json` 37 ms (bench/ingest.py measures the route end to end). The route class is the
FastAPI way to give routes a custom Request; validation still runs through the declared Pydantic models, which
also refuse numbers that are not finite where they stand (NaN, Infinity, or 1e400, which parses as infinity):
each float field is a `FiniteFloat` or bounded, metadata and filter values are checked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute

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
                # FastAPI turns this exception type into its usual 422 "JSON decode error".
                raise json.JSONDecodeError(str(exc), body.decode(errors="replace"), 0) from exc
        return self._json


def _parse(body: bytes) -> Any:
    return pydantic_core.from_json(body)


class JSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(_Request(request.scope, request.receive))

        return route_handler
