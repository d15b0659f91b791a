"""The Python SDK against a real server: embedded mode, and once through Kafka."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from tributary_client import (
    AsyncTributary,
    Conflict,
    InvalidRequest,
    NotFound,
    Tributary,
    Unauthorized,
    models,
)
from tributary_client.errors import BatchFailed

from tests.helpers import ADMIN_KEY

DIMENSIONS = 8


def records(count: int, start: int = 0) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(start)
    for i in range(start, start + count):
        yield {"id": f"r{i}", "vector": rng.random(DIMENSIONS, dtype=np.float32), "metadata": {"n": i}}


class DropFirstAnswer(httpx.AsyncBaseTransport):
    """A network that loses the answer to the first upsert: the server gets and applies the request, the
    client sees the connection drop."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lost: list[httpx.Response] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/vectors") and not self.lost:
            await response.aread()
            self.lost.append(response)
            raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_batches_stream_in_packed_and_a_session_read_sees_them(embedded_url: str) -> None:
    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        await client.create_dataset("docs", DIMENSIONS, metadata_schema={"n": "integer"})
        report = await client.upsert_many("docs", records(2_500), batch_size=1_000, in_flight=2)
        assert report.records == 2_500
        assert len(report.batches) == 3
        # No wait: the client carries the last write's token and reads at session consistency.
        assert await client.count("docs") == 2_500
        assert await client.count("docs", filter={"n": {"$lt": 100}}) == 100
        found = await client.get("docs", ["r7", "missing"])
        assert [view.id for view in found] == ["r7"]
        expected = list(records(8))[7]["vector"]
        assert np.allclose(found[0].vector or [], expected)


async def test_paging_to_the_end(embedded_url: str) -> None:
    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        await client.create_dataset("docs", DIMENSIONS)
        await client.upsert_many("docs", records(1_234), batch_size=500, wait=True)
        seen = [view.id async for view in client.scroll("docs", page_size=100)]
        assert sorted(seen) == sorted(f"r{i}" for i in range(1_234))
        query = np.ones(DIMENSIONS, dtype=np.float32)
        pages: list[str] = []
        offset = 0
        while True:
            page = await client.search("docs", query, k=50, offset=offset)
            pages.extend(view.id for view in page.results)
            if page.next_offset is None or len(pages) >= 300:
                break
            offset = page.next_offset
        assert len(pages) == len(set(pages)) == 300


async def test_a_batch_whose_answer_was_lost_is_retried_and_applied_once(embedded_url: str) -> None:
    network = DropFirstAnswer()
    async with AsyncTributary(embedded_url, ADMIN_KEY, transport=network) as client:
        await client.create_dataset("docs", DIMENSIONS)
        accepted = await client.upsert("docs", list(records(10)), wait=True)
        # The retry carried the first attempt's Idempotency-Key: the server answered it with the first operation.
        first = network.lost[0].json()
        assert accepted.operation_id == first["operation_id"]
        assert await client.count("docs") == 10
        operation = await client.wait_for(accepted)
        assert operation.status == "applied"


async def test_errors_are_typed_with_the_record_at_fault(embedded_url: str) -> None:
    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        await client.create_dataset("docs", DIMENSIONS)
        bad = [*records(2), {"id": "short", "vector": [0.5, 0.5]}]
        with pytest.raises(InvalidRequest) as refused:
            await client.upsert("docs", bad)
        assert refused.value.status == 422
        assert refused.value.index == 2
        assert refused.value.field == "vector"
        with pytest.raises(NotFound):
            await client.search("nothing-here", np.ones(DIMENSIONS))
    async with AsyncTributary(embedded_url, "trb_wrong_key") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.list_datasets()


async def test_reads_at_a_past_version_answer_what_it_held(embedded_url: str) -> None:
    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        await client.create_dataset("docs", DIMENSIONS)
        first = await client.upsert("docs", list(records(10)), wait=True)
        await client.upsert("docs", list(records(5, start=10)), wait=True)
        await client.delete("docs", ids=["r0"], wait=True)
        (then,) = [v.version for v in await client.versions("docs") if first.operation_id in v.operations]
        # The client's remembered token is not sent with a version (the server would refuse the pair).
        assert await client.count("docs", version=then) == 10
        assert await client.count("docs") == 14
        assert [view.id for view in await client.get("docs", ["r0", "r12"], version=then)] == ["r0"]
        assert len([view async for view in client.scroll("docs", page_size=3, version=then)]) == 10
        page = await client.search("docs", next(records(1))["vector"], k=1, version=then)
        assert (page.version, page.consistency, page.results[0].id) == (then, "fixed", "r0")
        with pytest.raises(InvalidRequest):
            await client.count("docs", version=then, consistency="strong")
        with pytest.raises(NotFound):
            await client.count("docs", version="no-such-version")


async def test_a_snapshot_is_restored_into_a_new_name_and_over_its_dataset(embedded_url: str) -> None:
    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        await client.create_dataset("docs", DIMENSIONS)
        await client.upsert("docs", list(records(10)), wait=True)
        taken = await client.create_snapshot("docs", wait=True)
        assert taken.status == "applied"
        snapshot_id = taken.operation_id
        await client.upsert("docs", list(records(5, start=10)))
        await client.delete("docs", ids=["r0"])
        assert await client.count("docs") == 14
        [listed] = await client.list_snapshots("docs")
        assert listed == await client.get_snapshot("docs", snapshot_id)
        assert (listed.snapshot_id, listed.dataset, listed.vector_count) == (snapshot_id, "docs", 10)
        # The snapshot's DeepLake version is tagged, and a read may name it by the snapshot's id.
        assert f"snapshot-{snapshot_id}" in next(v.tags for v in await client.versions("docs") if v.tags)
        assert await client.count("docs", version=snapshot_id) == 10

        # No wait: the restore's token is remembered under the dataset it wrote, which a session read waits for.
        await client.restore_snapshot("docs", snapshot_id, target="copy")
        assert await client.count("copy") == 10
        assert [view.id for view in await client.get("copy", ["r0", "r12"])] == ["r0"]
        assert (await client.get_dataset("copy")).dimensions == DIMENSIONS
        with pytest.raises(Conflict):
            await client.restore_snapshot("docs", snapshot_id, target="copy")

        restored = await client.restore_snapshot("docs", snapshot_id, wait=True)
        assert restored.status == "applied"
        assert await client.count("docs") == 10
        assert [view.id for view in await client.get("docs", ["r0", "r12"])] == ["r0"]
        [stored] = await client.get("docs", ["r3"])
        assert np.allclose(stored.vector or [], list(records(4))[3]["vector"])


async def test_snapshots_are_kept_deleted_and_a_missing_one_is_not_found(embedded_url: str) -> None:
    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        await client.create_dataset("docs", DIMENSIONS)
        await client.upsert("docs", list(records(3)))
        first = await client.create_snapshot("docs", wait=True)
        await client.upsert("docs", list(records(3, start=3)))
        # The retention applies after the new snapshot: only it is kept.
        second = await client.create_snapshot("docs", keep_last=1, wait=True)
        assert [s.snapshot_id for s in await client.list_snapshots("docs")] == [second.operation_id]
        assert (await client.get_snapshot("docs", second.operation_id)).vector_count == 6
        with pytest.raises(NotFound):
            await client.get_snapshot("docs", first.operation_id)
        assert (await client.delete_snapshot("docs", second.operation_id, wait=True)).status == "applied"
        assert await client.list_snapshots("docs") == []
        for missing in (
            client.get_snapshot("docs", second.operation_id),
            client.delete_snapshot("docs", second.operation_id),
            client.restore_snapshot("docs", second.operation_id, target="copy"),
        ):
            with pytest.raises(NotFound):
                await missing
        with pytest.raises(NotFound):
            await client.create_snapshot("nothing-here")


async def test_the_snapshot_schedule_round_trips(embedded_url: str) -> None:
    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        await client.create_dataset("docs", DIMENSIONS)
        with pytest.raises(NotFound):
            await client.get_snapshot_schedule("docs")
        made = await client.set_snapshot_schedule("docs", 3_600, keep_last=3)
        assert (made.dataset, made.every_s, made.keep_last, made.max_age_days) == ("docs", 3_600, 3, None)
        assert await client.get_snapshot_schedule("docs") == made
        changed = await client.set_snapshot_schedule("docs", 7_200, max_age_days=1.5)
        assert (changed.every_s, changed.keep_last, changed.max_age_days) == (
            7_200,
            None,
            models.MaxAgeDays(1.5),
        )
        assert await client.get_snapshot_schedule("docs") == changed
        with pytest.raises(InvalidRequest) as refused:
            await client.set_snapshot_schedule("docs", 0.5)
        assert refused.value.field == "every_s"
        await client.delete_snapshot_schedule("docs")
        with pytest.raises(NotFound):
            await client.get_snapshot_schedule("docs")


async def test_named_vector_fields_are_written_and_searched_alone_and_fused(embedded_url: str) -> None:
    rng = np.random.default_rng(3)
    images = rng.random((6, 4), dtype=np.float32)
    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        await client.create_dataset("media", DIMENSIONS, vectors={"image": {"dimensions": 4, "metric": "l2"}})
        assert (await client.get_dataset("media")).vectors["image"].dimensions == 4
        given = [
            {
                **record,
                "vectors": {"image": images[i]} if i % 2 else {},
                "text": "a kite" if i == 4 else "a photo",
            }
            for i, record in enumerate(records(6))
        ]
        await client.upsert("media", given, wait=True)
        page = await client.search("media", images[3], field="image", k=10, include=["vectors"])
        assert [view.id for view in page.results] == [
            "r3",
            *sorted({"r1", "r5"}, key=lambda i: np.linalg.norm(images[int(i[1:])] - images[3])),
        ]
        assert np.allclose(page.results[0].vectors["image"], images[3])  # type: ignore[index]
        # r4 has no image: found first through its words and its default vector.
        queries = [
            {"field": "image", "vector": images[3]},
            {"vector": given[4]["vector"]},
            {"mode": "text", "text": "kite", "weight": 2.0},
        ]
        fused = await client.search("media", queries=queries, fusion="rrf", k=3)
        assert fused.results[0].id == "r4"


async def test_images_are_sent_searched_and_returned(embedded_url: str) -> None:
    def picture(i: int) -> bytes:
        cells = np.random.default_rng(i).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(np.kron(cells, np.ones((8, 8, 1), dtype=np.uint8))).save(out, format="PNG")
        return out.getvalue()

    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        field = {"dimensions": 256, "embedder": {"kind": "local-image"}}
        await client.create_dataset("album", DIMENSIONS, vectors={"image": field})
        given = [{**record, "images": {"image": picture(i)}} for i, record in enumerate(records(5))]
        await client.upsert("album", given, wait=True)
        page = await client.search("album", field="image", image=picture(2), k=2, include=["images"])
        assert page.results[0].id == "r2"
        assert base64.b64decode(page.results[0].images["image"]) == picture(2)  # type: ignore[index]
        fused = await client.search("album", queries=[{"field": "image", "image": picture(4)}], k=1)
        assert fused.results[0].id == "r4"


def test_the_blocking_client_makes_the_same_calls(embedded_url: str) -> None:
    with Tributary(embedded_url, ADMIN_KEY) as client:
        client.create_dataset("docs", DIMENSIONS)
        accepted = client.upsert("docs", list(records(20)))
        assert client.last_token("docs") == accepted.consistency_token
        assert client.count("docs") == 20
        assert len(list(client.scroll("docs", page_size=7))) == 20
        client.delete("docs", ids=["r0", "r1"])
        assert client.count("docs") == 18
        assert [d.name for d in client.list_datasets()] == ["docs"]
        assert client.count("docs", version=client.versions("docs")[-2].version) == 20
        snapshot = client.create_snapshot("docs", wait=True)
        client.upsert("docs", list(records(2, start=20)))
        client.restore_snapshot("docs", snapshot.operation_id, target="copy", wait=True)
        assert client.count("copy") == 18
        assert [s.snapshot_id for s in client.list_snapshots("docs")] == [snapshot.operation_id]
        assert client.get_snapshot("docs", snapshot.operation_id).vector_count == 18
        client.set_snapshot_schedule("docs", 60)
        assert client.get_snapshot_schedule("docs").every_s == 60
        client.delete_snapshot_schedule("docs")
        client.delete_snapshot("docs", snapshot.operation_id, wait=True)
        assert client.list_snapshots("docs") == []


@pytest.mark.kafka
async def test_through_kafka_a_session_read_sees_the_previous_write(kafka_url: str) -> None:
    command_url, query_url = kafka_url.split()
    async with AsyncTributary(command_url, ADMIN_KEY, read_url=query_url) as client:
        await client.create_dataset("docs", DIMENSIONS)
        for round_ in range(3):
            await client.upsert("docs", list(records(100, start=round_ * 100)))
            # Each read waits for exactly the previous write, through the applier and the query replica.
            assert await client.count("docs") == 100 * (round_ + 1)
        report = await client.upsert_many("docs", records(1_000, start=300), batch_size=250)
        assert len(report.batches) == 4
        assert await client.count("docs") == 1_300


async def test_after_a_refused_batch_no_later_batch_counts_as_acknowledged(embedded_url: str) -> None:
    batches: list[int] = []
    stream = list(records(500))
    stream[250] = {"id": "short", "vector": [0.5]}  # in the third batch of 100
    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        await client.create_dataset("docs", DIMENSIONS)
        with pytest.raises(BatchFailed) as refused:
            await client.upsert_many(
                "docs", stream, batch_size=100, in_flight=3, on_batch=lambda n, _: batches.append(n)
            )
    assert refused.value.record == 250
    # The batches behind the refused one finished, but a resume must start at the refused batch: only the run
    # from the start of the stream is reported.
    assert batches == [100, 100]


async def test_numpy_matrices_arrow_tables_and_dataframes_stream_in(embedded_url: str) -> None:
    import pandas as pd
    import pyarrow as pa

    rng = np.random.default_rng(3)
    async with AsyncTributary(embedded_url, ADMIN_KEY) as client:
        await client.create_dataset("docs", DIMENSIONS, metadata_schema={"lang": "string"})
        await client.upsert_many("docs", rng.random((250, DIMENSIONS), dtype=np.float32), batch_size=100)
        vectors = rng.random((120, DIMENSIONS), dtype=np.float32)
        table = pa.table(
            {
                "id": [f"a{i}" for i in range(120)],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIMENSIONS),
                "lang": ["en"] * 120,
            }
        )
        await client.upsert_many("docs", table, batch_size=50)
        frame = pd.DataFrame({"id": [f"p{i}" for i in range(30)], "vector": list(vectors[:30]), "lang": "fr"})
        await client.upsert_many("docs", frame)
        assert await client.count("docs") == 400
        assert await client.count("docs", filter={"lang": "en"}) == 120
        [stored] = await client.get("docs", ["a7"])
        assert np.allclose(stored.vector or [], vectors[7]) and stored.metadata == {"lang": "en"}
