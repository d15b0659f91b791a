"""Named vectors through the HTTP API, in embedded mode and through Kafka: a dataset with two named vector fields
beside its default vector, and texts; any record may lack any vector field, as long as it carries one. Each field and BM25 searched alone answer as an exact search over the
records that carry it; fused, a record that lacks a field is found through the others; a filter applies to every
input; the fields survive a rebuild from DeepLake, a read at a past version and a snapshot restored; and the
same over gRPC."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from entrypoints.grpc_api.v1 import tributary_pb2_grpc as pb_grpc
from entrypoints.http_app import create_app
from tests.embedding_server import EmbeddingsServer, vector_of
from tests.helpers import ADMIN_KEY, Deployment, embedded, serving
from tests.kafka_tools import distributed
from tests.processes import free_port
from tributary.settings import EmbeddingEndpoint, Settings

N = 60
DIMS = {"vector": 8, "image": 6, "caption": 4}
METRICS = {"vector": "cosine", "image": "l2", "caption": "dot"}
BASE = "/api/v1/datasets/mm"
STRONG = "?consistency=strong"
# v9 has no image (every third record has none) and is the only record with this word.
TARGET, WORD = "v9", "zebra"


def carries(i: int, field: str) -> bool:
    """Every third record has no image, every third (others) no caption, every fifth no default vector: each
    has at least one named field."""
    if field == "vector":
        return i % 5 != 2
    return (field == "image" and i % 3 != 0) or (field == "caption" and i % 3 != 1)


def dataset() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {field: rng.standard_normal((N, dims)).astype(np.float32) for field, dims in DIMS.items()}


def records(vectors: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    body = []
    for i in range(N):
        named = {f: vectors[f][i].tolist() for f in ("image", "caption") if carries(i, f)}
        default = {"vector": vectors["vector"][i].tolist()} if carries(i, "vector") else {}
        body.append(
            {
                "id": f"v{i}",
                **default,
                "vectors": named,
                "text": f"doc {i}" + (f" {WORD}" if f"v{i}" == TARGET else ""),
                "metadata": {"group": i % 4},
            }
        )
    return body


def exact(
    vectors: dict[str, np.ndarray], field: str, query: np.ndarray, keep: np.ndarray, k: int
) -> list[str]:
    rows = vectors[field]
    if METRICS[field] == "l2":
        scores = -np.linalg.norm(rows - query, axis=1)
    elif METRICS[field] == "dot":
        scores = rows @ query
    else:
        scores = (rows @ query) / (np.linalg.norm(rows, axis=1) * np.linalg.norm(query))
    present = keep & np.array([carries(i, field) for i in range(N)])
    scores = np.where(present, scores, -np.inf)
    return [f"v{i}" for i in np.argsort(-scores, kind="stable")[:k] if present[i]]


async def ids(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[str]:
    answer = await client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return [r["id"] for r in answer.json()["results"]]


async def write(client: httpx.AsyncClient, path: str, body: Any = None) -> dict[str, Any]:
    answer = await client.post(path + ("&" if "?" in path else "?") + "wait=true", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def exercise(commands: httpx.AsyncClient, reads: httpx.AsyncClient) -> None:
    definition = {
        "name": "mm",
        "dimensions": DIMS["vector"],
        "metadata_schema": {"group": "integer"},
        "vectors": {
            "image": {"dimensions": DIMS["image"], "metric": "l2"},
            "caption": {"dimensions": DIMS["caption"], "metric": "dot", "index": {"m": 8}},
        },
    }
    await write(commands, "/api/v1/datasets", definition)
    described = (await reads.get(BASE)).json()
    assert described["vectors"]["image"]["dimensions"] == DIMS["image"], described
    assert described["vectors"]["caption"]["index"]["m"] == 8
    vectors = dataset()
    await write(commands, f"{BASE}/vectors", {"vectors": records(vectors)})
    search = f"{BASE}/search{STRONG}"
    everyone = np.ones(N, dtype=bool)
    await searched_alone_and_fused(reads, search, vectors, everyone)

    # The record as stored: its vectors on `include`, only those it carries.
    got = await reads.post(
        f"{BASE}/vectors/get", json={"ids": ["v9", "v10", "v12"], "include": ["vector", "vectors"]}
    )
    carried = {r["id"]: r for r in got.json()["results"]}
    assert set(carried["v9"]["vectors"]) == {"caption"} and set(carried["v10"]["vectors"]) == {"image"}, (
        carried
    )
    assert np.allclose(carried["v10"]["vectors"]["image"], vectors["image"][10])
    assert "vector" not in carried["v12"] and set(carried["v12"]["vectors"]) == {
        "caption"
    }  # no default vector

    # An upsert replaces the whole record: v10 sent again without its image is no longer found by image.
    again = {"id": "v10", "vector": vectors["vector"][10].tolist(), "metadata": {"group": 2}}
    await write(commands, f"{BASE}/vectors", {"vectors": [again]})
    by_image = await ids(reads, search, {"field": "image", "vector": vectors["image"][10].tolist(), "k": N})
    assert "v10" not in by_image and len(by_image) == sum(carries(i, "image") for i in range(N)) - 1
    await write(commands, f"{BASE}/vectors", {"vectors": [records(vectors)[10]]})
    version = (await reads.get(BASE)).json()["version"]

    # Loaded again from DeepLake, at a past version, and restored from a snapshot: the same answers.
    rebuilt = await reads.post("/api/v1/admin/datasets/mm/rebuild")
    assert rebuilt.status_code == 200, rebuilt.text
    await searched_alone_and_fused(reads, search, vectors, everyone)
    # Each field's own index: its parameters, and the records that carry it.
    for field in DIMS:
        state = await reads.get("/api/v1/admin/datasets/mm/index", params={"field": field})
        assert state.status_code == 200, state.text
        carried = sum(carries(i, field) for i in range(N))
        assert state.json()["indexed"] + state.json()["pending"] == carried, (field, state.json())
        assert state.json()["m"] == (8 if field == "caption" else 16), (field, state.json())
    unknown = await reads.get("/api/v1/admin/datasets/mm/index", params={"field": "audio"})
    assert unknown.status_code == 422 and "no vector field 'audio'" in unknown.text
    await write(commands, f"{BASE}/vectors/delete", {"ids": ["v1"]})
    await searched_alone_and_fused(reads, f"{BASE}/search?version={version}", vectors, everyone)
    taken = await write(commands, f"{BASE}/snapshots", {})
    await write(commands, f"{BASE}/snapshots/{taken['operation_id']}/restore?target=copy")
    gone = np.array([i != 1 for i in range(N)])
    await searched_alone_and_fused(reads, f"/api/v1/datasets/copy/search{STRONG}", vectors, gone)

    await refusals(commands, reads, search)


async def searched_alone_and_fused(
    reads: httpx.AsyncClient, search: str, vectors: dict[str, np.ndarray], live: np.ndarray
) -> None:
    rng = np.random.default_rng(11)
    group = np.array([i % 4 == 1 for i in range(N)])
    for field in DIMS:
        query = rng.standard_normal(DIMS[field]).astype(np.float32)
        alone = {"field": field, "vector": query.tolist(), "k": 10, "exact": True}
        assert await ids(reads, search, alone) == exact(vectors, field, query, live, 10), field
        filtered = {**alone, "filter": {"group": 1}}
        assert await ids(reads, search, filtered) == exact(vectors, field, query, live & group, 10), field
        # Through HNSW too (a small dataset: every row is found).
        assert set(await ids(reads, search, {**alone, "exact": False})) == set(
            exact(vectors, field, query, live, 10)
        )
    text = await ids(reads, search, {"mode": "text", "text": WORD})
    assert text == [TARGET]

    # Fused: v9 has no image, yet its caption and its word put it first; every result passes the filter.
    target = int(TARGET[1:])
    queries = [
        {"field": "image", "vector": rng.standard_normal(DIMS["image"]).tolist()},
        {"field": "caption", "vector": vectors["caption"][target].tolist()},
        {"mode": "text", "text": WORD, "weight": 2.0},
    ]
    for fusion in ("rrf", "min_max", "dbsf"):
        fused = await ids(reads, search, {"queries": queries, "fusion": fusion, "k": 10})
        assert fused[0] == TARGET, (fusion, fused)
        assert len(fused) == 10
        filtered = await ids(
            reads, search, {"queries": queries, "fusion": fusion, "k": 50, "filter": {"group": 1}}
        )
        assert filtered and all(int(i[1:]) % 4 == 1 for i in filtered), filtered
        assert TARGET in filtered  # 9 % 4 == 1
        other = await ids(reads, search, {"queries": queries, "fusion": fusion, "filter": {"group": 0}})
        assert TARGET not in other and all(int(i[1:]) % 4 == 0 for i in other)
    # A field searched with the default vector and BM25 as hybrid, as before named fields.
    hybrid = {
        "mode": "hybrid",
        "field": "caption",
        "vector": vectors["caption"][target].tolist(),
        "text": WORD,
    }
    assert (await ids(reads, search, hybrid))[0] == TARGET


async def refusals(commands: httpx.AsyncClient, reads: httpx.AsyncClient, search: str) -> None:
    def problem(answer: httpx.Response, loc: list[Any]) -> str:
        assert answer.status_code == 422, answer.text
        found = answer.json()["detail"]
        assert any(p["loc"][: len(loc)] == loc for p in found), found
        return str(found)

    record = {"id": "x", "vector": [0.5] * DIMS["vector"]}
    bare = await commands.post(f"{BASE}/vectors", json={"vectors": [{"id": "x", "text": "no vector at all"}]})
    assert "a vector is required" in problem(bare, ["body", "vectors", 0, "vector"])
    unknown = await commands.post(
        f"{BASE}/vectors", json={"vectors": [{**record, "vectors": {"audio": [1.0]}}]}
    )
    assert "no such vector field" in problem(unknown, ["body", "vectors", 0, "vectors", "audio"])
    narrow = await commands.post(
        f"{BASE}/vectors", json={"vectors": [{**record, "vectors": {"image": [1.0]}}]}
    )
    assert "6" in problem(narrow, ["body", "vectors", 0, "vectors", "image"])
    no_field = await reads.post(search, json={"field": "audio", "vector": [1.0]})
    assert "no vector field 'audio'" in problem(no_field, ["body", "field"])
    wrong = await reads.post(search, json={"queries": [{"field": "image", "vector": [1.0]}]})
    assert "6" in problem(wrong, ["body", "queries", 0, "vector"])
    no_embedder = await reads.post(search, json={"queries": [{"field": "image", "text": "a cat"}]})
    assert "no embedder" in problem(no_embedder, ["body", "queries", 0, "vector"])
    both = await reads.post(search, json={"queries": [{"mode": "text", "text": "a"}], "vector": [1.0] * 8})
    assert "queries" in problem(both, ["body"])
    for vectors, reason in (
        ({"vector": {"dimensions": 3}}, "default vector"),
        ({"group": {"dimensions": 3}}, "metadata field"),
        ({f"f{i}": {"dimensions": 2} for i in range(9)}, "at most 8"),
    ):
        refused = await commands.post(
            "/api/v1/datasets",
            json={
                "name": "bad",
                "dimensions": 2,
                "metadata_schema": {"group": "integer"},
                "vectors": vectors,
            },
        )
        assert reason in problem(refused, ["body"]), reason


@pytest.fixture(params=["embedded", "kafka"])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """Embedded mode, or the distributed roles over Kafka: clients of the command side and of the query side."""
    if request.param == "embedded":
        return embedded(request.getfixturevalue("embedded_settings"))
    return distributed(request.getfixturevalue("distributed_settings"))


async def test_named_vectors_searched_alone_and_fused(deployment: Deployment) -> None:
    async with deployment as (commands, reads):
        await exercise(commands, reads)


async def test_a_dataset_without_named_vectors_answers_as_before(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await write(client, "/api/v1/datasets", {"name": "plain", "dimensions": 3})
        await write(client, "/api/v1/datasets/plain/vectors", {"vectors": [{"id": "a", "vector": [1, 0, 0]}]})
        described = (await client.get("/api/v1/datasets/plain")).json()
        assert described["vectors"] == {}
        found = await client.post(
            f"/api/v1/datasets/plain/search{STRONG}", json={"field": "vector", "vector": [1, 0, 0]}
        )
        assert [r["id"] for r in found.json()["results"]] == ["a"]
        got = await client.post(
            "/api/v1/datasets/plain/vectors/get", json={"ids": ["a"], "include": ["vectors"]}
        )
        assert got.json()["results"][0]["vectors"] == {}


async def test_named_vectors_over_grpc(embedded_settings: Settings) -> None:
    port = free_port()
    settings = embedded_settings.model_copy(update={"grpc_port": port})
    auth = (("authorization", f"Bearer {ADMIN_KEY}"),)
    vectors = dataset()
    async with (
        serving(create_app(settings)),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        fields = {"image": {"dimensions": DIMS["image"], "metric": "l2"}}
        created = await pb_grpc.DatasetsStub(channel).Create(
            pb.CreateDatasetRequest(
                name="g", dimensions=DIMS["vector"], vectors_json=json.dumps(fields), wait=True
            ),
            metadata=auth,
        )
        assert created.status == "applied"
        described = await pb_grpc.DatasetsStub(channel).Get(pb.DatasetRef(dataset="g"), metadata=auth)
        assert json.loads(described.vectors_json)["image"]["dimensions"] == DIMS["image"]
        records = [
            pb.Record(
                id=f"v{i}",
                vector=vectors["vector"][i].astype("<f4").tobytes(),
                vectors={"image": vectors["image"][i].astype("<f4").tobytes()} if carries(i, "image") else {},
                text=f"doc {i}" + (f" {WORD}" if f"v{i}" == TARGET else ""),
            )
            for i in range(N)
        ]
        await pb_grpc.VectorsStub(channel).Upsert(
            pb.UpsertRequest(dataset="g", records=records, wait=True), metadata=auth
        )
        search = pb_grpc.SearchStub(channel)
        query = vectors["image"][10]
        alone = await search.Search(
            pb.SearchRequest(
                dataset="g",
                query=pb.Query(
                    field="image", vector=query.astype("<f4").tobytes(), exact=True, include=["vectors"]
                ),
            ),
            metadata=auth,
        )
        everyone = np.ones(N, dtype=bool)
        assert [r.id for r in alone.page.results] == exact(vectors, "image", query, everyone, 10)
        first = alone.page.results[0]
        assert np.allclose(np.frombuffer(first.vectors["image"], dtype="<f4"), query)
        fused = await search.Search(
            pb.SearchRequest(
                dataset="g",
                query=pb.Query(
                    fusion="rrf",
                    queries=[
                        pb.QueryInput(field="image", vector=query.astype("<f4").tobytes()),
                        pb.QueryInput(mode="text", text=WORD, weight=2.0),
                    ],
                ),
            ),
            metadata=auth,
        )
        # v9 has no image: found through its word alone, and first for the weight of BM25.
        assert fused.page.results[0].id == TARGET
        assert "v10" in [r.id for r in fused.page.results]


async def test_a_named_field_with_an_embedder_embeds_record_and_query_texts(
    embedded_settings: Settings,
) -> None:
    async with EmbeddingsServer(width=4) as server:
        endpoint = EmbeddingEndpoint(url=server.base_url, api_key=SecretStr("sk-test"), allow_private=True)
        settings = embedded_settings.model_copy(update={"embedding_endpoints": {"test": endpoint}})
        async with serving(create_app(settings)) as client:
            embedder = {"kind": "openai", "model": "test-embed", "endpoint": "test"}
            await write(
                client,
                "/api/v1/datasets",
                {
                    "name": "e",
                    "dimensions": 2,
                    "vectors": {"caption": {"dimensions": 4, "embedder": embedder}},
                },
            )
            records = [
                {"id": "a", "vector": [1, 0], "text": "a cat on a mat"},
                {"id": "b", "vector": [0, 1], "text": "stock prices", "vectors": {"caption": [0, 0, 1, 0]}},
                {"id": "c", "vector": [1, 1]},
            ]
            await write(client, "/api/v1/datasets/e/vectors", {"vectors": records})
            # One call for the texts of the records that gave no caption; c has no text, so no caption.
            assert [seen.body["input"] for seen in server.requests] == [["a cat on a mat"]]
            got = await client.post(
                "/api/v1/datasets/e/vectors/get", json={"ids": ["a", "b", "c"], "include": ["vectors"]}
            )
            carried = {r["id"]: r["vectors"] for r in got.json()["results"]}
            np.testing.assert_allclose(carried["a"]["caption"], vector_of("a cat on a mat", 4), rtol=1e-6)
            assert carried["b"]["caption"] == [0, 0, 1, 0] and carried["c"] == {}

            # A query text is embedded by the field's embedder, alone or as an input of a fused search.
            search = f"/api/v1/datasets/e/search{STRONG}"
            alone = await ids(client, search, {"field": "caption", "text": "a cat on a mat", "exact": True})
            assert alone[0] == "a" and "c" not in alone
            fused = {"queries": [{"field": "caption", "text": "a cat on a mat"}, {"vector": [0, 1]}], "k": 3}
            assert set(await ids(client, search, fused)) == {"a", "b", "c"}
            # The default vector has no embedder: a text query of it is refused as before.
            refused = await client.post(search, json={"text": "a cat"})
            assert refused.status_code == 422 and "no embedder" in refused.text
