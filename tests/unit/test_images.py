"""The pure parts of images: which URLs are under a listed source, what an image must be, the local pixel
embedder's vectors, and images in an upsert command (its JSON form, and its parts when split)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from events import UpsertVectors, parse_command
from events.commands import FieldImages, FieldVectors, UpsertVectorsPayload, dense_images
from tributary.embedding.images import BadImage, ImageRef, checked_image
from tributary.embedding.local_image import pixel_features
from tributary.limits import MAX_IMAGE_PIXELS
from tributary.outbound import place_of
from tributary.settings import ImageSource
from tributary.snapshots import pack_images, unpack_images

SOURCES = {
    "a": ImageSource(url="https://img.example.com/pics"),
    "b": ImageSource(url="http://10.0.0.1:8080/"),
}


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://img.example.com/pics/cat.png", True),
        ("https://img.example.com/pics", True),
        ("https://img.example.com/pics/a/b.jpg?size=2", True),
        ("https://img.example.com/picsfoo/cat.png", False),  # not below the path
        ("https://img.example.com/other/cat.png", False),
        ("http://img.example.com/pics/cat.png", False),  # another scheme
        ("https://img.example.com:8443/pics/cat.png", False),  # another port
        ("https://user@img.example.com/pics/cat.png", False),
        ("https://img.example.com/pics/../secret", False),
        ("https://evil.example.com/pics/cat.png", False),
        ("http://10.0.0.1:8080/anything", True),
        ("ftp://10.0.0.1:8080/x", False),
    ],
)
def test_a_url_is_fetched_only_under_a_listed_source(url: str, allowed: bool) -> None:
    assert (place_of(url, SOURCES) is not None) == allowed


def encoded(pixels: np.ndarray, kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=kind)
    return out.getvalue()


def blocks(seed: int, side: int = 64) -> np.ndarray:
    cells = np.random.default_rng(seed).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return np.kron(cells, np.ones((side // 4, side // 4, 1), dtype=np.uint8))


def test_an_image_is_a_png_or_jpeg_within_the_limits() -> None:
    png, jpeg = encoded(blocks(1)), encoded(blocks(1), "JPEG")
    noise = encoded(np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8), "JPEG")
    assert checked_image(png) == png and checked_image(jpeg) == jpeg
    for bad, reason in (
        (b"", "cannot be read"),
        (png[: len(png) // 2], "cannot be read"),
        (encoded(blocks(1), "GIF"), "GIF: PNG or JPEG"),
        # A truncated JPEG passes Pillow's `verify` (its header is whole; the data ends early): decoding finds it.
        (noise[: len(noise) * 2 // 3], "cannot be read"),
    ):
        with pytest.raises(BadImage, match=reason):
            checked_image(bad)
    # A small file that declares a canvas beyond the limit (a decompression bomb) is refused from its header.
    bomb = Image.new("1", (MAX_IMAGE_PIXELS // 1000 + 1, 1001))
    out = io.BytesIO()
    bomb.save(out, format="PNG")
    with pytest.raises(BadImage, match="pixels"):
        checked_image(out.getvalue())


def test_an_image_given_as_text_is_a_url_or_base64() -> None:
    assert ImageRef.parse("https://x.example/a.png") == ImageRef(url="https://x.example/a.png")
    assert ImageRef.parse("aGVsbG8=") == ImageRef(data=b"hello")
    assert str(ImageRef(data=b"hello")) == "aGVsbG8="


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_the_pixel_embedder_is_deterministic_and_finds_copies() -> None:
    original = encoded(blocks(7))
    vector = pixel_features(original)
    assert vector.shape == (256,) and vector.dtype == np.float32
    assert np.isclose(np.linalg.norm(vector), 1.0)
    assert np.array_equal(vector, pixel_features(original))
    # A resized JPEG copy of the same picture stays near; other pictures are further.
    copy = pixel_features(encoded(blocks(7, side=128), "JPEG"))
    others = [pixel_features(encoded(blocks(seed))) for seed in range(20, 40)]
    assert cosine(vector, copy) > 0.95
    assert cosine(vector, copy) > max(cosine(vector, other) for other in others)
    # A flat image has no colour or edge to speak of, and still gets a unit vector.
    flat = pixel_features(encoded(np.full((16, 16, 3), 128, dtype=np.uint8)))
    assert np.isfinite(flat).all() and np.isclose(np.linalg.norm(flat), 1.0)


def test_a_snapshot_part_packs_its_images_and_finds_them_cut() -> None:
    images = [b"\x89PNG one", b"", b"\xff\xd8 three"]
    packed = pack_images(images)
    assert unpack_images(packed) == images and unpack_images(pack_images([])) == []
    for cut in (packed[:-1], packed[:12], packed + b"x", b"\x01"):
        with pytest.raises(ValueError):
            unpack_images(cut)


def test_images_travel_in_the_command_and_follow_its_parts() -> None:
    payload = UpsertVectorsPayload(
        ids=["a", "b", "c"],
        vectors=np.zeros((3, 2), dtype=np.float32),
        vector_absent=[0, 2],
        named_vectors={"image": FieldVectors(rows=[0, 2], vectors=np.ones((2, 3), dtype=np.float32))},
        images={"image": FieldImages(rows=[0, 2], images=[b"\x89PNG first", b"\xff\xd8 third"])},
    )
    command = UpsertVectors(tenant="t", dataset="d", payload=payload)
    again = parse_command(command.model_dump_json())
    assert isinstance(again, UpsertVectors)
    assert again.payload.images["image"].images == [b"\x89PNG first", b"\xff\xd8 third"]
    assert dense_images(again.payload.images, ["image"], 3) == {
        "image": [b"\x89PNG first", b"", b"\xff\xd8 third"]
    }
    tail = payload.rows(1, 3)
    assert tail.images["image"].rows == [1] and tail.images["image"].images == [b"\xff\xd8 third"]
    assert payload.rows(1, 2).images == {}  # b has no image
    with pytest.raises(ValueError, match="names row 5"):
        UpsertVectorsPayload(
            ids=["a"],
            vectors=np.zeros((1, 2), dtype=np.float32),
            images={"image": FieldImages(rows=[5], images=[b"x"])},
        )
