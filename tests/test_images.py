"""Images through the real stack (embedded mode, and the distributed roles over Kafka): a dataset with an `image`
field (the local pixel embedder) and a `text` field (an OpenAI-compatible endpoint) beside BM25 over the texts.
Records give their image as bytes or as a URL the server fetches from a local HTTP server the operator listed;
one not listed, bytes that are no image, an image too large and a fetch that fails are each a 422 naming the
record and field, and nothing of the request is written. Search by image finds the image's record first (by
bytes and by URL, alone and fused with text), a record without an image is found through its text, filters
hold, and `include: ["images"]` answers the bytes sent. An image endpoint that is down is a 503. And over gRPC.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import deeplake
import grpc
import httpx
import numpy as np
import pytest
from PIL import Image
from pydantic import SecretStr

from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from entrypoints.grpc_api.v1 import tributary_pb2_grpc as pb_grpc
from entrypoints.http_app import create_app
from tests.embedding_server import EmbeddingsServer
from tests.helpers import ADMIN_KEY, Deployment, embedded, serving
from tests.kafka_tools import distributed
from tests.processes import free_port
from tributary.limits import MAX_IMAGE_BYTES
from tributary.settings import EmbeddingEndpoint, ImageSource, Settings
from tributary.storage import image_column_of

N = 24
BASE = "/api/v1/datasets/pics"
STRONG = "?consistency=strong"
TEXT_WIDTH = 8


def picture(i: int, kind: str = "PNG") -> bytes:
    """An image of its own: a grid of colours drawn from `i`, at a size of its own."""
    rng = np.random.default_rng(100 + i)
    cells = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    side = 32 + 4 * i
    pixels = np.kron(cells, np.ones((side // 4, side // 4, 1), dtype=np.uint8))
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=kind)
    return out.getvalue()


def how(i: int) -> str:
    """Every fourth record has no image; of the others a third are given by URL, the rest as bytes (some JPEG)."""
    if i % 4 == 0:
        return "none"
    return "url" if i % 3 == 0 else "bytes"


def image_of(i: int) -> bytes:
    return picture(i, "JPEG" if i % 5 == 0 else "PNG")


class Pictures:
    """A local HTTP server of the records' images: `/allowed/<i>` (the listed source) and `/private/<i>`."""

    def __init__(self) -> None:
        served = {f"/{where}/{i}": image_of(i) for i in range(N) for where in ("allowed", "private")}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = served.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, i: int, where: str = "allowed") -> str:
        return f"{self.base}/{where}/{i}"

    @property
    def source(self) -> ImageSource:
        return ImageSource(url=f"{self.base}/allowed/", allow_private=True)


@contextmanager
def pictures() -> Iterator[Pictures]:
    served = Pictures()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def record(i: int, served: Pictures) -> dict[str, Any]:
    given = how(i)
    images = {} if given == "none" else {"image": served.url(i) if given == "url" else b64(image_of(i))}
    return {
        "id": f"r{i}",
        "text": f"photo number {i} " + ("zebra" if i == 8 else "landscape"),
        "metadata": {"group": i % 3},
        **({"images": images} if images else {}),
    }


async def ids(client: httpx.AsyncClient, body: dict[str, Any]) -> list[str]:
    answer = await client.post(f"{BASE}/search{STRONG}", json=body)
    assert answer.status_code == 200, answer.text
    return [r["id"] for r in answer.json()["results"]]


async def write(client: httpx.AsyncClient, path: str, body: Any) -> dict[str, Any]:
    answer = await client.post(path + ("&" if "?" in path else "?") + "wait=true", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "applied", answer.text
    return dict(answer.json())


def refused(answer: httpx.Response, loc: list[Any], reason: str) -> None:
    assert answer.status_code == 422, answer.text
    found = answer.json()["detail"]
    assert any(p["loc"] == loc and reason in p["msg"] for p in found), found


def with_sources(settings: Settings, served: Pictures, embeddings: EmbeddingsServer) -> Settings:
    endpoint = EmbeddingEndpoint(url=embeddings.base_url, api_key=SecretStr("sk-test"), allow_private=True)
    return settings.model_copy(
        update={"image_sources": {"pictures": served.source}, "embedding_endpoints": {"test": endpoint}}
    )


IMAGE_FIELD = {"dimensions": 256, "embedder": {"kind": "local-image"}}
DEFINITION = {
    "name": "pics",
    "dimensions": 2,
    "metadata_schema": {"group": "integer"},
    "vectors": {
        "image": IMAGE_FIELD,
        "text": {
            "dimensions": TEXT_WIDTH,
            "embedder": {"kind": "openai", "model": "t", "endpoint": "test"},
        },
    },
}


async def exercise(commands: httpx.AsyncClient, reads: httpx.AsyncClient, served: Pictures) -> None:
    await write(commands, "/api/v1/datasets", DEFINITION)
    await bad_images_are_refused_and_nothing_is_written(commands, reads, served)
    await write(commands, f"{BASE}/vectors", {"vectors": [record(i, served) for i in range(N)]})
    count = await reads.post(f"{BASE}/count{STRONG}", json={})
    assert count.json()["count"] == N

    # Search by image: each record's image finds that record first, sent as bytes or by URL.
    for i in range(N):
        if how(i) == "none":
            continue
        assert (await ids(reads, {"field": "image", "image": b64(image_of(i)), "k": 3}))[0] == f"r{i}"
    assert (await ids(reads, {"field": "image", "image": served.url(7)}))[0] == "r7"
    found = await ids(reads, {"field": "image", "image": b64(image_of(5)), "k": N})
    assert len(found) == sum(how(i) != "none" for i in range(N)), found  # only records with an image

    # A record without an image (r8) is found through its text: the text field and BM25.
    assert how(8) == "none"
    assert (await ids(reads, {"field": "text", "text": record(8, served)["text"]}))[0] == "r8"
    assert await ids(reads, {"mode": "text", "text": "zebra"}) == ["r8"]

    # Fused: an image with a text field, and an image with BM25 (r8, which has no image, is found through it).
    with_text = [
        {"field": "image", "image": b64(image_of(5))},
        {"field": "text", "text": record(5, served)["text"]},
    ]
    queries = [{"field": "image", "image": b64(image_of(5))}, {"mode": "text", "text": "zebra", "weight": 2}]
    for fusion in ("rrf", "min_max", "dbsf"):
        assert (await ids(reads, {"queries": with_text, "fusion": fusion}))[0] == "r5", fusion
        fused = await ids(reads, {"queries": queries, "fusion": fusion, "k": 5})
        assert set(fused[:2]) == {"r5", "r8"}, (fusion, fused)
        # Filters hold in every input: r5 is in group 2, r8 in group 2 as well; group 1 has neither.
        other = await ids(reads, {"queries": queries, "fusion": fusion, "filter": {"group": 1}, "k": N})
        assert other and "r5" not in other and "r8" not in other
        assert all(int(r[1:]) % 3 == 1 for r in other), other
    alone = await ids(reads, {"field": "image", "image": b64(image_of(5)), "filter": {"group": 1}, "k": N})
    assert alone and all(int(r[1:]) % 3 == 1 for r in alone)

    # `include: ["images"]`: the bytes as sent (or as fetched), on get and on search; none for r8.
    got = await reads.post(
        f"{BASE}/vectors/get", json={"ids": [f"r{i}" for i in range(N)], "include": ["images", "metadata"]}
    )
    assert got.status_code == 200, got.text
    for view in got.json()["results"]:
        i = int(view["id"][1:])
        expected = {} if how(i) == "none" else {"image": b64(image_of(i))}
        assert view["images"] == expected, view["id"]
    page = await reads.post(
        f"{BASE}/search{STRONG}",
        json={"field": "image", "image": b64(image_of(10)), "k": 2, "include": ["images"]},
    )
    first = page.json()["results"][0]
    assert first["id"] == "r10" and base64.b64decode(first["images"]["image"]) == image_of(10)
    scrolled = await reads.post(
        f"{BASE}/scroll{STRONG}", json={"filter": {"group": 1}, "include": ["images"], "limit": 3}
    )
    assert scrolled.status_code == 200, scrolled.text
    for view in scrolled.json()["results"]:
        i = int(view["id"][1:])
        assert view["images"] == ({} if how(i) == "none" else {"image": b64(image_of(i))}), view["id"]
    # Without `images` asked for, none are read.
    plain = await reads.post(f"{BASE}/vectors/get", json={"ids": ["r10"]})
    assert "images" not in plain.json()["results"][0]

    # A past version answers with its own images: r10 sent again with another image is found by the old one there.
    version = (await reads.get(BASE)).json()["version"]
    await write(
        commands, f"{BASE}/vectors", {"vectors": [{"id": "r10", "images": {"image": b64(image_of(11))}}]}
    )
    now = await reads.post(f"{BASE}/vectors/get{STRONG}", json={"ids": ["r10"], "include": ["images"]})
    assert now.json()["results"][0]["images"] == {"image": b64(image_of(11))}
    then = await reads.post(
        f"{BASE}/vectors/get?version={version}", json={"ids": ["r10"], "include": ["images"]}
    )
    assert then.json()["results"][0]["images"] == {"image": b64(image_of(10))}
    await write(commands, f"{BASE}/vectors", {"vectors": [record(10, served)]})

    # A snapshot restored into another dataset keeps the images and their vectors.
    taken = await write(commands, f"{BASE}/snapshots", {})
    await write(commands, f"{BASE}/snapshots/{taken['operation_id']}/restore?target=copy", None)
    copy = await reads.post(
        f"/api/v1/datasets/copy/search{STRONG}",
        json={"field": "image", "image": b64(image_of(5)), "k": 1, "include": ["images"]},
    )
    assert [(r["id"], r["images"]) for r in copy.json()["results"]] == [("r5", {"image": b64(image_of(5))})]
    restored = await reads.post(
        f"/api/v1/datasets/copy/vectors/get{STRONG}", json={"ids": ["r8", "r9"], "include": ["images"]}
    )
    assert [r["images"] for r in restored.json()["results"]] == [{}, {"image": b64(image_of(9))}]

    # Query refusals: a bad query image, a text for an image field, an image for a text field.
    search = f"{BASE}/search{STRONG}"
    refused(
        await reads.post(search, json={"field": "image", "image": b64(b"not an image")}),
        ["body", "image"],
        "not a PNG or JPEG",
    )
    refused(
        await reads.post(search, json={"queries": [{"field": "image", "image": served.url(3, "private")}]}),
        ["body", "queries", 0, "image"],
        "image source",
    )
    refused(
        await reads.post(search, json={"field": "image", "text": "a cat"}),
        ["body", "image"],
        "local pixel embedder",
    )
    refused(
        await reads.post(search, json={"field": "text", "image": b64(image_of(1))}),
        ["body", "image"],
        "does not embed images",
    )


async def bad_images_are_refused_and_nothing_is_written(
    commands: httpx.AsyncClient, reads: httpx.AsyncClient, served: Pictures
) -> None:
    good = record(1, served)
    big = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8))
    out = io.BytesIO()
    big.save(out, format="PNG")
    assert len(out.getvalue()) > MAX_IMAGE_BYTES
    cases = [
        ({"image": served.url(2, "private")}, "image source the operator listed"),
        ({"image": b64(b"GIF89a not really")}, "not a PNG or JPEG"),
        ({"image": b64(picture(3, "GIF"))}, "PNG or JPEG are accepted"),
        ({"image": b64(out.getvalue())}, f"at most {MAX_IMAGE_BYTES}"),
        ({"image": served.url(99)}, "answered 404"),
        ({"image": "http://127.0.0.1:1/allowed/1"}, "image source"),
        ({"text": b64(image_of(1))}, "no image field 'text'"),
        ({"audio": b64(image_of(1))}, "no image field 'audio'"),
    ]
    for images, reason in cases:
        body = {"vectors": [good, {"id": "bad", "images": images}]}
        answer = await commands.post(f"{BASE}/vectors", json=body)
        (field,) = images
        refused(answer, ["body", "vectors", 1, "images", field], reason)
    not_base64 = await commands.post(
        f"{BASE}/vectors", json={"vectors": [{"id": "x", "images": {"image": "%%"}}]}
    )
    refused(not_base64, ["body", "vectors", 0, "images", "image"], "base64")
    count = await reads.post(f"{BASE}/count{STRONG}", json={})
    assert count.json()["count"] == 0


@pytest.fixture(params=["embedded", "kafka"])
def deployment(request: pytest.FixtureRequest) -> tuple[str, Settings]:
    """Embedded mode, or the distributed roles over Kafka, by the settings each starts from."""
    name = "embedded_settings" if request.param == "embedded" else "distributed_settings"
    return request.param, request.getfixturevalue(name)


async def test_images_stored_embedded_and_searched(deployment: tuple[str, Settings]) -> None:
    mode, base = deployment
    with pictures() as served:
        async with EmbeddingsServer(width=TEXT_WIDTH) as embeddings:
            settings = with_sources(base, served, embeddings)
            started: Deployment = embedded(settings) if mode == "embedded" else distributed(settings)
            async with started as (commands, reads):
                await exercise(commands, reads, served)


async def test_an_image_endpoint_embeds_images_and_down_is_503(embedded_settings: Settings) -> None:
    with pictures() as served:
        async with EmbeddingsServer(width=4) as embeddings:
            settings = with_sources(embedded_settings, served, embeddings)
            async with serving(create_app(settings)) as client:
                clip = {"kind": "openai-image", "model": "clip", "endpoint": "test"}
                # An endpoint the operator did not configure, an image embedder for the default vector (which
                # embeds text), and a local one of another width are refused at creation.
                for definition, loc, reason in (
                    (
                        {"vectors": {"image": {"dimensions": 4, "embedder": {**clip, "endpoint": "nope"}}}},
                        ["body", "vectors", "image", "embedder"],
                        "no embedding endpoint 'nope'",
                    ),
                    ({"embedder": clip}, ["body", "embedder"], "openai-image"),
                    (
                        {"vectors": {"image": {"dimensions": 4, "embedder": {"kind": "local-image"}}}},
                        ["body", "vectors", "image"],
                        "256-dimensional",
                    ),
                ):
                    answer = await client.post(
                        "/api/v1/datasets", json={"name": "no", "dimensions": 2, **definition}
                    )
                    assert answer.status_code == 422, answer.text
                    assert any(
                        p["loc"][: len(loc)] == loc and reason in json.dumps(p)
                        for p in answer.json()["detail"]
                    ), answer.text
                definition = {
                    "name": "clip",
                    "dimensions": 2,
                    "vectors": {"image": {"dimensions": 4, "embedder": clip}},
                }
                await write(client, "/api/v1/datasets", definition)
                body = {
                    "vectors": [
                        {"id": "a", "images": {"image": b64(image_of(1))}},
                        {"id": "b", "vector": [1, 0]},
                    ]
                }
                await write(client, "/api/v1/datasets/clip/vectors", body)
                # The CLIP-style form: each image as {"image": <base64>} in `input`, one call for the request.
                assert [seen.body["input"] for seen in embeddings.requests] == [[{"image": b64(image_of(1))}]]
                search = "/api/v1/datasets/clip/search" + STRONG
                found = await client.post(search, json={"field": "image", "image": b64(image_of(1))})
                assert [r["id"] for r in found.json()["results"]] == ["a"]
                # A query text is embedded by the same model into its images' space, sent as {"text": ...}.
                by_text = await client.post(search, json={"field": "image", "text": "a red kite"})
                assert by_text.status_code == 200 and by_text.json()["results"][0]["id"] == "a", by_text.text
                assert embeddings.requests[-1].body["input"] == [{"text": "a red kite"}]

                embeddings.status = 503
                down = await client.post("/api/v1/datasets/clip/vectors", json=body)
                assert down.status_code == 503, down.text
                assert "embedding failed" in down.text
                # (Another image than the one searched above, whose page the search cache holds.)
                query = await client.post(search, json={"field": "image", "image": b64(image_of(2))})
                assert query.status_code == 503, query.text


async def test_images_over_grpc(embedded_settings: Settings) -> None:
    port = free_port()
    auth = (("authorization", f"Bearer {ADMIN_KEY}"),)
    with pictures() as served:
        async with EmbeddingsServer(width=TEXT_WIDTH) as embeddings:
            settings = with_sources(embedded_settings, served, embeddings).model_copy(
                update={"grpc_port": port}
            )
            async with (
                serving(create_app(settings)) as client,
                grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            ):
                await write(client, "/api/v1/datasets", DEFINITION)
                records = [
                    pb.Record(
                        id=f"r{i}",
                        text=f"photo number {i}",
                        images={"image": image_of(i)} if how(i) == "bytes" else {},
                        image_urls={"image": served.url(i)} if how(i) == "url" else {},
                    )
                    for i in range(N)
                ]
                vectors = pb_grpc.VectorsStub(channel)
                await vectors.Upsert(
                    pb.UpsertRequest(dataset="pics", records=records, wait=True), metadata=auth
                )
                search = pb_grpc.SearchStub(channel)
                answer = await search.Search(
                    pb.SearchRequest(
                        dataset="pics",
                        query=pb.Query(field="image", image=image_of(7), include=["images"], k=3),
                        consistency=pb.Consistency(level="strong"),
                    ),
                    metadata=auth,
                )
                first = answer.page.results[0]
                assert first.id == "r7" and first.images["image"] == image_of(7)
                by_url = await search.Search(
                    pb.SearchRequest(
                        dataset="pics",
                        query=pb.Query(queries=[pb.QueryInput(field="image", image_url=served.url(10))], k=1),
                    ),
                    metadata=auth,
                )
                assert by_url.page.results[0].id == "r10"
                with pytest.raises(grpc.aio.AioRpcError) as bad:
                    await vectors.Upsert(
                        pb.UpsertRequest(
                            dataset="pics",
                            records=[pb.Record(id="x", images={"image": b"no image"})],
                            wait=True,
                        ),
                        metadata=auth,
                    )
                assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "not a PNG or JPEG" in (bad.value.details() or "")


async def test_images_are_read_at_the_version_the_replica_serves(embedded_settings: Settings) -> None:
    """A commit whose events the replica has not applied yet (here another writer's, which sends none) changes
    no image a read returns: images come from the version the projection serves, as everything else does."""
    definition = {"name": "pics", "dimensions": 2, "vectors": {"image": IMAGE_FIELD}}
    query = {"vector": [1, 0], "include": ["images"]}
    async with serving(create_app(embedded_settings)) as client:
        await write(client, "/api/v1/datasets", definition)
        body = {"vectors": [{"id": "a", "vector": [1, 0], "images": {"image": b64(image_of(1))}}]}
        await write(client, f"{BASE}/vectors", body)
        ds = deeplake.open(f"{embedded_settings.resolved_storage_root}/default/pics")
        ds[image_column_of("image")][0] = image_of(2)
        ds.commit("another writer")
        for consistency in ("eventual", "strong"):
            answer = await client.post(f"{BASE}/search?consistency={consistency}", json=query)
            assert answer.status_code == 200, answer.text
            (found,) = answer.json()["results"]
            assert base64.b64decode(found["images"]["image"]) == image_of(1)
