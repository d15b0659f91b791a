"""Search through the query API, in embedded mode and through Kafka: results match an exact search, filters
apply inside it, deleted ids never come back, and a `session` read sees the write whose token it carries."""

from __future__ import annotations

import httpx
import numpy as np

from entrypoints.http_app import create_app
from tests.helpers import eventually, sample, scraped, serving
from tests.kafka_tools import workers
from tributary.settings import Settings

DIMS = 8


def records(n: int, seed: int = 0) -> tuple[np.ndarray, list[dict[str, object]]]:
    vectors = np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)
    return vectors, [
        {"id": f"v{i}", "vector": v.tolist(), "text": f"doc {i}", "metadata": {"group": i % 10, "i": i}}
        for i, v in enumerate(vectors)
    ]


def exact(vectors: np.ndarray, query: np.ndarray, keep: np.ndarray, k: int) -> list[str]:
    scores = (vectors @ query) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    scores[~keep] = -np.inf
    return [f"v{i}" for i in np.argsort(-scores, kind="stable")[:k] if keep[i]]


async def exercise(writes: httpx.AsyncClient, reads: httpx.AsyncClient) -> None:
    created = await writes.post("/api/v1/datasets?wait=true", json={"name": "s", "dimensions": DIMS})
    assert created.json()["status"] == "applied", created.text
    vectors, body = records(300)
    written = await writes.post("/api/v1/datasets/s/vectors", json={"vectors": body})
    token = written.json()["consistency_token"]
    query = np.random.default_rng(9).standard_normal(DIMS).astype(np.float32)
    search = "/api/v1/datasets/s/search"

    found = await reads.post(
        f"{search}?consistency=session&token={token}",
        json={"vector": query.tolist(), "k": 5, "include": ["metadata", "text"]},
    )
    assert found.status_code == 200, found.text
    answer = found.json()
    assert [r["id"] for r in answer["results"]] == exact(vectors, query, np.ones(300, bool), 5)
    assert answer["results"][0]["metadata"]["i"] == int(answer["results"][0]["id"][1:])
    assert answer["results"][0]["text"].startswith("doc ") and answer["consistency"] == "session"
    assert answer["version"] and answer["reflects"]

    filtered = await reads.post(
        f"{search}?consistency=session&token={token}",
        json={"vector": query.tolist(), "k": 5, "filter": {"group": {"$in": [3, 4]}}},
    )
    keep = np.array([i % 10 in (3, 4) for i in range(300)])
    assert [r["id"] for r in filtered.json()["results"]] == exact(vectors, query, keep, 5)

    top = answer["results"][0]["id"]
    deleted = await writes.post("/api/v1/datasets/s/vectors/delete", json={"ids": [top]})
    after = await reads.post(
        f"{search}?consistency=session&token={deleted.json()['consistency_token']}",
        json={"vector": query.tolist(), "k": 300},
    )
    assert top not in {r["id"] for r in after.json()["results"]}
    assert len(after.json()["results"]) == 299

    one = await reads.get("/api/v1/datasets/s/vectors/v7?consistency=strong")
    assert one.status_code == 200 and one.json()["vector"] == vectors[7].tolist()
    assert (await reads.get(f"/api/v1/datasets/s/vectors/{top}?consistency=strong")).status_code == 404
    many = await reads.post("/api/v1/datasets/s/vectors/get", json={"ids": ["v1", top, "v2"]})
    assert [r["id"] for r in many.json()["results"]] == ["v1", "v2"]
    counted = await reads.post("/api/v1/datasets/s/count", json={"filter": {"group": 0}})
    assert counted.json()["count"] == 30 - (1 if int(top[1:]) % 10 == 0 else 0)

    seen: list[str] = []
    cursor = None
    while True:
        page = (await reads.post("/api/v1/datasets/s/scroll", json={"limit": 64, "cursor": cursor})).json()
        seen += [r["id"] for r in page["results"]]
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"v{i}" for i in range(300) if f"v{i}" != top)

    batch = await reads.post(
        f"{search}/batch",
        json={"searches": [{"vector": query.tolist(), "k": 2}, {"vector": (-query).tolist(), "k": 3}]},
    )
    assert batch.status_code == 200, batch.text
    assert [len(a["results"]) for a in batch.json()["answers"]] == [2, 3]
    alone = await reads.post(search, json={"vector": (-query).tolist(), "k": 3})
    assert batch.json()["answers"][1]["results"] == alone.json()["results"]

    paged = await reads.post(search, json={"vector": query.tolist(), "k": 3, "offset": 3})
    full = await reads.post(search, json={"vector": query.tolist(), "k": 6})
    assert [r["id"] for r in paged.json()["results"]] == [r["id"] for r in full.json()["results"]][3:]
    bad = await reads.post(search, json={"vector": query.tolist(), "filter": {"group": {"$gt": [1]}}})
    assert bad.status_code == 422 and "/group/$gt" in bad.text
    missing = await reads.post("/api/v1/datasets/nope/search", json={"vector": query.tolist()})
    assert missing.status_code == 404


async def test_search_in_embedded_mode(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await exercise(client, client)


async def test_search_through_kafka(distributed_settings: Settings) -> None:
    settings = distributed_settings
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
        serving(create_app(settings, "query-api")) as queries,
    ):
        await exercise(commands, queries)


async def test_repeated_searches_are_cached_and_a_write_invalidates(distributed_settings: Settings) -> None:
    settings = distributed_settings
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
        serving(create_app(settings, "query-api")) as queries,
    ):
        await commands.post("/api/v1/datasets?wait=true", json={"name": "c", "dimensions": DIMS})
        _, body = records(50)
        token = (await commands.post("/api/v1/datasets/c/vectors", json={"vectors": body})).json()[
            "consistency_token"
        ]
        query = {"vector": [1.0] * DIMS, "k": 3}
        # The counters are the process's: this test reads how much they grow.
        local_hits = await scraped(queries, "tributary_search_cache_hits_total", layer="local")
        first = await queries.post(f"/api/v1/datasets/c/search?consistency=session&token={token}", json=query)
        second = await queries.post("/api/v1/datasets/c/search", json=query)
        assert first.json()["results"] == second.json()["results"]
        assert second.json()["consistency"] == "bounded", "the read's own state, not the cached one"
        assert await scraped(queries, "tributary_search_cache_hits_total", layer="local") == local_hits + 1

        better = {"id": "best", "vector": [1.0] * DIMS}
        token = (await commands.post("/api/v1/datasets/c/vectors", json={"vectors": [better]})).json()[
            "consistency_token"
        ]
        after = await queries.post(f"/api/v1/datasets/c/search?consistency=session&token={token}", json=query)
        assert after.json()["results"][0]["id"] == "best", "a new version never reads the old answer"

        async def all_indexed() -> bool | None:
            return await scraped(queries, "tributary_vectors_pending_index") == 0 or None

        # The writes were searchable before they were in HNSW; the background indexer gets them there.
        await eventually(all_indexed)


async def test_search_answers_uncached_when_redis_is_down(embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    async with serving(create_app(settings)) as client:
        await client.post("/api/v1/datasets?wait=true", json={"name": "r", "dimensions": DIMS})
        _, body = records(20)
        await client.post("/api/v1/datasets/r/vectors?wait=true", json={"vectors": body})
        before = (await client.get("/metrics")).text
        for _ in range(2):
            answer = await client.post("/api/v1/datasets/r/search", json={"vector": [1.0] * DIMS, "k": 3})
            assert answer.status_code == 200 and len(answer.json()["results"]) == 3
        after = (await client.get("/metrics")).text

        def grew(name: str, **labels: str) -> float:
            return sample(after, name, **labels) - sample(before, name, **labels)

        # The first search failed to read and to write Redis, and answered; the second was a local hit.
        assert grew("tributary_search_cache_errors_total") == 2, after
        assert grew("tributary_search_cache_hits_total", layer="local") == 1


async def test_a_projection_is_rebuilt_from_deeplake(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await client.post("/api/v1/datasets?wait=true", json={"name": "b", "dimensions": DIMS})
        _, body = records(40)
        await client.post("/api/v1/datasets/b/vectors?wait=true", json={"vectors": body})
        await client.post("/api/v1/datasets/b/vectors/delete?wait=true", json={"ids": ["v3"]})
        query = {"vector": [1.0] * DIMS, "k": 40, "include": ["metadata", "text"]}
        before = (await client.post("/api/v1/datasets/b/search", json=query)).json()["results"]
        rebuilt = await client.post("/api/v1/admin/datasets/b/rebuild")
        assert rebuilt.status_code == 200 and rebuilt.json()["vectors"] == 39, rebuilt.text
        after = (await client.post("/api/v1/datasets/b/search", json={**query, "k": 39})).json()["results"]
        assert after == before
        assert (await client.post("/api/v1/admin/datasets/nope/rebuild")).status_code == 404
