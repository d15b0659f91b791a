"""An OpenAI-compatible embeddings endpoint: `POST {url}/embeddings` with {"model", "input": [...]}.

Only endpoints the operator configured are called (`Settings.embedding_endpoints`), each with its own key; the
key is sent in a header and appears in no message, log line or repr. Each call follows tributary/outbound.py's
rule (no redirects; no internal address unless the operator allowed it for that endpoint). What an endpoint answers on an error is logged, never passed on to the client: the client learns the
endpoint's name and the status code. An endpoint that fails (unreachable, timeouts, 5xx) three times in a row
is not asked for a few seconds (a circuit breaker): requests answer 503 at once instead of each waiting out
`embed_timeout_s`, and then one request probes it again.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ValidationError

from events.commands import OpenAIEmbedderConfig, OpenAIImageEmbedderConfig
from tributary.embedding.base import EmbeddingFailed, checked
from tributary.outbound import Refused, check_address
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
        config: OpenAIEmbedderConfig | OpenAIImageEmbedderConfig,
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
        self._endpoint = endpoint
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
        return await self.embed_inputs(texts)

    async def embed_inputs(self, inputs: Sequence[object]) -> npt.NDArray[np.float32]:
        """The embeddings of `inputs` as the endpoint takes them: texts, or `{"image": <base64>}` objects."""
        batches = [inputs[i : i + self._batch_size] for i in range(0, len(inputs), self._batch_size)]
        parts = [await self._embed_batch(batch) for batch in batches]
        if not parts:
            return np.empty((0, self._dimensions), dtype=np.float32)
        return np.concatenate(parts)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _embed_batch(self, texts: Sequence[object]) -> npt.NDArray[np.float32]:
        body: dict[str, object] = {"model": self._config.model, "input": list(texts)}
        if self._config.dimensions is not None:
            body["dimensions"] = self._config.dimensions
        try:
            await check_address(self._host, self._endpoint, self._where)
        except Refused as exc:
            raise EmbeddingFailed(str(exc)) from None
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


class OpenAIImageEmbedder:
    """Images through an OpenAI-compatible endpoint of a CLIP-style model: each image sent as
    `{"image": <base64>}` in `input` (the form Jina's and several CLIP servers' embeddings APIs take), the
    answer read as for texts; and query texts as `{"text": ...}`, which such a model embeds into the same
    space as its images."""

    def __init__(self, endpoint: OpenAIEmbedder) -> None:
        self._endpoint = endpoint

    def __repr__(self) -> str:
        return f"OpenAIImageEmbedder({self._endpoint!r})"

    @property
    def dimensions(self) -> int:
        return self._endpoint.dimensions

    async def embed_images(self, images: list[bytes]) -> npt.NDArray[np.float32]:
        inputs = [{"image": base64.b64encode(image).decode("ascii")} for image in images]
        return await self._endpoint.embed_inputs(inputs)

    async def embed_texts(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return await self._endpoint.embed_inputs([{"text": text} for text in texts])

    async def aclose(self) -> None:
        await self._endpoint.aclose()
