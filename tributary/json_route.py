"""Request bodies parsed by pydantic-core's JSON parser instead of the standard library's, off the event loop
when they are large, and refused when they hold a number that is not finite.

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
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

# What may stand for a number that is not finite: NaN, Infinity, or a literal that overflows a double (1e400: an
# exponent of three digits, or 309 digits in a row). Only a body holding one (or a string that looks like one)
# is walked: walking costs about as much as parsing.
_MAYBE_NOT_FINITE = re.compile(rb"NaN|Infinity|[eE][+-]?[0-9]{3}|[0-9]{309}")
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

    async def refuse_non_finite(self) -> None:
        """A RequestValidationError at the first number of the body that is not finite: it has no JSON form,
        and a number that no comparison holds for would only mislead (as `null`, it was a search cache key)."""
        body = await self.body()
        if not _MAYBE_NOT_FINITE.search(body):
            return
        try:
            parsed = await self.json()
        except json.JSONDecodeError:
            return  # the route reports it
        if (path := _first_non_finite(parsed)) is not None:
            problem = {
                "type": "finite_number",
                "loc": ("body", *path),
                "msg": "numbers must be finite (no NaN, infinity, or literal beyond the range of a double)",
                "input": None,
            }
            raise RequestValidationError([problem])


def _parse(body: bytes) -> Any:
    return pydantic_core.from_json(body)


def _first_non_finite(value: Any) -> tuple[str | int, ...] | None:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return path
        # Children go on the stack last first, so the first one in the document is found first.
        if isinstance(item, dict):
            stack.extend((child, (*path, key)) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((item[index], (*path, index)) for index in reversed(range(len(item))))
    return None


class JSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            custom = _Request(request.scope, request.receive)
            await custom.refuse_non_finite()
            return await handler(custom)

        return route_handler
