"""The embedders of this process: one per configuration and width, created on first use and shared by every
request (the command API embeds record text with it, the query side query text)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from events.commands import LocalEmbedderConfig, OpenAIEmbedderConfig, embedder_mismatch
from tributary.embedding import local
from tributary.embedding.base import Embedder, EmbeddingFailed
from tributary.embedding.openai import OpenAIEmbedder
from tributary.metrics import EMBED_FAILURES, EMBED_SECONDS
from tributary.resilience import Unavailable
from tributary.settings import EmbeddingEndpoint, Settings


class Embedders:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._embedders: dict[tuple[LocalEmbedderConfig | OpenAIEmbedderConfig, int], Embedder] = {}

    def unavailable(self, config: LocalEmbedderConfig | OpenAIEmbedderConfig) -> str | None:
        """Why this server cannot embed with `config` (a missing extra, an endpoint the operator did not
        configure), or None when it can."""
        match config:
            case LocalEmbedderConfig():
                return local.missing(config.model, self._settings.local_embedder_runtime)
            case OpenAIEmbedderConfig():
                found = self._endpoint(config)
                return found if isinstance(found, str) else None

    def get(self, config: LocalEmbedderConfig | OpenAIEmbedderConfig, dimensions: int) -> Embedder:
        """The embedder of a dataset with this configuration and `dimensions`."""
        if reason := embedder_mismatch(config, dimensions):
            raise EmbeddingFailed(reason)
        key = (config, dimensions)
        if key not in self._embedders:
            self._embedders[key] = Measured(self._create(config, dimensions), config.kind)
        return self._embedders[key]

    async def embed(
        self, config: LocalEmbedderConfig | OpenAIEmbedderConfig, dimensions: int, texts: list[str]
    ) -> npt.NDArray[np.float32]:
        """The texts embedded for a request: a failure is the embedder being unavailable (a 503 naming why),
        raised before anything is published or searched."""
        try:
            return await self.get(config, dimensions).embed(texts)
        except EmbeddingFailed as exc:
            raise Unavailable("the embedder", str(exc), message=f"embedding failed: {exc}") from exc

    def _create(self, config: LocalEmbedderConfig | OpenAIEmbedderConfig, dimensions: int) -> Embedder:
        match config:
            case LocalEmbedderConfig():
                return local.LocalEmbedder(config, self._settings.local_embedder_runtime)
            case OpenAIEmbedderConfig():
                found = self._endpoint(config)
                if isinstance(found, str):
                    raise EmbeddingFailed(found)
                name, endpoint = found
                return OpenAIEmbedder(
                    config,
                    dimensions,
                    name=name,
                    endpoint=endpoint,
                    timeout=self._settings.embed_timeout_s,
                    batch_size=self._settings.embed_batch_size,
                )

    def _endpoint(self, config: OpenAIEmbedderConfig) -> tuple[str, EmbeddingEndpoint] | str:
        """The name and configuration of the endpoint a dataset names (a dataset from before named endpoints:
        the one with its URL), or why there is none."""
        endpoints = self._settings.embedding_endpoints
        known = ", ".join(sorted(endpoints)) or "none"
        if config.endpoint is not None:
            if config.endpoint in endpoints:
                return config.endpoint, endpoints[config.endpoint]
            return (
                f"no embedding endpoint {config.endpoint!r} is configured on this server "
                f"(TRIBUTARY_EMBEDDING_ENDPOINTS; configured: {known})"
            )
        url = (config.base_url or "").rstrip("/")
        for name, endpoint in endpoints.items():
            if endpoint.url.rstrip("/") == url:
                return name, endpoint
        return (
            "this dataset gives a URL instead of naming an embedding endpoint, and no configured endpoint "
            f"has that URL (TRIBUTARY_EMBEDDING_ENDPOINTS; configured: {known})"
        )

    async def aclose(self) -> None:
        embedders, self._embedders = list(self._embedders.values()), {}
        for embedder in embedders:
            await embedder.aclose()


class Measured:
    """An embedder whose calls are timed and whose failures are counted (tributary/metrics.py), by its kind."""

    def __init__(self, embedder: Embedder, kind: str) -> None:
        self._embedder = embedder
        self._seconds, self._failures = EMBED_SECONDS.labels(kind), EMBED_FAILURES.labels(kind)

    @property
    def dimensions(self) -> int:
        return self._embedder.dimensions

    async def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        with self._seconds.time():
            try:
                return await self._embedder.embed(texts)
            except EmbeddingFailed:
                self._failures.inc()
                raise

    async def aclose(self) -> None:
        await self._embedder.aclose()
