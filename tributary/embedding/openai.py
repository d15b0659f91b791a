"""An OpenAI-compatible embeddings endpoint: `POST {base_url}/embeddings` with {"model", "input": [...]}.

Texts go in batches of `batch_size`, one request after another. The bearer key comes from the settings; it is
sent in a header and appears in no message, log line or repr. An endpoint that fails (unreachable, timeouts,
5xx) three times in a row is not asked for a few seconds (a circuit breaker): requests answer 503 at once
instead of each waiting out `embed_timeout_s`, and then one request probes it again.
"""

from __future__ import annotations

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, SecretStr, ValidationError

from events.commands import OpenAIEmbedderConfig
from tributary.embedding.base import EmbeddingFailed, checked
from tributary.resilience import CircuitBreaker

ERROR_EXCERPT = 300


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
        api_key: SecretStr | None,
        timeout: float,
        batch_size: int,
    ) -> None:
        self._config, self._dimensions, self._batch_size = config, dimensions, batch_size
        self._url = config.base_url.rstrip("/") + "/embeddings"
        self._where = httpx.URL(config.base_url).netloc.decode()
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout)
        self._breaker = CircuitBreaker(f"the embedding endpoint {self._where}")

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
        self._breaker.before()
        try:
            response = await self._client.post(self._url, json=body)
        except httpx.TimeoutException as exc:
            self._breaker.failed(exc)
            raise EmbeddingFailed(
                f"the embedding endpoint {self._where} did not answer within {self._client.timeout.read}s"
            ) from None
        except httpx.HTTPError as exc:
            self._breaker.failed(exc)
            raise EmbeddingFailed(
                f"cannot reach the embedding endpoint {self._where} ({type(exc).__name__})"
            ) from None
        if response.is_server_error:
            self._breaker.failed(EmbeddingFailed(f"answered {response.status_code}"))
        else:
            self._breaker.succeeded()
        if response.status_code != httpx.codes.OK:
            raise EmbeddingFailed(
                f"the embedding endpoint {self._where} answered {response.status_code}: {_reason(response)}"
            )
        try:
            answer = _Answer.model_validate_json(response.content)
        except ValidationError:
            raise EmbeddingFailed(
                f"the embedding endpoint {self._where} answered without an embeddings list"
            ) from None
        items = sorted(answer.data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(len(texts))):
            raise EmbeddingFailed(
                f"the embedding endpoint {self._where} answered {len(items)} embeddings for {len(texts)} texts"
            )
        widths = {len(item.embedding) for item in items}
        if widths != {self._dimensions}:
            raise EmbeddingFailed(
                f"the embedding endpoint {self._where} answered embeddings of {sorted(widths)} dimensions, "
                f"the dataset has {self._dimensions}"
            )
        vectors = np.asarray([item.embedding for item in items], dtype=np.float32)
        return checked(vectors, len(texts), self._dimensions)


def _reason(response: httpx.Response) -> str:
    """The endpoint's own error message (OpenAI's {"error": {"message"}} form, else the body's start)."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    return str(message)[:ERROR_EXCERPT] or response.reason_phrase
