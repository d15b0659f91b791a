"""What `/metrics` says about the requests and writes of an embedded app, with bounded labels; and the embedders'
and the rate limiter's counters. The counters are the test process's, so each test reads how much they grow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from entrypoints.http_app import create_app
from events import OpenAIEmbedderConfig
from tests.helpers import sample, serving
from tests.test_embedder_openai import endpoint
from tributary.embedding import Embedders, EmbeddingFailed
from tributary.metrics import observe_since
from tributary.settings import Settings

DIMS = 4


class Growth:
    """The change of `/metrics` samples between two scrapes."""

    def __init__(self, before: str, after: str) -> None:
        self.before, self.after = before, after

    def __call__(self, name: str, **labels: str) -> float:
        return sample(self.after, name, **labels) - sample(self.before, name, **labels)


async def test_requests_are_counted_by_route_template_never_by_raw_path(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as client:
        await client.post("/api/v1/datasets?wait=true", json={"name": "routes", "dimensions": DIMS})
        before = (await client.get("/metrics")).text
        assert (await client.get("/api/v1/datasets/routes/vectors/secret-id-1")).status_code == 404
        assert (await client.get("/api/v1/datasets/routes/vectors/secret-id-2")).status_code == 404
        assert (await client.get("/no/such/secret-path")).status_code == 404
        assert (await client.request("BREW", "/healthz")).status_code == 405
        after = (await client.get("/metrics")).text
    grew = Growth(before, after)
    by_id = {"route": "/api/v1/datasets/{dataset}/vectors/{vector_id}", "method": "GET"}
    assert grew("tributary_http_requests_total", **by_id, status="4xx") == 2
    assert grew("tributary_http_request_duration_seconds_count", **by_id) == 2
    assert grew("tributary_http_requests_total", route="unmatched", method="GET", status="4xx") == 1
    assert grew("tributary_http_requests_total", route="/healthz", method="OTHER", status="4xx") == 1
    assert "secret" not in after and "BREW" not in after


async def test_accepted_writes_and_their_application_are_measured(embedded_settings: Settings) -> None:
    records = 25
    async with serving(create_app(embedded_settings)) as client:
        await client.post("/api/v1/datasets?wait=true", json={"name": "writes", "dimensions": DIMS})
        before = (await client.get("/metrics")).text
        vectors = np.random.default_rng(3).random((records, DIMS)).tolist()
        body = [{"id": f"v{i}", "vector": vector} for i, vector in enumerate(vectors)]
        written = await client.post("/api/v1/datasets/writes/vectors?wait=true", json={"vectors": body})
        assert written.json()["status"] == "applied", written.text
        after = (await client.get("/metrics")).text
    grew = Growth(before, after)
    assert grew("tributary_commands_accepted_total", command="UpsertVectors") == 1
    assert grew("tributary_records_accepted_total", command="UpsertVectors") == records
    # At least the vectors' float32 bytes, packed on the bus (events/vectors.py).
    assert grew("tributary_command_bytes_accepted_total", command="UpsertVectors") >= records * DIMS * 4
    assert grew("tributary_applier_batch_commands_count") >= 1
    assert grew("tributary_applier_batch_commands_sum") >= 1
    assert grew("tributary_applier_apply_seconds_count") >= 1
    assert grew("tributary_applier_commit_seconds_count") >= 1
    assert grew("tributary_ack_to_applied_seconds_count") >= 1
    assert grew("tributary_applied_to_visible_seconds_count") >= 1
    assert sample(after, "tributary_http_requests_total", route="/metrics", method="GET", status="2xx") >= 1


async def test_embedder_calls_and_failures_are_counted_by_kind() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, embedding_endpoints={"e": endpoint("http://127.0.0.1:9/v1")}
    )
    embedders = Embedders(settings)

    def value(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"embedder": "openai"}) or 0.0

    calls, failures = value("tributary_embed_seconds_count"), value("tributary_embed_failures_total")
    try:
        with pytest.raises(EmbeddingFailed):
            await embedders.get(OpenAIEmbedderConfig(model="m", endpoint="e"), 4).embed(["a"])
    finally:
        await embedders.aclose()
    assert value("tributary_embed_seconds_count") == calls + 1
    assert value("tributary_embed_failures_total") == failures + 1


async def test_metrics_answer_in_prometheus_text_format(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings), key=None) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")


def test_a_naive_time_from_a_foreign_producer_is_taken_as_utc() -> None:
    histogram = Histogram("seconds_since", "a test's", registry=CollectorRegistry())
    observe_since(histogram, [datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC).replace(tzinfo=None)])
    assert histogram.collect()[0].samples[-1].value >= 3600  # the sum
