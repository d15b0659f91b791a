"""`pixels-v1`: an image embedder that runs here with nothing downloaded, for tests and offline use.

It is not a semantic model: it knows nothing of what an image shows, only how its colours and edges are laid
out. The image (Pillow: PNG or JPEG) is reduced to two blocks of features:
- colour: the RGB image box-averaged to 8 x 8, each channel in [0, 1], centred on 0.5 (192 values);
- edges: the grey image at 16 x 16, the magnitude of its horizontal and vertical differences box-averaged to
  8 x 8, centred on its mean (64 values);
each block scaled to unit length, the edge block weighted by half, and the whole L2-normalised (cosine).

So the same image (or a resized or re-encoded copy of it) comes back at a cosine near 1, and images of similar
layout and colour come near; that is what a test or an offline deployment needs to exercise image search end to
end with deterministic vectors. A semantic search needs a CLIP-style model behind the `openai-image` embedder.
Decoding and reduction run in a worker thread, so the event loop never waits.
"""

from __future__ import annotations

import asyncio
import io

import numpy as np
import numpy.typing as npt
from PIL import Image

from events.commands import LOCAL_IMAGE_MODEL_DIMENSIONS, LocalImageEmbedderConfig
from tributary.embedding.base import EmbeddingFailed, checked

GRID = 8
EDGE_WEIGHT = 0.5


class LocalImageEmbedder:
    def __init__(self, config: LocalImageEmbedderConfig) -> None:
        self._dimensions = LOCAL_IMAGE_MODEL_DIMENSIONS[config.model]

    def __repr__(self) -> str:
        return "LocalImageEmbedder(model='pixels-v1')"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed_images(self, images: list[bytes]) -> npt.NDArray[np.float32]:
        vectors = await asyncio.to_thread(_embed_all, images, self._dimensions)
        return checked(vectors, len(images), self._dimensions)

    async def embed_texts(self, texts: list[str]) -> npt.NDArray[np.float32]:
        # Callers refuse a text query of a `local-image` field first (a 422): this is not reached from a request.
        raise EmbeddingFailed("pixels-v1 embeds images, not texts")

    async def aclose(self) -> None:
        return None


def _embed_all(images: list[bytes], dimensions: int) -> npt.NDArray[np.float32]:
    out = np.empty((len(images), dimensions), dtype=np.float32)
    for row, data in enumerate(images):
        out[row] = pixel_features(data)
    return out


def pixel_features(data: bytes) -> npt.NDArray[np.float32]:
    """The 256 features of one encoded image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            # A JPEG decodes at a reduced scale when asked: the features need 16 x 16 at most.
            image.draft("RGB", (4 * GRID, 4 * GRID))
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise EmbeddingFailed(f"the image cannot be decoded ({type(exc).__name__})") from None
    colour = np.asarray(rgb.resize((GRID, GRID), Image.Resampling.BOX), dtype=np.float32) / 255.0 - 0.5
    grey = np.asarray(rgb.convert("L").resize((2 * GRID, 2 * GRID), Image.Resampling.BOX), dtype=np.float32)
    dx = np.abs(np.diff(grey, axis=1, append=grey[:, -1:]))
    dy = np.abs(np.diff(grey, axis=0, append=grey[-1:, :]))
    edges = np.hypot(dx, dy).reshape(GRID, 2, GRID, 2).mean(axis=(1, 3)) / 255.0
    edges -= edges.mean()
    features = np.concatenate([_unit(colour.ravel()), EDGE_WEIGHT * _unit(edges.ravel())])
    return _unit(features)


def _unit(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norm = float(np.linalg.norm(vector))
    # A flat grey image has no features at all: its vector is the zero vector's neighbour, the first axis.
    if norm == 0.0:
        unit = np.zeros_like(vector)
        unit[0] = 1.0
        return unit
    return (vector / norm).astype(np.float32)
