"""Recall you can set, in embedded mode: a dataset created with HNSW parameters and a target recall gets a
search breadth tuned on its own data that reaches the target on queries it never saw; `exact: true` answers the
exact top k; `ef` and `exact` are checked."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from entrypoints.http_app import create_app
from tests.helpers import eventually, scraped, serving
from tributary.settings import Settings

DIMS = 32
ROWS = 3000
QUERIES = 40
TARGET = 0.95


def clustered(count: int) -> np.ndarray:
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((30, DIMS))
    return np.asarray(
        centres[rng.integers(0, 30, count)] + 0.6 * rng.standard_normal((count, DIMS)), np.float32
    )


def exact_ids(rows: np.ndarray, query: np.ndarray, k: int) -> list[str]:
    scores = rows @ query / (np.linalg.norm(rows, axis=1) * np.linalg.norm(query))
    return [f"v{i}" for i in np.argsort(-scores, kind="stable")[:k]]


async def tuned(client: httpx.AsyncClient, dataset: str, rows: int) -> dict[str, object]:
    async def probe() -> dict[str, object] | None:
        state = (await client.get(f"/api/v1/admin/datasets/{dataset}/index")).json()
        return state if state["tuned_rows"] == rows else None

    return await eventually(probe, timeout=120)


async def test_a_target_recall_is_reached_on_the_datasets_own_data(embedded_settings: Settings) -> None:
    data = clustered(ROWS + QUERIES)
    rows, queries = data[:ROWS], data[ROWS:]
    async with serving(create_app(embedded_settings)) as client:
        # A sparse graph, where the breadth matters: the narrowest search misses neighbours.
        index = {"m": 6, "ef_construction": 24, "target_recall": TARGET}
        created = await client.post(
            "/api/v1/datasets?wait=true", json={"name": "r", "dimensions": DIMS, "index": index}
        )
        assert created.status_code == 200, created.text
        # One write, so that the first tuning sees every row (the next would come at twice as many).
        batch = [{"id": f"v{i}", "vector": rows[i].tolist()} for i in range(ROWS)]
        written = await client.post("/api/v1/datasets/r/vectors?wait=true", json={"vectors": batch})
        assert written.status_code == 200, written.text

        state = await tuned(client, "r", ROWS)
        assert (state["m"], state["ef_construction"], state["target_recall"]) == (6, 24, TARGET)
        assert isinstance(state["measured_recall"], float) and state["measured_recall"] >= TARGET, state
        assert state["pending"] == 0 and state["indexed"] == ROWS and state["tuned_on"] == "rows"
        assert await scraped(client, "tributary_index_tunings_total") >= 1
        assert await scraped(client, "tributary_datasets_below_target_recall") == 0

        search = "/api/v1/datasets/r/search"
        hits = 0
        narrow = 0
        for query in queries:
            truth = set(exact_ids(rows, query, 10))
            found = (await client.post(search, json={"vector": query.tolist(), "k": 10})).json()["results"]
            hits += len(truth & {r["id"] for r in found})
            at_one = (await client.post(search, json={"vector": query.tolist(), "k": 10, "ef": 1})).json()
            narrow += len(truth & {r["id"] for r in at_one["results"]})
            exact = (
                await client.post(search, json={"vector": query.tolist(), "k": 10, "exact": True})
            ).json()
            assert [r["id"] for r in exact["results"]] == exact_ids(rows, query, 10)
        # Queries the tuning never saw, from the data's own distribution: the target, give or take the sample.
        assert hits / (10 * QUERIES) >= TARGET - 0.03, hits
        # The graph is one where breadth matters (so the figures above say something): ef 1 finds less.
        assert narrow < hits

        both = await client.post(search, json={"vector": queries[0].tolist(), "exact": True, "ef": 50})
        assert both.status_code == 422 and "exact" in both.text

        rebuilt = (await client.post("/api/v1/admin/datasets/r/rebuild")).json()
        assert rebuilt["index"]["tuned_rows"] == ROWS and rebuilt["index"]["measured_recall"] >= TARGET


async def test_a_dataset_created_without_index_settings_keeps_todays_graph(
    embedded_settings: Settings,
) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await client.post("/api/v1/datasets?wait=true", json={"name": "d", "dimensions": 4})
        state = (await client.get("/api/v1/admin/datasets/d/index")).json()
        assert (state["m"], state["ef_construction"], state["target_recall"]) == (16, 128, 0.99)
        assert state["measured_recall"] is None and state["tuned_rows"] == 0


async def test_a_restored_dataset_keeps_its_index_settings(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    settings = embedded_settings.model_copy(update={"backup_url": str(tmp_path / "backups")})
    async with serving(create_app(settings)) as client:
        index = {"m": 8, "ef_construction": 40, "target_recall": 0.9}
        body = {"name": "o", "dimensions": 4, "index": index}
        assert (await client.post("/api/v1/datasets?wait=true", json=body)).status_code == 200
        vectors = [{"id": f"v{i}", "vector": [float(i), 1.0, 2.0, 3.0]} for i in range(20)]
        assert (
            await client.post("/api/v1/datasets/o/vectors?wait=true", json={"vectors": vectors})
        ).status_code == 200
        taken = await client.post("/api/v1/datasets/o/snapshots?wait=true", json={})
        assert taken.status_code == 200, taken.text
        snapshot = taken.json()["operation_id"]
        restored = await client.post(f"/api/v1/datasets/o/snapshots/{snapshot}/restore?target=copy&wait=true")
        assert restored.status_code == 200, restored.text
        for dataset in ("o", "copy"):
            state = (await client.get(f"/api/v1/admin/datasets/{dataset}/index")).json()
            assert (state["m"], state["ef_construction"], state["target_recall"]) == (8, 40, 0.9), dataset
