"""A dataset's text analysis through the API (embedded mode, DeepLake on a temp dir): chosen at creation, used by
text search and by `$match`, and kept when the query side reloads the dataset from DeepLake."""

from __future__ import annotations

import httpx

from entrypoints.http_app import create_app
from tests.helpers import serving
from tributary.settings import Settings

RECORDS = [
    {
        "id": "run",
        "vector": [1.0, 0.0],
        "text": "Running the build on x86-64",
        "metadata": {"title": "Libraries"},
    },
    {"id": "walk", "vector": [0.0, 1.0], "text": "A walk in the park", "metadata": {"title": "Café"}},
]


async def create(client: httpx.AsyncClient, name: str, analysis: dict[str, object] | None) -> None:
    body: dict[str, object] = {"name": name, "dimensions": 2, "text_field": "title"}
    if analysis is not None:
        body["text_analysis"] = analysis
    answer = await client.post("/api/v1/datasets?wait=true", json=body)
    assert answer.status_code == 200 and answer.json()["status"] == "applied", answer.text
    written = await client.post(f"/api/v1/datasets/{name}/vectors?wait=true", json={"vectors": RECORDS})
    assert written.json()["status"] == "applied", written.text


async def found(client: httpx.AsyncClient, name: str, **search: object) -> list[str]:
    answer = await client.post(f"/api/v1/datasets/{name}/search", json={"include": [], **search})
    assert answer.status_code == 200, answer.text
    return [result["id"] for result in answer.json()["results"]]


async def searches(client: httpx.AsyncClient, name: str) -> dict[str, list[str]]:
    return {
        "runs": await found(client, name, mode="text", text="runs"),
        "library": await found(client, name, mode="text", text="library"),
        "cafe": await found(client, name, mode="text", text="cafe"),
        "the": await found(client, name, mode="text", text="the"),
        "x86": await found(client, name, mode="text", text="x86"),
        "$match runs": await found(client, name, vector=[0.5, 0.5], filter={"title": {"$match": "library"}}),
        "$match text": await found(
            client, name, mode="text", text="build", filter={"title": {"$match": "LIBRARY"}}
        ),
    }


async def test_a_datasets_analysis_serves_text_search_and_match(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        # The default: English stemming, stop words, folding, identifiers.
        await create(client, "english", None)
        await create(
            client,
            "plain",
            {"tokenizer": "words", "language": None, "stop_words": False, "ascii_folding": False},
        )
        english, plain = await searches(client, "english"), await searches(client, "plain")
        refused = await client.post(
            "/api/v1/datasets", json={"name": "bad", "dimensions": 2, "text_analysis": {"language": "french"}}
        )
    assert english == {
        "runs": ["run"],
        "library": ["run"],
        "cafe": ["walk"],
        "the": [],
        "x86": ["run"],
        "$match runs": ["run"],
        "$match text": ["run"],
    }
    assert plain == {
        "runs": [],
        "library": [],
        "cafe": [],
        "the": ["walk", "run"],
        "x86": ["run"],
        "$match runs": [],
        "$match text": [],
    }
    assert refused.status_code == 422 and "no stop word list ships for french" in refused.text

    # A restarted query side rebuilds the projection from DeepLake, with the analysis its spec stored.
    async with serving(create_app(embedded_settings)) as client:
        assert await searches(client, "english") == english
