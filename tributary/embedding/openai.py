"""An OpenAI-compatible embeddings endpoint: `POST {url}/embeddings` with {"model", "input": [...]}.

Only endpoints the operator configured are called (`Settings.embedding_endpoints`), each with its own key; the
key is sent in a header and appears in no message, log line or repr. Before each request the endpoint's host is
resolved, and a loopback, link-local or private address is refused unless the operator allowed it for that
endpoint. What an endpoint answers on an error is logged, never passed on to the client: the client learns the
endpoint's name and the status code. An endpoint that fails (unreachable, timeouts, 5xx) three times in a row
is not asked for a few seconds (a circuit breaker): requests answer 503 at once instead of each waiting out
`embed_timeout_s`, and then one request probes it again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ValidationError

from events.commands import OpenAIEmbedderConfig
from tributary.embedding.base import EmbeddingFailed, checked
from tributary.resilience import CircuitBreaker
from tributary.settings import EmbeddingEndpoint

log = logging.getLogger(__name__)

LOGGED_EXCERPT = 500


class _Embedding(BaseModel):
    embedding: list[float]
    index: int


class _Answer(BaseModel):
    data: list[_Embedding]


class OpenAIEmbedder:
    def __init__(
        self,
        config: OpenAIEmbedderConfig,
        dimensions: int,
        *,
        name: str,
        endpoint: EmbeddingEndpoint,
        timeout: float,
        batch_size: int,
    ) -> None:
        self._config, self._dimensions, self._batch_size = config, dimensions, batch_size
        self._url = endpoint.url.rstrip("/") + "/embeddings"
        self._host = httpx.URL(endpoint.url).host
        self._allow_private = endpoint.allow_private
        self._where = f"the embedding endpoint {name!r}"
        headers = {"Authorization": f"Bearer {endpoint.api_key.get_secret_value()}"}
        # No redirects: a redirect could lead the key to an address nobody checked.
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout, follow_redirects=False)
        self._breaker = CircuitBreaker(self._where)

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self._config.model!r}, url={self._url!r})"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        batches = [texts[i : i + self._batch_size] for i in range(0, len(texts), self._batch_size)]
        parts = [await self._embed_batch(batch) for batch in batches]
        if not parts:
            return np.empty((0, self._dimensions), dtype=np.float32)
        return np.concatenate(parts)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _embed_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        body: dict[str, object] = {"model": self._config.model, "input": texts}
        if self._config.dimensions is not None:
            body["dimensions"] = self._config.dimensions
        await self._check_address()
        self._breaker.before()
        try:
            response = await self._client.post(self._url, json=body)
        except httpx.TimeoutException as exc:
            self._breaker.failed(exc)
            raise EmbeddingFailed(
                f"{self._where} did not answer within {self._client.timeout.read}s"
            ) from None
        except (httpx.HTTPError, OSError) as exc:
            self._breaker.failed(exc)
            raise EmbeddingFailed(f"cannot reach {self._where} ({type(exc).__name__})") from None
        if response.is_server_error:
            self._breaker.failed(EmbeddingFailed(f"answered {response.status_code}"))
        else:
            self._breaker.succeeded()
        if response.status_code != httpx.codes.OK:
            log.warning(
                "%s answered %s: %s", self._where, response.status_code, response.text[:LOGGED_EXCERPT]
            )
            raise EmbeddingFailed(f"{self._where} answered {response.status_code}")
        try:
            answer = _Answer.model_validate_json(response.content)
        except ValidationError:
            raise EmbeddingFailed(f"{self._where} answered without an embeddings list") from None
        items = sorted(answer.data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(len(texts))):
            raise EmbeddingFailed(f"{self._where} answered {len(items)} embeddings for {len(texts)} texts")
        widths = {len(item.embedding) for item in items}
        if widths != {self._dimensions}:
            raise EmbeddingFailed(
                f"{self._where} answered embeddings of {sorted(widths)} dimensions, "
                f"the dataset has {self._dimensions}"
            )
        vectors = np.asarray([item.embedding for item in items], dtype=np.float32)
        return checked(vectors, len(texts), self._dimensions)

    async def _check_address(self) -> None:
        """Refuse a host that resolves to an internal address unless the operator allowed it. (The connection
        resolves the name again: a name whose answer changes between the two is not caught.)"""
        if self._allow_private:
            return
        try:
            found = await asyncio.get_running_loop().getaddrinfo(self._host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise EmbeddingFailed(f"cannot resolve {self._where} ({type(exc).__name__})") from None
        for *_, address in found:
            ip = ipaddress.ip_address(str(address[0]).split("%")[0])
            if not ip.is_global or ip.is_multicast:
                raise EmbeddingFailed(
                    f"{self._where} resolves to a loopback, link-local or private address; "
                    "the operator allows that with its allow_private setting"
                )
