"""Nothing without a credential; one tenant never sees or touches another's data; roles decide in one place;
a revoked key is refused by another replica once its key cache ttl passes."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import jwt
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import select

from entrypoints.http_app import create_app
from events import DeleteDataset, Topics, partition_key
from tests.clock import FakeClock
from tests.helpers import ADMIN_KEY, eventually, serving
from tests.kafka_tools import workers
from tests.processes import free_port, serve, tributary_env, wait_ready
from tributary.audit import AuditEvent
from tributary.auth.authenticate import install_bootstrap_key
from tributary.auth.key_cache import KeyCache
from tributary.db.models import AuditRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.settings import Settings

OPEN = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/asyncapi.json",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}


async def test_every_route_but_health_metrics_and_docs_answers_401_without_a_credential(
    embedded_settings: Settings,
) -> None:
    app = create_app(embedded_settings)
    async with serving(app, key=None) as anonymous:
        routes = app.openapi()["paths"]
        assert len(routes) > 10
        checked = 0
        for path, methods in routes.items():
            if path in OPEN:
                continue
            url = re.sub(r"\{[^}]+\}", "x", path)
            for method in methods:
                answer = await anonymous.request(method.upper(), url, json={})
                assert answer.status_code == 401, (
                    f"{method.upper()} {path}: {answer.status_code} {answer.text}"
                )
                assert answer.headers.get("www-authenticate") == "Bearer"
                checked += 1
        assert checked >= 12
        assert (await anonymous.get("/healthz")).status_code == 200
        bad = await anonymous.get(
            "/api/v1/datasets", headers={"Authorization": "Bearer trb_aaaaaaaa_" + "x" * 43}
        )
        assert bad.status_code == 401


async def key_for(
    admin: httpx.AsyncClient, tenant: str, *roles: str, datasets: list[str] | None = None
) -> str:
    created = await admin.post(
        "/api/v1/admin/keys", json={"tenant": tenant, "roles": list(roles), "datasets": datasets}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def as_(client: httpx.AsyncClient, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_tenants_are_isolated_and_roles_decide(distributed_settings: Settings) -> None:
    settings = distributed_settings
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
        serving(create_app(settings, "query-api")) as queries,
    ):
        # The operator key makes each tenant's first keys.
        alice, bob = await key_for(commands, "alice", "admin"), await key_for(commands, "bob", "admin")
        a, b = as_(commands, alice), as_(commands, bob)
        assert (
            await commands.post(
                "/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 2}, headers=a
            )
        ).json()["status"] == "applied"
        written = await commands.post(
            "/api/v1/datasets/docs/vectors", json={"vectors": [{"id": "secret", "vector": [1, 0]}]}, headers=a
        )
        token = written.json()["consistency_token"]
        assert (
            await queries.get(
                f"/api/v1/datasets/docs/vectors/secret?consistency=session&token={token}", headers=a
            )
        ).status_code == 200

        # Bob cannot read, search, write, delete, or learn that alice's dataset exists: 404 as for none at all.
        assert (await queries.get("/api/v1/datasets", headers=b)).json()["datasets"] == []
        for answer in [
            await queries.get("/api/v1/datasets/docs", headers=b),
            await queries.get("/api/v1/datasets/docs/vectors/secret", headers=b),
            await queries.post("/api/v1/datasets/docs/search", json={"vector": [1, 0]}, headers=b),
            await queries.post("/api/v1/datasets/docs/count", json={}, headers=b),
            await commands.post(
                "/api/v1/datasets/docs/vectors", json={"vectors": [{"vector": [0, 1]}]}, headers=b
            ),
            await commands.post("/api/v1/datasets/docs/vectors/delete", json={"ids": ["secret"]}, headers=b),
            await commands.delete("/api/v1/datasets/docs", headers=b),
        ]:
            assert answer.status_code == 404, answer.text
            assert "docs" in answer.text and "alice" not in answer.text
        # Bob may have his own "docs": names are per tenant.
        assert (
            await commands.post(
                "/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 3}, headers=b
            )
        ).json()["status"] == "applied"

        # A command straight on Kafka carries its tenant: bob's DeleteDataset of "docs" deletes bob's, not alice's.
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(
                Topics(settings.topic_prefix).commands,
                DeleteDataset(tenant="bob", dataset="docs").model_dump_json().encode(),
                key=partition_key("bob", "docs"),
            )
        finally:
            await producer.stop()

        async def bobs_gone() -> bool | None:
            return (
                True if (await queries.get("/api/v1/datasets/docs", headers=b)).status_code == 404 else None
            )

        await eventually(bobs_gone)
        assert (await queries.get("/api/v1/datasets/docs", headers=a)).json()["vector_count"] == 1

        # Roles, and a key limited to one dataset.
        reader = as_(commands, await key_for(commands, "alice", "reader"))
        assert (
            await commands.post(
                "/api/v1/datasets/docs/vectors", json={"vectors": [{"vector": [0, 1]}]}, headers=reader
            )
        ).status_code == 403
        assert (await queries.post("/api/v1/datasets/docs/count", json={}, headers=reader)).status_code == 200
        writer = as_(commands, await key_for(commands, "alice", "writer"))
        assert (
            await commands.post(
                "/api/v1/admin/keys", json={"tenant": "alice", "roles": ["reader"]}, headers=writer
            )
        ).status_code == 403
        assert (
            await commands.post("/api/v1/admin/keys", json={"tenant": "bob", "roles": ["reader"]}, headers=a)
        ).status_code == 403
        await commands.post("/api/v1/datasets?wait=true", json={"name": "other", "dimensions": 2}, headers=a)
        limited = as_(commands, await key_for(commands, "alice", "reader", datasets=["docs"]))
        listed = (await queries.get("/api/v1/datasets", headers=limited)).json()["datasets"]
        assert [d["name"] for d in listed] == ["docs"]
        assert (
            await queries.post("/api/v1/datasets/other/count", json={}, headers=limited)
        ).status_code == 403


async def test_a_revoked_key_is_refused_by_another_replica_once_its_key_cache_ttl_passes(
    distributed_settings: Settings,
) -> None:
    query_app = create_app(distributed_settings, "query-api")
    async with (
        serving(create_app(distributed_settings, "command-api")) as commands,
        serving(query_app) as queries,
    ):
        clock = FakeClock()
        query_app.state.services.key_cache = KeyCache(distributed_settings.key_cache_ttl_s, clock=clock)
        created = await commands.post("/api/v1/admin/keys", json={"tenant": "default", "roles": ["reader"]})
        key = as_(commands, created.json()["key"])
        assert (await queries.get("/api/v1/datasets", headers=key)).status_code == 200
        # Authenticated (a reader may not list keys): the command API has verified the key too.
        assert (await commands.get("/api/v1/admin/keys", headers=key)).status_code == 403
        listed = (await commands.get("/api/v1/admin/keys")).json()["keys"]
        assert created.json()["id"] in {k["id"] for k in listed} and all("hash" not in k for k in listed)
        assert (await commands.delete(f"/api/v1/admin/keys/{created.json()['id']}")).status_code == 204
        # The replica that revoked the key forgets it at once; another one trusts its cache for the ttl...
        assert (await commands.get("/api/v1/admin/keys", headers=key)).status_code == 401
        assert (await queries.get("/api/v1/datasets", headers=key)).status_code == 200
        # ...and looks the key up again, and refuses it, as soon as the ttl has passed.
        clock.advance(distributed_settings.key_cache_ttl_s)
        assert (await queries.get("/api/v1/datasets", headers=key)).status_code == 401


async def test_replicas_starting_together_all_install_the_bootstrap_key(
    distributed_settings: Settings,
) -> None:
    engines = [engine_for(distributed_settings) for _ in range(6)]
    try:
        installed = await asyncio.gather(
            *(install_bootstrap_key(make_sessionmaker(engine), distributed_settings) for engine in engines)
        )
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))
    assert installed == [None] * len(engines)


async def test_a_signed_token_maps_to_its_tenant_and_roles(embedded_settings: Settings) -> None:
    secret, issuer, audience = "k" * 32, "https://idp.example", "tributary"
    settings = embedded_settings.model_copy(
        update={
            "jwt_algorithm": "HS256",
            "jwt_secret": secret,
            "jwt_issuer": issuer,
            "jwt_audience": audience,
        }
    )
    settings = Settings.model_validate(settings.model_dump() | {"jwt_secret": secret, "admin_key": ADMIN_KEY})

    def token(**claims: object) -> dict[str, str]:
        now = int(time.time())
        body = {
            "sub": "u1",
            "iss": issuer,
            "aud": audience,
            "exp": now + 60,
            "tenant": "default",
            "roles": ["reader"],
        }
        return {"Authorization": f"Bearer {jwt.encode(body | claims, secret, algorithm='HS256')}"}

    async with serving(create_app(settings), key=None) as client:
        assert (await client.get("/api/v1/datasets", headers=token())).status_code == 200
        assert (
            await client.post("/api/v1/datasets", json={"name": "x", "dimensions": 2}, headers=token())
        ).status_code == 403
        for bad in (token(exp=int(time.time()) - 60), token(aud="other")):
            answer = await client.get("/api/v1/datasets", headers=bad)
            assert answer.status_code == 401 and "token refused" in answer.text


async def test_rate_limits_hold_across_two_api_processes_sharing_redis(
    distributed_settings: Settings, tmp_path: Path
) -> None:
    env = tributary_env(
        distributed_settings,
        # One token in 1,000 s: however slowly the requests go, the bucket does not refill during the test.
        TRIBUTARY_RATE_LIMIT_KEY_READS_PER_S="0.001",
        TRIBUTARY_RATE_LIMIT_KEY_READS_BURST="10",
    )
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"replica-{port}.log" for port in ports]
    replicas = [serve("query-api", env, log, port) for port, log in zip(ports, logs, strict=True)]
    try:
        for port, process, log in zip(ports, replicas, logs, strict=True):
            await asyncio.to_thread(wait_ready, port, process, log)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(headers=headers) as client:
            answers = [
                await client.get(f"http://127.0.0.1:{ports[n % 2]}/api/v1/datasets") for n in range(30)
            ]
    finally:
        for process in replicas:
            process.terminate()
            process.wait(timeout=30)
    allowed = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(allowed) == 10 and len(refused) == 20, [a.status_code for a in answers]
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].headers["X-RateLimit-Remaining"] == "0"
    assert allowed[0].headers["X-RateLimit-Limit"] == "10"


async def test_answers_carry_security_headers_cors_is_opt_in_and_bodies_are_bounded(
    embedded_settings: Settings,
) -> None:
    settings = embedded_settings.model_copy(
        update={"cors_origins": ["https://app.example"], "max_body_bytes": 4096}
    )
    async with serving(create_app(settings)) as client:
        answer = await client.get("/api/v1/datasets")
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        preflight = await client.options(
            "/api/v1/datasets",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.options(
            "/api/v1/datasets",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers
        big = await client.post(
            "/api/v1/datasets", content=b"x" * 8192, headers={"content-type": "application/json"}
        )
        assert big.status_code == 413
        assert "Traceback" not in big.text


async def test_writes_key_changes_and_denials_are_audited_in_sql_and_on_kafka(
    distributed_settings: Settings,
) -> None:
    settings = distributed_settings
    async with serving(create_app(settings, "command-api")) as commands:
        await commands.post("/api/v1/datasets", json={"name": "audited", "dimensions": 2})
        await commands.post("/api/v1/admin/keys", json={"tenant": "default", "roles": ["reader"]})
        denied = await commands.post(
            "/api/v1/datasets",
            json={"name": "x", "dimensions": 2},
            headers={"Authorization": "Bearer nonsense"},
        )
        assert denied.status_code == 401
    engine = engine_for(settings)
    async with make_sessionmaker(engine)() as session:
        rows = (await session.scalars(select(AuditRow).order_by(AuditRow.at))).all()
    await engine.dispose()
    seen = [(row.subject, row.action, row.target, row.outcome) for row in rows]
    assert ("bootstrap", "POST", "/api/v1/datasets", 202) in seen
    assert ("bootstrap", "POST", "/api/v1/admin/keys", 201) in seen
    assert ("anonymous", "POST", "/api/v1/datasets", 401) in seen
    assert all(row.tenant in ("default", None) for row in rows)

    consumer = AIOKafkaConsumer(
        Topics(settings.topic_prefix).audit,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    wanted, published = {(s, t, o) for s, _, t, o in seen}, set()

    async def all_published() -> bool | None:
        batches = await consumer.getmany(timeout_ms=1000)
        for record in (r for records in batches.values() for r in records):
            event = AuditEvent.model_validate_json(record.value)
            published.add((event.subject, event.target, event.outcome))
        return True if published >= wanted else None

    await consumer.start()
    try:
        await eventually(all_published, timeout=60)
    finally:
        await consumer.stop()
