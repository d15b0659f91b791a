"""The embedders of this process: one per configuration and width, created on first use and shared by every
request (the command API embeds record text and images with it, the query side query text and images); and the
loader of images given by URL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import numpy.typing as npt

from events.commands import (
    AnyEmbedder,
    ImageEmbedder,
    LocalEmbedderConfig,
    LocalImageEmbedderConfig,
    OpenAIEmbedderConfig,
    OpenAIImageEmbedderConfig,
    TextEmbedder,
    embedder_mismatch,
)
from tributary.embedding import local
from tributary.embedding.base import Embedder, EmbeddingFailed, ImagesEmbedder
from tributary.embedding.images import ImageLoader
from tributary.embedding.local_image import LocalImageEmbedder
from tributary.embedding.openai import OpenAIEmbedder, OpenAIImageEmbedder
from tributary.metrics import EMBED_FAILURES, EMBED_SECONDS
from tributary.resilience import Unavailable
from tributary.settings import EmbeddingEndpoint, Settings


class Embedders:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._embedders: dict[tuple[TextEmbedder, int], Embedder] = {}
        self._image_embedders: dict[tuple[ImageEmbedder, int], ImagesEmbedder] = {}
        self.images = ImageLoader(settings)

    def unavailable(self, config: AnyEmbedder) -> str | None:
        """Why this server cannot embed with `config` (a missing extra, an endpoint the operator did not
        configure), or None when it can."""
        match config:
            case LocalEmbedderConfig():
                return local.missing(config.model, self._settings.local_embedder_runtime)
            case OpenAIEmbedderConfig() | OpenAIImageEmbedderConfig():
                found = self._endpoint(config)
                return found if isinstance(found, str) else None
            case LocalImageEmbedderConfig():
                return None

    def get(self, config: TextEmbedder, dimensions: int) -> Embedder:
        """The embedder of a dataset with this configuration and `dimensions`."""
        if reason := embedder_mismatch(config, dimensions):
            raise EmbeddingFailed(reason)
        key = (config, dimensions)
        if key not in self._embedders:
            self._embedders[key] = Measured(self._create(config, dimensions), config.kind)
        return self._embedders[key]

    async def embed(self, config: TextEmbedder, dimensions: int, texts: list[str]) -> npt.NDArray[np.float32]:
        """The texts embedded for a request: a failure is the embedder being unavailable (a 503 naming why),
        raised before anything is published or searched."""
        try:
            return await self.get(config, dimensions).embed(texts)
        except EmbeddingFailed as exc:
            raise Unavailable("the embedder", str(exc), message=f"embedding failed: {exc}") from exc

    async def embed_images(
        self, config: ImageEmbedder, dimensions: int, images: list[bytes]
    ) -> npt.NDArray[np.float32]:
        """The images (checked already: tributary/embedding/images.py) embedded for a request; a failure is a
        503 as for texts."""
        return await self._by_image_embedder(
            config, dimensions, lambda embedder: embedder.embed_images(images)
        )

    async def embed_image_texts(
        self, config: OpenAIImageEmbedderConfig, dimensions: int, texts: list[str]
    ) -> npt.NDArray[np.float32]:
        """Query texts embedded by a CLIP-style image endpoint, into its images' space; a failure is a 503."""
        return await self._by_image_embedder(config, dimensions, lambda embedder: embedder.embed_texts(texts))

    async def _by_image_embedder(
        self,
        config: ImageEmbedder,
        dimensions: int,
        call: Callable[[ImagesEmbedder], Awaitable[npt.NDArray[np.float32]]],
    ) -> npt.NDArray[np.float32]:
        try:
            embedder = self._image_embedder(config, dimensions)
            with EMBED_SECONDS.labels(config.kind).time():
                return await call(embedder)
        except EmbeddingFailed as exc:
            EMBED_FAILURES.labels(config.kind).inc()
            raise Unavailable("the embedder", str(exc), message=f"embedding failed: {exc}") from exc

    def _image_embedder(self, config: ImageEmbedder, dimensions: int) -> ImagesEmbedder:
        if reason := embedder_mismatch(config, dimensions):
            raise EmbeddingFailed(reason)
        key = (config, dimensions)
        if key not in self._image_embedders:
            match config:
                case LocalImageEmbedderConfig():
                    self._image_embedders[key] = LocalImageEmbedder(config)
                case OpenAIImageEmbedderConfig():
                    self._image_embedders[key] = OpenAIImageEmbedder(self._openai(config, dimensions))
        return self._image_embedders[key]

    def _openai(
        self, config: OpenAIEmbedderConfig | OpenAIImageEmbedderConfig, dimensions: int
    ) -> OpenAIEmbedder:
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

    def _create(self, config: TextEmbedder, dimensions: int) -> Embedder:
        match config:
            case LocalEmbedderConfig():
                return local.LocalEmbedder(config, self._settings.local_embedder_runtime)
            case OpenAIEmbedderConfig():
                return self._openai(config, dimensions)

    def _endpoint(
        self, config: OpenAIEmbedderConfig | OpenAIImageEmbedderConfig
    ) -> tuple[str, EmbeddingEndpoint] | str:
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
        assert isinstance(config, OpenAIEmbedderConfig)  # an image endpoint always has a name
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
        image_embedders, self._image_embedders = list(self._image_embedders.values()), {}
        for image_embedder in image_embedders:
            await image_embedder.aclose()
        await self.images.aclose()


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
