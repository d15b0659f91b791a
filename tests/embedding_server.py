"""A small OpenAI-compatible embeddings server on an ephemeral loopback port, for tests that need a real HTTP
round trip. It embeds each text as a fixed pseudo-random vector derived from the text, answers in reverse
order (clients must sort by `index`), records each request, and can be told to fail, stall or change width."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def vector_of(text: str, width: int) -> npt.NDArray[np.float32]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(width).astype(np.float32)


def _text_of(item: Any) -> str:
    """A text input as it is; another input (an image object, `{"image": <base64>}`) by its JSON."""
    return item if isinstance(item, str) else json.dumps(item, sort_keys=True)


@dataclass
class Seen:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class EmbeddingsServer:
    width: int = 4
    status: int = 200
    delay_s: float = 0.0
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._app = FastAPI()
        self._app.post("/v1/embeddings")(self._embeddings)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _embeddings(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(Seen(dict(request.headers), body))
        await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return JSONResponse({"error": {"message": "the model is overloaded"}}, status_code=self.status)
        width = body.get("dimensions", self.width)
        data = [
            {"object": "embedding", "index": i, "embedding": vector_of(_text_of(item), width).tolist()}
            for i, item in enumerate(body["input"])
        ]
        return JSONResponse({"object": "list", "data": data[::-1], "model": body["model"]})

    async def __aenter__(self) -> EmbeddingsServer:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        # Listening already, so a client that connects before the server runs waits in the backlog.
        sock.listen()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task
