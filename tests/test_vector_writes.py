"""Vector writes end to end: validation before publishing, upsert by id, delete, metadata update, and
redelivered commands recognised by the applier's ledger. DeepLake runs for real on a temp dir."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from entrypoints.http_app import create_app
from events import CreateDataset, CreateDatasetPayload, UpsertVectors, UpsertVectorsPayload, VectorsUpserted
from tests.helpers import serving
from tributary.db.models import BusCommandRow
from tributary.deeplake_lib import deeplake
from tributary.settings import Settings
from tributary.storage import DatasetStore
from workers.applier import apply_commands


def stored(settings: Settings, dataset: str) -> dict[str, tuple[list[float], dict[str, object]]]:
    ds = deeplake.open_read_only(f"{settings.resolved_storage_root}/default/{dataset}")
    rows = {}
    for i in range(len(ds)):
        meta = ds["metadata"][i]
        rows[str(ds["id"][i])] = (
            np.asarray(ds["embedding"][i]).tolist(),
            json.loads(meta) if isinstance(meta, str) else dict(meta),
        )
    return rows


async def create(client: httpx.AsyncClient, name: str = "docs", **extra: object) -> None:
    answer = await client.post("/api/v1/datasets?wait=true", json={"name": name, "dimensions": 3, **extra})
    assert answer.json()["status"] == "applied", answer.text


async def test_upsert_replace_delete_and_patch(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await create(client)
        url = "/api/v1/datasets/docs/vectors"
        first = await client.post(
            f"{url}?wait=true",
            json={"vectors": [{"id": "a", "vector": [1, 0, 0], "metadata": {"k": 1}}, {"vector": [0, 1, 0]}]},
        )
        assert first.json()["status"] == "applied", first.text
        generated = first.json()["ids"][1]
        assert first.json()["ids"][0] == "a" and generated

        replaced = await client.post(f"{url}?wait=true", json={"vectors": [{"id": "a", "vector": [0, 0, 1]}]})
        assert replaced.json()["status"] == "applied"
        patched = await client.patch(f"{url}/{generated}?wait=true", json={"metadata": {"tag": "x"}})
        assert patched.json()["status"] == "applied"
        rows = stored(embedded_settings, "docs")
        assert rows == {"a": ([0.0, 0.0, 1.0], {}), generated: ([0.0, 1.0, 0.0], {"tag": "x"})}

        deleted = await client.post(f"{url}/delete?wait=true", json={"ids": ["a", "never-was"]})
        assert deleted.json()["status"] == "applied"
        assert set(stored(embedded_settings, "docs")) == {generated}
        catalog = (await client.get("/api/v1/datasets/docs")).json()
        assert catalog["vector_count"] == 1

        missing = await client.patch(f"{url}/nope?wait=true", json={"metadata": {"tag": "y"}})
        assert missing.json()["status"] == "rejected" and "does not exist" in missing.json()["reason"]


@pytest.mark.parametrize(
    ("records", "loc", "message"),
    [
        ([{"vector": [1, 2, 3]}, {"vector": [1, 2]}], ["body", "vectors", 1, "vector"], "2 dimensions"),
        (
            [{"vector": [1, 2, 3]}, {"id": "", "vector": [1, 2, 3]}],
            ["body", "vectors", 1, "id"],
            "at least 1",
        ),
        ([{"id": "x" * 257, "vector": [1, 2, 3]}], ["body", "vectors", 0, "id"], "at most 256"),
        (
            [{"id": "a", "vector": [1, 2, 3]}, {"id": "a", "vector": [1, 2, 3]}],
            ["body", "vectors", 1, "id"],
            "record 0",
        ),
        (
            [{"vector": [1, 2, 3], "metadata": {"size": "big"}}],
            ["body", "vectors", 0, "metadata", "size"],
            "integer",
        ),
        ([{"text": "no vector"}], ["body", "vectors", 0, "vector"], "required"),
        ([], ["body", "vectors"], "at least 1"),
    ],
)
async def test_bad_records_get_422_naming_index_and_field_and_publish_nothing(
    embedded_settings: Settings, records: list[object], loc: list[object], message: str
) -> None:
    app = create_app(embedded_settings)
    async with serving(app) as client:
        await create(client, metadata_schema={"size": "integer"})
        answer = await client.post("/api/v1/datasets/docs/vectors", json={"vectors": records})
        assert answer.status_code == 422, answer.text
        problems = answer.json()["detail"]
        assert any(p["loc"][: len(loc)] == loc and message in p["msg"] for p in problems), problems
        async with app.state.services.sessions() as session:
            assert (
                await session.scalar(select(func.count()).select_from(BusCommandRow)) == 1
            )  # the create only


async def test_nan_and_unknown_dataset_are_refused(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await create(client)
        nan = await client.post(
            "/api/v1/datasets/docs/vectors",
            content='{"vectors": [{"vector": [1, NaN, 3]}]}',
            headers={"content-type": "application/json"},
        )
        assert nan.status_code == 422 and nan.json()["detail"][0]["loc"][:4] == [
            "body",
            "vectors",
            0,
            "vector",
        ]
        infinite = await client.post(
            "/api/v1/datasets/docs/vectors",
            content='{"vectors": [{"vector": [1, 2, 3], "metadata": {"deep": [{"x": Infinity}]}}]}',
            headers={"content-type": "application/json"},
        )
        assert infinite.status_code == 422 and "finite" in infinite.text
        assert infinite.json()["detail"][0]["loc"][:4] == ["body", "vectors", 0, "metadata"]
        unknown = await client.post(
            "/api/v1/datasets/other/vectors", json={"vectors": [{"vector": [1, 2, 3]}]}
        )
        assert unknown.status_code == 404


def test_a_redelivered_upsert_is_recognised_and_not_applied_twice(tmp_path: Path) -> None:
    store = DatasetStore(str(tmp_path))
    apply_commands(
        [CreateDataset(tenant="t", dataset="d", payload=CreateDatasetPayload(dimensions=2))], store
    )
    upsert = UpsertVectors(
        tenant="t",
        dataset="d",
        payload=UpsertVectorsPayload(ids=["a", "b"], vectors=[[1, 2], [3, 4]]),  # type: ignore[arg-type]
    )
    (first,) = apply_commands([upsert], store)
    # A new store is a restarted worker: it knows only what DeepLake committed.
    (again,) = apply_commands([upsert], DatasetStore(str(tmp_path)))
    assert isinstance(first, VectorsUpserted) and isinstance(again, VectorsUpserted)
    assert first.id == again.id and again.payload.vector_count == 2
    assert len(deeplake.open_read_only(str(tmp_path / "t" / "d"))) == 2


async def test_delete_by_filter_removes_exactly_the_matching_vectors(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await create(client, metadata_schema={"size": "integer", "lang": "string"})
        url = "/api/v1/datasets/docs/vectors"
        records = [
            {"id": f"v{i}", "vector": [i, 0, 0], "metadata": {"size": i, "lang": "en" if i % 2 else "fr"}}
            for i in range(10)
        ]
        assert (await client.post(f"{url}?wait=true", json={"vectors": records})).json()[
            "status"
        ] == "applied"

        deleted = await client.post(
            f"{url}/delete?wait=true", json={"filter": {"size": {"$gte": 4}, "lang": {"$ne": "fr"}}}
        )
        assert deleted.json()["status"] == "applied", deleted.text
        assert set(stored(embedded_settings, "docs")) == {f"v{i}" for i in (0, 1, 2, 3, 4, 6, 8)}

        bad = await client.post(f"{url}/delete", json={"filter": {"$and": [{"size": {"$lt": [1]}}]}})
        assert bad.status_code == 422 and "/$and/0/size/$lt" in bad.text, bad.text
        everything = await client.post(f"{url}/delete", json={"filter": {}})
        assert everything.status_code == 422 and "every vector" in everything.text


async def test_packed_vectors_are_stored_exactly_and_bad_ones_refused(embedded_settings: Settings) -> None:
    def packed(*values: float) -> str:
        return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()

    async with serving(create_app(embedded_settings)) as client:
        await create(client)
        url = "/api/v1/datasets/docs/vectors"
        mixed = [{"id": "p", "vector": packed(0.1, 0.2, 0.3)}, {"id": "l", "vector": [1, 2, 3]}]
        assert (await client.post(f"{url}?wait=true", json={"vectors": mixed})).json()["status"] == "applied"
        rows = stored(embedded_settings, "docs")
        assert rows["p"][0] == np.asarray([0.1, 0.2, 0.3], dtype=np.float32).tolist()
        assert rows["l"][0] == [1.0, 2.0, 3.0]

        for vector, message in [
            (packed(1, 2), "2 dimensions"),
            ("not base64!", "base64"),
            (base64.b64encode(b"12345").decode(), "multiple of 4"),
            (packed(1, float("nan"), 3), "value 1 is NaN"),
        ]:
            answer = await client.post(url, json={"vectors": [{"vector": vector}]})
            assert answer.status_code == 422 and message in answer.text, (message, answer.text)
            assert answer.json()["detail"][0]["loc"][:4] == ["body", "vectors", 0, "vector"]
