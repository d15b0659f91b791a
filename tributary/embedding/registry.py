"""The embedders of this process: one per configuration and width, created on first use and shared by every
request (the command API embeds record text with it, the query side query text)."""

from __future__ import annotations

from events.commands import LocalEmbedderConfig, OpenAIEmbedderConfig, embedder_mismatch
from tributary.embedding.base import Embedder, EmbeddingFailed
from tributary.embedding.local import LocalEmbedder
from tributary.embedding.openai import OpenAIEmbedder
from tributary.settings import Settings


class Embedders:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._embedders: dict[tuple[LocalEmbedderConfig | OpenAIEmbedderConfig, int], Embedder] = {}

    def get(self, config: LocalEmbedderConfig | OpenAIEmbedderConfig, dimensions: int) -> Embedder:
        """The embedder of a dataset with this configuration and `dimensions`."""
        if reason := embedder_mismatch(config, dimensions):
            raise EmbeddingFailed(reason)
        key = (config, dimensions)
        if key not in self._embedders:
            self._embedders[key] = self._create(config, dimensions)
        return self._embedders[key]

    def _create(self, config: LocalEmbedderConfig | OpenAIEmbedderConfig, dimensions: int) -> Embedder:
        match config:
            case LocalEmbedderConfig():
                return LocalEmbedder(config, self._settings.local_embedder_runtime)
            case OpenAIEmbedderConfig():
                return OpenAIEmbedder(
                    config,
                    dimensions,
                    api_key=self._settings.openai_api_key,
                    timeout=self._settings.embed_timeout_s,
                    batch_size=self._settings.embed_batch_size,
                )

    async def aclose(self) -> None:
        embedders, self._embedders = list(self._embedders.values()), {}
        for embedder in embedders:
            await embedder.aclose()
