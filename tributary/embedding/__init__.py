"""Server-side embedding of text: the embedder a dataset names turns record (and query) text into vectors."""

from tributary.embedding.base import Embedder, EmbeddingFailed
from tributary.embedding.registry import Embedders

__all__ = ["Embedder", "Embedders", "EmbeddingFailed"]
