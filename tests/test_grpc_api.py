"""The gRPC API end to end through real Kafka: the command-api and query-api roles serve it beside HTTP, the
applier and projector run as in production. The twins of the HTTP tests that walk the OpenAPI document walk the
service descriptors here: every RPC refuses a call without credentials, and another tenant's datasets are not found
by any RPC."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from prometheus_client import REGISTRY
from sqlalchemy import select

from entrypoints.grpc_api.servicers import SERVICERS
from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from entrypoints.grpc_api.v1 import tributary_pb2_grpc as pb_grpc
from entrypoints.http_app import create_app
from tests.helpers import ADMIN_KEY, serving
from tests.kafka_tools import workers
from tests.processes import free_port
from tests.test_security import key_for
from tributary.db.models import AuditRow
from tributary.db.session import engine_for, make_sessionmaker
from tributary.settings import Settings

DIMENSIONS = 16
STREAMED = 100_000
PER_MESSAGE = 2_000

METHODS = [
    (service, method) for service in pb.DESCRIPTOR.services_by_name.values() for method in service.methods
]


def auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def packed(vectors: np.ndarray[Any, Any]) -> list[bytes]:
    return [row.astype("<f4").tobytes() for row in vectors]


def caller(channel: grpc.aio.Channel, method: descriptor.MethodDescriptor) -> Callable[..., Any]:
    """A generic stub of one RPC, found in the descriptors rather than written out."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    output = getattr(pb, method.output_type.name)
    make = channel.stream_unary if method.client_streaming else channel.unary_unary
    return make(
        path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=output.FromString
    )


async def call(
    channel: grpc.aio.Channel, method: descriptor.MethodDescriptor, request: Any, key: str | None
) -> grpc.StatusCode:
    rpc = caller(channel, method)
    argument = _stream([request]) if method.client_streaming else request
    try:
        await rpc(argument, metadata=auth(key) if key else None)
    except grpc.aio.AioRpcError as failure:
        return failure.code()
    return grpc.StatusCode.OK


async def _stream(messages: list[Any]) -> AsyncIterator[Any]:
    for message in messages:
        yield message


def details(failure: grpc.aio.AioRpcError) -> list[Any]:
    status = rpc_status.from_call(failure)
    assert status is not None
    found = []
    for holder in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if holder.Is(kind.DESCRIPTOR):
                detail = kind()
                holder.Unpack(detail)
                found.append(detail)
    return found


def test_every_rpc_declares_its_action_and_the_datasets_it_touches() -> None:
    servicers = {servicer.__name__: servicer for servicer in SERVICERS}
    for service, method in METHODS:
        handler = getattr(servicers[service.name], method.name)
        assert handler.declared.scope in ("dataset", "tenant", "operation"), method.full_name


async def test_grpc_end_to_end_through_kafka(distributed_settings: Settings) -> None:
    write_port, read_port = free_port(), free_port()
    write_settings = distributed_settings.model_copy(update={"grpc_port": write_port})
    read_settings = distributed_settings.model_copy(update={"grpc_port": read_port})
    async with (
        workers(distributed_settings, "applier", "projector"),
        serving(create_app(write_settings, "command-api")) as commands,
        serving(create_app(read_settings, "query-api")),
        grpc.aio.insecure_channel(f"127.0.0.1:{write_port}") as writes,
        grpc.aio.insecure_channel(f"127.0.0.1:{read_port}") as reads,
    ):
        alice, bob = await key_for(commands, "alice", "admin"), await key_for(commands, "bob", "admin")
        reader = await key_for(commands, "alice", "reader")
        datasets, vectors = pb_grpc.DatasetsStub(writes), pb_grpc.VectorsStub(writes)
        search, operations = pb_grpc.SearchStub(reads), pb_grpc.OperationsStub(reads)

        # The standard services: health follows readiness, reflection lists the API.
        health = health_pb2_grpc.HealthStub(reads)
        checked = await health.Check(health_pb2.HealthCheckRequest(service="tributary.v1.Search"))
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        reflected = reflection_pb2_grpc.ServerReflectionStub(reads).ServerReflectionInfo(
            _stream([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        async for answer in reflected:
            names = {service.name for service in answer.list_services_response.service}
            assert {"tributary.v1.Datasets", "tributary.v1.Search", "grpc.health.v1.Health"} <= names
            break

        # Create, and the errors of a create.
        created = await datasets.Create(
            pb.CreateDatasetRequest(
                name="docs", dimensions=DIMENSIONS, metadata_schema={"n": "integer"}, wait=True
            ),
            metadata=auth(alice),
        )
        assert created.status == "applied"
        with pytest.raises(grpc.aio.AioRpcError) as exists:
            await datasets.Create(pb.CreateDatasetRequest(name="docs", dimensions=2), metadata=auth(alice))
        assert exists.value.code() == grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(grpc.aio.AioRpcError) as forbidden:
            await datasets.Create(pb.CreateDatasetRequest(name="other", dimensions=2), metadata=auth(reader))
        assert forbidden.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # A client-streaming upsert of 100,000 vectors, then a session read with its token sees all of them.
        rng = np.random.default_rng(7)
        matrix = rng.standard_normal((STREAMED, DIMENSIONS)).astype(np.float32)

        async def messages() -> AsyncIterator[pb.UpsertRequest]:
            for start in range(0, STREAMED, PER_MESSAGE):
                rows = packed(matrix[start : start + PER_MESSAGE])
                yield pb.UpsertRequest(
                    dataset="docs",
                    records=[
                        pb.Record(id=f"v{start + i}", vector=row, metadata_json=json.dumps({"n": start + i}))
                        for i, row in enumerate(rows)
                    ],
                )

        summary = await vectors.UpsertStream(messages(), metadata=auth(alice))
        assert summary.records == STREAMED
        assert len(summary.operation_ids) == STREAMED // PER_MESSAGE
        session = pb.Consistency(level="session", token=summary.consistency_token)
        probe = STREAMED - 1
        found = await search.Search(
            pb.SearchRequest(
                dataset="docs",
                query=pb.Query(vector=packed(matrix[probe : probe + 1])[0], k=3),
                consistency=session,
            ),
            metadata=auth(alice),
        )
        assert found.state.consistency == "session"
        assert found.page.results[0].id == f"v{probe}"
        assert json.loads(found.page.results[0].metadata_json) == {"n": probe}
        got = await pb_grpc.VectorsStub(reads).Get(
            pb.GetVectorsRequest(
                dataset="docs", ids=["v0", f"v{probe}"], include=["vector"], consistency=session
            ),
            metadata=auth(alice),
        )
        assert [view.id for view in got.results] == ["v0", f"v{probe}"]
        assert np.frombuffer(got.results[1].vector, dtype="<f4").tolist() == matrix[probe].tolist()
        last = await operations.Wait(
            pb.OperationRef(operation_id=summary.operation_ids[-1]), metadata=auth(alice)
        )
        assert last.status == "applied"
        dataset = await pb_grpc.DatasetsStub(reads).Get(pb.DatasetRef(dataset="docs"), metadata=auth(alice))
        assert dataset.vector_count == STREAMED

        # The history names each write's operation; a read at a version answers from it, fixed; a version with
        # a consistency level is refused.
        history = await pb_grpc.DatasetsStub(reads).Versions(
            pb.DatasetRef(dataset="docs"), metadata=auth(alice)
        )
        listed = [v.version for v in history.versions]
        (first,) = [v.version for v in history.versions if summary.operation_ids[0] in v.operations]
        # The commit before the stream's first is the dataset's schema: empty.
        empty = listed[listed.index(first) - 1]
        for version, held in ((empty, []), (first, ["v0"])):
            at = await pb_grpc.VectorsStub(reads).Get(
                pb.GetVectorsRequest(dataset="docs", ids=["v0"], consistency=pb.Consistency(version=version)),
                metadata=auth(alice),
            )
            assert ([view.id for view in at.results], at.state.version, at.state.consistency) == (
                held,
                version,
                "fixed",
            )
        with pytest.raises(grpc.aio.AioRpcError) as mixed:
            await search.Search(
                pb.SearchRequest(
                    dataset="docs",
                    query=pb.Query(vector=packed(matrix[:1])[0]),
                    consistency=pb.Consistency(level="strong", version=first),
                ),
                metadata=auth(alice),
            )
        assert mixed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in details(mixed.value)[0].field_violations] == ["consistency.version"]

        # Bad input names the record and the field; a missing dataset is NOT_FOUND.
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await vectors.Upsert(
                pb.UpsertRequest(
                    dataset="docs",
                    records=[
                        pb.Record(id="ok", vector=packed(matrix[:1])[0]),
                        pb.Record(id="short", vector=b"\0" * 8),
                    ],
                ),
                metadata=auth(alice),
            )
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        (bad_request,) = details(invalid.value)
        assert [v.field for v in bad_request.field_violations] == ["records[1].vector"]
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await vectors.Upsert(
                pb.UpsertRequest(dataset="nope", records=[pb.Record(vector=packed(matrix[:1])[0])]),
                metadata=auth(alice),
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as beyond:
            await search.Search(
                pb.SearchRequest(
                    dataset="docs",
                    query=pb.Query(vector=packed(matrix[:1])[0]),
                    consistency=pb.Consistency(level="session", token="0:999999999"),
                ),
                metadata=auth(alice),
            )
        assert beyond.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in details(beyond.value)[0].field_violations] == ["consistency.token"]

        # Every RPC, without credentials: UNAUTHENTICATED; with bob's key, alice's dataset and operation are not
        # found by any RPC that names them.
        one = packed(matrix[:1])[0]
        as_bob: dict[str, Any] = {
            "Datasets.Get": pb.DatasetRef(dataset="docs"),
            "Datasets.Delete": pb.DatasetRef(dataset="docs"),
            "Datasets.Versions": pb.DatasetRef(dataset="docs"),
            "Vectors.Upsert": pb.UpsertRequest(dataset="docs", records=[pb.Record(vector=one)]),
            "Vectors.UpsertStream": pb.UpsertRequest(dataset="docs", records=[pb.Record(vector=one)]),
            "Vectors.Delete": pb.DeleteVectorsRequest(dataset="docs", ids=["v0"]),
            "Vectors.UpdateMetadata": pb.UpdateMetadataRequest(dataset="docs", id="v0", metadata_json="{}"),
            "Vectors.Get": pb.GetVectorsRequest(dataset="docs", ids=["v0"]),
            "Search.Search": pb.SearchRequest(dataset="docs", query=pb.Query(vector=one)),
            "Search.SearchBatch": pb.SearchBatchRequest(dataset="docs", queries=[pb.Query(vector=one)]),
            "Operations.Get": pb.OperationRef(operation_id=created.operation_id),
            "Operations.Wait": pb.OperationRef(operation_id=created.operation_id, timeout_s=0),
            "Snapshots.Create": pb.CreateSnapshotRequest(dataset="docs"),
            "Snapshots.List": pb.DatasetRef(dataset="docs"),
            "Snapshots.Get": pb.SnapshotRef(dataset="docs", snapshot_id=created.operation_id),
            "Snapshots.Delete": pb.SnapshotRef(dataset="docs", snapshot_id=created.operation_id),
            "Snapshots.Restore": pb.RestoreSnapshotRequest(dataset="docs", snapshot_id=created.operation_id),
        }
        servicers = {servicer.__name__: servicer for servicer in SERVICERS}
        for service, method in METHODS:
            channel = (
                writes
                if method.name in ("Create", "Delete", "Upsert", "UpsertStream", "UpdateMetadata", "Restore")
                else reads
            )
            request = getattr(pb, method.input_type.name)()
            assert await call(channel, method, request, None) == grpc.StatusCode.UNAUTHENTICATED, (
                method.full_name
            )
            name = f"{service.name}.{method.name}"
            if getattr(servicers[service.name], method.name).declared.scope == "tenant":
                continue
            assert await call(channel, method, as_bob[name], bob) == grpc.StatusCode.NOT_FOUND, name
        listed = await pb_grpc.DatasetsStub(reads).List(pb.ListDatasetsRequest(), metadata=auth(bob))
        assert list(listed.datasets) == []

        # Delete, as alice.
        deleted = await datasets.Delete(pb.DatasetRef(dataset="docs", wait=True), metadata=auth(alice))
        assert deleted.status == "applied"
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await pb_grpc.DatasetsStub(reads).Get(pb.DatasetRef(dataset="docs"), metadata=auth(alice))
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND

    # Every call is counted by method and code.
    calls = REGISTRY.get_sample_value(
        "tributary_grpc_requests_total", {"method": "/tributary.v1.Vectors/UpsertStream", "code": "OK"}
    )
    assert calls is not None and calls >= 1

    # Writes and refusals over gRPC are audited as over HTTP, with the outcome's HTTP code.
    engine = engine_for(distributed_settings)
    async with make_sessionmaker(engine)() as session:
        audited = {
            (row.subject != "anonymous", row.target, row.outcome)
            for row in await session.scalars(select(AuditRow).where(AuditRow.action == "GRPC"))
        }
    await engine.dispose()
    assert (True, "/tributary.v1.Vectors/UpsertStream", 200) in audited
    assert (True, "/tributary.v1.Datasets/Create", 403) in audited
    assert (True, "/tributary.v1.Datasets/Delete", 200) in audited
    # Allowed reads are not (their refusals are, anonymous ones counted).
    assert not any(
        target.startswith("/tributary.v1.Search/") and outcome == 200 for _, target, outcome in audited
    )


async def test_rate_limits_idempotency_and_outages_over_grpc(
    embedded_settings: Settings, redis_url: str
) -> None:
    port = free_port()
    settings = embedded_settings.model_copy(
        update={
            "grpc_port": port,
            "redis_url": redis_url,
            "topic_prefix": f"grpc-{port}",
            "rate_limit_key_writes_per_s": 0.01,
            "rate_limit_key_writes_burst": 5,
        }
    )
    async with serving(create_app(settings)), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        datasets, vectors = pb_grpc.DatasetsStub(channel), pb_grpc.VectorsStub(channel)
        admin = auth(ADMIN_KEY)
        await datasets.Create(pb.CreateDatasetRequest(name="docs", dimensions=2, wait=True), metadata=admin)

        # The same Idempotency-Key and request: the first answer again, nothing published twice.
        request = pb.UpsertRequest(
            dataset="docs", records=[pb.Record(id="a", vector=packed(np.ones((1, 2)))[0])]
        )
        keyed = (*admin, ("idempotency-key", "k-1"))
        first = await vectors.Upsert(request, metadata=keyed)
        again = await vectors.Upsert(request, metadata=keyed)
        assert again.operation_id == first.operation_id

        # A burst of 5 writes: the create, the upsert and its replay spent 3, and a stream's messages each count,
        # so its third ends it with RESOURCE_EXHAUSTED and when to retry.
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            await vectors.UpsertStream(_stream([request, request, request]), metadata=admin)
        assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        (retry,) = details(limited.value)
        assert retry.retry_delay.seconds >= 1

    # Redis away with rate limits failing closed: UNAVAILABLE with a retry delay, never UNKNOWN.
    closed = settings.model_copy(
        update={"redis_url": "redis://127.0.0.1:1", "rate_limit_fail_open": False, "grpc_port": free_port()}
    )
    async with (
        serving(create_app(closed)),
        grpc.aio.insecure_channel(f"127.0.0.1:{closed.grpc_port}") as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as away:
            await pb_grpc.DatasetsStub(channel).List(pb.ListDatasetsRequest(), metadata=auth(ADMIN_KEY))
        assert away.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "Redis" in (away.value.details() or "")
        assert isinstance(details(away.value)[0], error_details_pb2.RetryInfo)


async def test_snapshots_over_grpc(embedded_settings: Settings, tmp_path: Path) -> None:
    """Taken, listed, read, restored into a new dataset and deleted, as over HTTP; bad ids and names refused."""
    port = free_port()
    settings = embedded_settings.model_copy(
        update={"grpc_port": port, "backup_url": str(tmp_path / "backups")}
    )
    async with serving(create_app(settings)), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        admin = auth(ADMIN_KEY)
        datasets, vectors = pb_grpc.DatasetsStub(channel), pb_grpc.VectorsStub(channel)
        snapshots = pb_grpc.SnapshotsStub(channel)
        await datasets.Create(pb.CreateDatasetRequest(name="docs", dimensions=2, wait=True), metadata=admin)
        rows = packed(np.random.default_rng(3).standard_normal((100, 2)).astype(np.float32))
        records = [pb.Record(id=f"v{i}", vector=row) for i, row in enumerate(rows)]
        await vectors.Upsert(pb.UpsertRequest(dataset="docs", records=records, wait=True), metadata=admin)

        taken = await snapshots.Create(
            pb.CreateSnapshotRequest(dataset="docs", keep_last=3, wait=True), metadata=admin
        )
        assert taken.status == "applied"
        listed = await snapshots.List(pb.DatasetRef(dataset="docs"), metadata=admin)
        assert [(s.snapshot_id, s.vector_count, s.dimensions) for s in listed.snapshots] == [
            (taken.operation_id, 100, 2)
        ]
        one = await snapshots.Get(
            pb.SnapshotRef(dataset="docs", snapshot_id=taken.operation_id), metadata=admin
        )
        assert one.metric == "cosine" and not one.encrypted

        await vectors.Upsert(
            pb.UpsertRequest(dataset="docs", records=[pb.Record(id="late", vector=rows[0])], wait=True),
            metadata=admin,
        )
        restored = await snapshots.Restore(
            pb.RestoreSnapshotRequest(
                dataset="docs", snapshot_id=taken.operation_id, target="copy", wait=True
            ),
            metadata=admin,
        )
        assert restored.status == "applied"
        assert (await datasets.Get(pb.DatasetRef(dataset="copy"), metadata=admin)).vector_count == 100
        assert (await datasets.Get(pb.DatasetRef(dataset="docs"), metadata=admin)).vector_count == 101

        for call, field in (
            (
                snapshots.Get(pb.SnapshotRef(dataset="docs", snapshot_id="nope"), metadata=admin),
                "snapshot_id",
            ),
            (
                snapshots.Restore(
                    pb.RestoreSnapshotRequest(
                        dataset="docs", snapshot_id=taken.operation_id, target="Bad Name"
                    ),
                    metadata=admin,
                ),
                "target",
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in details(refused.value)[0].field_violations] == [field]

        deleted = await snapshots.Delete(
            pb.SnapshotRef(dataset="docs", snapshot_id=taken.operation_id, wait=True), metadata=admin
        )
        assert deleted.status == "applied"
        assert list((await snapshots.List(pb.DatasetRef(dataset="docs"), metadata=admin)).snapshots) == []


async def test_a_stream_publishes_in_order_and_nothing_after_a_refused_message(
    embedded_settings: Settings,
) -> None:
    """A stream's writes prepare while the one before is published, yet land in the order sent: the same id
    written by each message keeps the last message's metadata. A message refused by the dataset's checks ends
    the stream: the messages before it stand, the one prepared after it publishes nothing."""
    port = free_port()
    settings = embedded_settings.model_copy(update={"grpc_port": port})
    async with serving(create_app(settings)), grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        admin = auth(ADMIN_KEY)
        datasets, vectors = pb_grpc.DatasetsStub(channel), pb_grpc.VectorsStub(channel)
        await datasets.Create(pb.CreateDatasetRequest(name="docs", dimensions=2, wait=True), metadata=admin)
        rows = packed(np.random.default_rng(5).standard_normal((40, 2)).astype(np.float32))

        def message(n: int, **extra: pb.Record) -> pb.UpsertRequest:
            records = [
                pb.Record(id="same", vector=rows[n], metadata_json=json.dumps({"n": n})),
                *(pb.Record(id=f"v{n}-{i}", vector=rows[i]) for i in range(20)),
            ]
            return pb.UpsertRequest(dataset="docs", records=[*records, *extra.values()])

        summary = await vectors.UpsertStream(_stream([message(n) for n in range(12)]), metadata=admin)
        assert summary.records == 12 * 21 and len(summary.operation_ids) == 12

        wrong = pb.Record(id="wrong", vector=packed(np.ones((1, 3)))[0])
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await vectors.UpsertStream(
                _stream([message(20), message(21), message(22, wrong=wrong), message(23), message(24)]),
                metadata=admin,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in details(refused.value)[0].field_violations] == ["records[21].vector"]

        # A write after the stream, waited for: everything published before it is applied by then.
        after = await vectors.Upsert(
            pb.UpsertRequest(dataset="docs", records=[pb.Record(id="after", vector=rows[0])], wait=True),
            metadata=admin,
        )
        got = await vectors.Get(
            pb.GetVectorsRequest(
                dataset="docs",
                ids=["same", "v11-0", "v21-0", "v22-0", "v23-0", "after"],
                consistency=pb.Consistency(level="session", token=after.consistency_token),
            ),
            metadata=admin,
        )
        assert [view.id for view in got.results] == ["same", "v11-0", "v21-0", "after"]
        assert json.loads(got.results[0].metadata_json) == {"n": 21}
