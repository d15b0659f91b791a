"""What every embedder offers."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt


class EmbeddingFailed(Exception):
    """The texts could not be embedded (model not installed, endpoint down or answering wrongly). The message
    is safe to show to a client: it never carries a key."""


class Embedder(Protocol):
    """Texts in, one float32 row of `dimensions` per text out. `embed` never blocks the event loop: model work
    runs in a worker thread, endpoint calls are asynchronous."""

    @property
    def dimensions(self) -> int: ...

    async def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Raises EmbeddingFailed with the reason."""
        ...

    async def aclose(self) -> None: ...


def checked(vectors: npt.NDArray[np.float32], rows: int, dimensions: int) -> npt.NDArray[np.float32]:
    """`vectors` when they are `rows` finite rows of `dimensions`; otherwise EmbeddingFailed saying what is wrong."""
    if vectors.shape != (rows, dimensions):
        raise EmbeddingFailed(
            f"expected {rows} embeddings of {dimensions} dimensions, got an array of shape {vectors.shape}"
        )
    if not np.isfinite(vectors).all():
        raise EmbeddingFailed("the embeddings contain NaN or infinity")
    return vectors


class ImagesEmbedder(Protocol):
    """Images (PNG or JPEG bytes, checked before) in, one float32 row of `dimensions` per image out; never blocks
    the event loop."""

    @property
    def dimensions(self) -> int: ...

    async def embed_images(self, images: list[bytes]) -> npt.NDArray[np.float32]:
        """Raises EmbeddingFailed with the reason."""
        ...

    async def embed_texts(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Query texts into the images' space (a CLIP-style model); raises EmbeddingFailed with the reason."""
        ...

    async def aclose(self) -> None: ...
