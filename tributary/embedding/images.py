"""Images given by a record or a query: sent as bytes, or named by a URL the server fetches.

A URL is fetched only under an image source the operator listed (`Settings.image_sources`), by
tributary/outbound.py's rule. Whatever arrives must be a PNG or a JPEG (the formats of DeepLake's image type) of
at most MAX_IMAGE_BYTES and MAX_IMAGE_PIXELS; anything else is a `BadImage` with a reason the client may read.
"""

from __future__ import annotations

import asyncio
import base64
import io
from dataclasses import dataclass

import httpx
from PIL import Image

from tributary.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from tributary.outbound import Refused, check_address, place_of
from tributary.settings import Settings

FORMATS = ("PNG", "JPEG")


class BadImage(Exception):
    """The image cannot be used; the message says why and is safe to show to a client."""


@dataclass(frozen=True)
class ImageRef:
    """An image as a request gives it: its bytes, or the URL to fetch it from."""

    data: bytes | None = None
    url: str | None = None

    @classmethod
    def parse(cls, value: str) -> ImageRef:
        """An http(s) URL, or the image's bytes in base64 (which has no ':', so the two never meet)."""
        if value.startswith(("http://", "https://")):
            return cls(url=value)
        return cls(data=base64.b64decode(value, validate=True))

    def __str__(self) -> str:
        return self.url if self.url is not None else base64.b64encode(self.data or b"").decode("ascii")


def checked_image(data: bytes) -> bytes:
    """`data` when it is a PNG or JPEG within the limits that decodes whole, else BadImage. (Decoded here, so an
    image an embedder cannot read is the client's error, not the embedder's; a JPEG decodes at a reduced scale,
    which reads all of it.) Blocks for as long as the decoding takes: callers run it in a worker thread."""
    if len(data) > MAX_IMAGE_BYTES:
        raise BadImage(f"the image has {len(data)} bytes, at most {MAX_IMAGE_BYTES} are accepted")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
            if kind not in FORMATS:
                raise BadImage(f"the image is {kind}: PNG or JPEG are accepted")
            if width * height > MAX_IMAGE_PIXELS:
                raise BadImage(
                    f"the image has {width} x {height} pixels, at most {MAX_IMAGE_PIXELS} are accepted"
                )
            image.draft("RGB", (64, 64))
            image.load()
    except BadImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise BadImage("not a PNG or JPEG image (it cannot be read)") from None
    return data


class ImageLoader:
    """The bytes of images given by reference: checked as they are, or fetched first."""

    def __init__(self, settings: Settings) -> None:
        self._sources = settings.image_sources
        # No redirects (tributary/outbound.py).
        self._client = httpx.AsyncClient(timeout=settings.image_fetch_timeout_s, follow_redirects=False)

    async def load(self, ref: ImageRef) -> bytes:
        data = (ref.data or b"") if ref.url is None else await self._fetch(ref.url)
        return await asyncio.to_thread(checked_image, data)

    async def load_all(self, refs: list[ImageRef]) -> list[bytes | BadImage]:
        """Each image's bytes, or why it cannot be used, fetched concurrently."""

        async def one(ref: ImageRef) -> bytes | BadImage:
            try:
                return await self.load(ref)
            except BadImage as exc:
                return exc

        return list(await asyncio.gather(*(one(ref) for ref in refs)))

    async def _fetch(self, url: str) -> bytes:
        place = place_of(url, self._sources)
        if place is None:
            raise BadImage(
                "the URL is not under an image source the operator listed (TRIBUTARY_IMAGE_SOURCES); "
                "send the image's bytes instead"
            )
        try:
            await check_address(httpx.URL(url).host, place, "the image URL")
            async with self._client.stream("GET", url) as response:
                if response.status_code != httpx.codes.OK:
                    raise BadImage(f"fetching the image answered {response.status_code}")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_IMAGE_BYTES:
                        raise BadImage(f"the image has more than {MAX_IMAGE_BYTES} bytes")
                return bytes(data)
        except Refused as exc:
            raise BadImage(str(exc)) from None
        except httpx.TimeoutException:
            raise BadImage(f"fetching the image took longer than {self._client.timeout.read}s") from None
        except (httpx.HTTPError, OSError) as exc:
            raise BadImage(f"the image could not be fetched ({type(exc).__name__})") from None

    async def aclose(self) -> None:
        await self._client.aclose()
