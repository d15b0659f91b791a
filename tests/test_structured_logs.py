"""Every role logs one JSON object a line with its context; the request id goes in and out over HTTP and gRPC;
no key and no vector reaches a log line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from entrypoints.grpc_api.v1 import tributary_pb2_grpc as pb_grpc
from entrypoints.http_app import create_app
from tests.helpers import ADMIN_KEY, eventually, serving
from tests.processes import free_port, serve, tributary_env, wait_ready
from tributary.auth.keys import parse
from tributary.settings import Settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
# Digits no log line would hold by chance: any of them in a log means a vector was logged.
VECTOR = [0.1357913, -0.2468024, 0.3692581, 0.4812759]
QUERY = [0.9753197, 0.8642086, -0.7531975, 0.6420864]
DIGITS = [f"{abs(x):.7f}"[2:] for x in VECTOR + QUERY]


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the log as its JSON object (failing on the first line that is not one)."""
    lines = []
    for number, line in enumerate(log.read_text().splitlines(), 1):
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{log.name}:{number} is not JSON: {line!r}") from None
        assert isinstance(parsed, dict), line
        lines.append(parsed)
    return lines


@pytest.mark.kafka
async def test_every_role_logs_json_lines_with_the_request_context_and_no_secret(
    distributed_settings: Settings, tmp_path: Path
) -> None:
    grpc_port = free_port()
    env = tributary_env(distributed_settings, TRIBUTARY_ACCESS_LOG="true")
    command_port, query_port = free_port(), free_port()
    logs = {role: tmp_path / f"{role}.log" for role in ("applier", "projector", "command-api", "query-api")}
    processes = {
        "applier": serve("applier", env, logs["applier"]),
        "projector": serve("projector", env, logs["projector"]),
        "command-api": serve("command-api", env, logs["command-api"], command_port),
        # Two processes (uvicorn's --workers): each configures its logging again.
        "query-api": serve(
            "query-api",
            env | {"TRIBUTARY_GRPC_PORT": str(grpc_port)},
            logs["query-api"],
            query_port,
            workers=2,
        ),
    }
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        wait_ready(command_port, processes["command-api"], logs["command-api"])
        wait_ready(query_port, processes["query-api"], logs["query-api"])
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{command_port}/api/v1", timeout=60
        ) as writes:
            created = await writes.post(
                "/datasets?wait=true", json={"name": "logged", "dimensions": 4}, headers=admin
            )
            assert created.status_code == 200, created.text
            upserted = await writes.post(
                "/datasets/logged/vectors?wait=true",
                json={"vectors": [{"id": "a", "vector": VECTOR}]},
                headers=admin | {"X-Request-ID": "upsert-1", "traceparent": TRACEPARENT},
            )
            assert upserted.status_code == 200, upserted.text
            assert upserted.headers["x-request-id"] == "upsert-1"
            wrong = await writes.post(
                "/datasets/logged/vectors", json={"vectors": [{"vector": [*VECTOR, 0.5]}]}, headers=admin
            )
            assert wrong.status_code == 422 and len(wrong.headers["x-request-id"]) == 32
            made = await writes.post(
                "/admin/keys", json={"tenant": "default", "roles": ["reader"]}, headers=admin
            )
            assert made.status_code == 201, made.text
            reader_key = made.json()["key"]
        reader = {"Authorization": f"Bearer {reader_key}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{query_port}/api/v1", timeout=60) as reads:

            async def found() -> httpx.Response | None:
                answer = await reads.post(
                    "/datasets/logged/search",
                    json={"vector": QUERY, "k": 1},
                    headers=reader | {"X-Request-ID": "search-1"},
                )
                return answer if answer.status_code == 200 and answer.json()["results"] else None

            assert (await eventually(found)).headers["x-request-id"] == "search-1"
            refused = await reads.get("/datasets", headers={"Authorization": f"Bearer {ADMIN_KEY[:-4]}zzzz"})
            assert refused.status_code == 401 and "x-request-id" in refused.headers
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            datasets = pb_grpc.DatasetsStub(channel)
            listing = datasets.List(
                pb.ListDatasetsRequest(),
                metadata=(("authorization", f"Bearer {reader_key}"), ("x-request-id", "grpc-1")),
            )
            await listing
            assert ("x-request-id", "grpc-1") in tuple(await listing.trailing_metadata())
            with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
                await datasets.List(pb.ListDatasetsRequest(), metadata=(("x-request-id", "grpc-2"),))
            assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert ("x-request-id", "grpc-2") in tuple(unauthenticated.value.trailing_metadata())
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    lines = {role: json_lines(log) for role, log in logs.items()}
    for role, records in lines.items():
        assert records, f"{role} logged nothing"
        for record in records:
            assert {"time", "level", "logger", "message"} <= record.keys(), record
            assert record["role"] == role, record
    # The access log line of a request carries its id, its trace id, its tenant and its dataset.
    upsert = [r for r in lines["command-api"] if r.get("request_id") == "upsert-1"]
    assert upsert and all(r["trace_id"] == TRACE_ID for r in upsert), upsert
    assert any(r["tenant"] == "default" and r["dataset"] == "logged" for r in upsert), upsert
    search = [r for r in lines["query-api"] if r.get("request_id") == "search-1"]
    assert any(r.get("tenant") == "default" and r.get("dataset") == "logged" for r in search), search
    assert "trace_id" not in search[0]
    text = "\n".join(log.read_text() for log in logs.values())
    secrets = [parsed.secret for parsed in (parse(ADMIN_KEY), parse(reader_key)) if parsed is not None]
    assert len(secrets) == 2
    assert not [secret for secret in secrets if secret in text]
    assert not [digits for digits in DIGITS if digits in text]


async def test_the_request_id_goes_in_and_out_of_every_answer(embedded_settings: Settings) -> None:
    app = create_app(embedded_settings)

    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom", boom)
    async with serving(app) as client:
        given = await client.get("/api/v1/datasets", headers={"X-Request-ID": "abc.DEF_1-2:3"})
        assert given.status_code == 200 and given.headers["x-request-id"] == "abc.DEF_1-2:3"
        for insane in ("two words", "x" * 200, '"quoted"', ""):
            replaced = await client.get("/api/v1/datasets", headers={"X-Request-ID": insane})
            assert replaced.headers["x-request-id"] != insane and len(replaced.headers["x-request-id"]) == 32
        made = [(await client.get("/nowhere")).headers["x-request-id"] for _ in range(2)]
        assert made[0] != made[1]
        too_big = await client.post(
            "/api/v1/datasets",
            content=b"x" * (embedded_settings.max_body_bytes + 1),
            headers={"X-Request-ID": "big"},
        )
        assert too_big.status_code == 413 and too_big.headers["x-request-id"] == "big"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://tributary") as client,
    ):
        failed = await client.get("/boom", headers={"X-Request-ID": "failed-1"})
        assert failed.status_code == 500 and failed.headers["x-request-id"] == "failed-1"
