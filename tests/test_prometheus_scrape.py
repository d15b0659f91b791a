"""The metrics as Prometheus sees them: the Prometheus deploy/local/services.sh runs scrapes every distributed role
(real `tributary serve` processes) while a client writes and searches, and its HTTP API answers with the request
counts and latency, the records accepted, the applier's batches and each consumer's lag. And `serve --workers 2`
reports the requests both of its processes answered, whichever answers the scrape."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests import services
from tests.cluster import Cluster
from tests.helpers import ADMIN_KEY, sample
from tests.processes import free_port, serve, tributary_env, wait_ready
from tests.prometheus_tools import query, scraped_by, value_when
from tests.test_deploy_prometheus import dashboard_queries
from tributary.settings import Settings

DIMS = 8
RECORDS = 30
SEARCHES = 5
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def prometheus() -> services.Prometheus:
    return services.prometheus()


async def test_prometheus_scrapes_every_role(
    distributed_settings: Settings, tmp_path: Path, prometheus: services.Prometheus, run_id: str
) -> None:
    cluster = Cluster(distributed_settings, tmp_path)
    try:
        await asyncio.to_thread(cluster.start_all)
        with scraped_by(prometheus, run_id, cluster.ports):
            async with (
                httpx.AsyncClient(
                    base_url=cluster.url("command-api"), headers=HEADERS, timeout=30
                ) as command,
                httpx.AsyncClient(base_url=cluster.url("query-api"), headers=HEADERS, timeout=30) as queries,
            ):
                created = await command.post(
                    "/api/v1/datasets?wait=true", json={"name": "m", "dimensions": DIMS}
                )
                assert created.json()["status"] == "applied", created.text
                vectors = np.random.default_rng(7).random((RECORDS, DIMS)).tolist()
                body = [{"id": f"v{i}", "vector": vector} for i, vector in enumerate(vectors)]
                written = await command.post("/api/v1/datasets/m/vectors?wait=true", json={"vectors": body})
                assert written.json()["status"] == "applied", written.text
                token = written.json()["consistency_token"]
                for _ in range(SEARCHES):
                    found = await queries.post(
                        f"/api/v1/datasets/m/search?consistency=session&token={token}",
                        json={"vector": vectors[0], "k": 3},
                    )
                    assert found.status_code == 200, found.text
                assert (await queries.get("/api/v1/datasets/m/vectors/nope")).status_code == 404

            run = f'run="{run_id}"'
            assert await value_when(prometheus, f"count(up{{{run}}} == 1)", 4) == 4
            writes = (
                f'tributary_http_requests_total{{{run}, role="command-api", '
                'route="/api/v1/datasets/{dataset}/vectors", method="POST", status="2xx"}'
            )
            assert await value_when(prometheus, f"sum({writes})", 1) == 1
            searches = f'tributary_http_requests_total{{{run}, route="/api/v1/datasets/{{dataset}}/search"}}'
            assert await value_when(prometheus, f"sum({searches})", SEARCHES) == SEARCHES
            # A route template, not the raw path: the id of the missing vector is no label.
            missing = (
                f'tributary_http_requests_total{{{run}, route="/api/v1/datasets/{{dataset}}/vectors/{{vector_id}}", '
                'status="4xx"}'
            )
            assert await value_when(prometheus, f"sum({missing})", 1) == 1
            p99 = await value_when(
                prometheus,
                "histogram_quantile(0.99, sum by (le) "
                f"(increase(tributary_http_request_duration_seconds_bucket{{{run}, role='query-api'}}[10m])))",
                0,
            )
            assert p99 > 0
            records = f'tributary_records_accepted_total{{{run}, command="UpsertVectors"}}'
            assert await value_when(prometheus, f"sum({records})", RECORDS) == RECORDS
            # The create and the upsert were each applied in some batch.
            batches = f'tributary_applier_batch_commands_sum{{{run}, role="applier"}}'
            assert await value_when(prometheus, f"sum({batches})", 2) >= 2
            commits = f'tributary_applier_commit_seconds_count{{{run}, role="applier"}}'
            assert await value_when(prometheus, f"sum({commits})", 1) >= 1
            # The write's way to visibility: accepted to applied (the applier), applied to visible (the replica).
            applied = f'tributary_ack_to_applied_seconds_count{{{run}, role="applier"}}'
            assert await value_when(prometheus, f"sum({applied})", 2) >= 2
            visible = f'tributary_applied_to_visible_seconds_count{{{run}, role="query-api"}}'
            assert await value_when(prometheus, f"sum({visible})", 1) >= 1
            # Every consumer's lag, per partition (4), reported and back to 0 once all is applied.
            for consumer, role in (
                ("applier", "applier"),
                ("projector", "projector"),
                ("query-follower", "query-api"),
            ):
                lag = f'tributary_consumer_lag_messages{{{run}, role="{role}", consumer="{consumer}"}}'
                assert await value_when(prometheus, f"count({lag} == 0)", 4) == 4
            pending = f'tributary_vectors_pending_index{{{run}, role="query-api"}}'
            assert await value_when(prometheus, f"count({pending} == 0)", 1) == 1
            memory = f'tributary_index_memory_bytes{{{run}, role="query-api"}}'
            assert await value_when(prometheus, f"sum({memory})", 1) > 0
            # Prometheus takes every query of the Grafana dashboard, and evaluates the alert rules without error.
            for expr in dashboard_queries():
                await query(prometheus, expr.replace("$job", ".*").replace("$__rate_interval", "1m"))
            async with httpx.AsyncClient(timeout=10) as client:
                groups = (await client.get(f"{prometheus.url}/api/v1/rules")).json()["data"]["groups"]
            rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
            assert rules, "deploy/local/services.sh's Prometheus evaluates deploy/prometheus/alerts.yml"
            assert {name: rule["health"] for name, rule in rules.items() if rule["health"] == "err"} == {}
    finally:
        cluster.stop_all()


def test_several_workers_report_every_process(distributed_settings: Settings, tmp_path: Path) -> None:
    """With `--workers 2` each connection is answered by one process or the other; whichever answers `/metrics`
    reports the requests of both (each request on a connection of its own, so both processes take some)."""
    port, log = free_port(), tmp_path / "command-api.log"
    process = serve("command-api", tributary_env(distributed_settings), log, port=port, workers=2)
    healthz = {"route": "/healthz", "method": "GET", "status": "2xx"}

    def healthz_count() -> float:
        return sample(
            httpx.get(f"{url}/metrics", timeout=10).text, "tributary_http_requests_total", **healthz
        )

    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(port, process, log, timeout=180)
        before = healthz_count()
        requests = 40
        for _ in range(requests):
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        assert {healthz_count() - before for _ in range(10)} == {requests}
    finally:
        process.terminate()
        process.wait(timeout=60)
