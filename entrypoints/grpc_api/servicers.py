"""The servicers of protos/tributary/v1/tributary.proto: thin adapters over the services the HTTP routes use
(command_api/writes.py, query_api/reading.py, query_api/catalog.py) and the same door (tributary/auth/gate.py).

Every RPC declares with `@rpc` the action it needs and the datasets it touches (`dataset`: the request's
`dataset` field; `tenant`: the tenant as a whole; `operation`: the operation's own dataset, checked by the catalog),
as every HTTP route does; tests/test_grpc_api.py checks that each RPC of the descriptors declares one."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar, cast, get_args

import grpc
import numpy as np
import numpy.typing as npt
from google.protobuf.message import Message
from opentelemetry.trace import Span, StatusCode
from pydantic import BaseModel, TypeAdapter, ValidationError

from command_api.operations import MAX_IDEMPOTENCY_KEY, InOrder, Keyed, Turn
from command_api.writes import Writer
from entrypoints.grpc_api.errors import abort, failure_status
from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from entrypoints.grpc_api.v1 import tributary_pb2_grpc as pb_grpc
from events import SnapshotId
from events.names import Name
from query_api import catalog, snapshots
from query_api.consistency import ConsistencyLevel
from query_api.reading import Reader, ServedRead
from query_api.services import ReadServices
from schemas.datasets import Accepted, CreateDatasetRequest, DatasetView, OperationView
from schemas.search import GetVectorsRequest, SearchRequest
from schemas.snapshots import CreateSnapshotRequest, SnapshotView
from schemas.vectors import DeleteVectorsRequest, MetadataPatch, UpsertVectorsRequest
from tributary import audit, logs, tracing
from tributary.auth.authenticate import authenticate
from tributary.auth.gate import admit, check_dataset, check_tenant_wide, refuse_unauthenticated
from tributary.auth.principal import Action, Principal
from tributary.bus import CommandPublisher
from tributary.embedding.images import ImageRef
from tributary.failures import Conflict, Invalid, NotFound, Unauthenticated
from tributary.metrics import GRPC_DURATION, GRPC_REQUESTS
from tributary.resilience import cancel
from tributary.services import Services

Scope = Literal["dataset", "tenant", "operation"]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Servicer = TypeVar("Servicer", bound="Base")

# The fields a read service names as the HTTP API has them, in the proto.
READ_FIELDS = {
    "token": "consistency.token",
    "version": "consistency.version",
    "vector": "query.vector",
    "ef": "query.ef",
}
M = TypeVar("M", bound=BaseModel)

SERVICE_PACKAGE = pb.DESCRIPTOR.package
# A stream's writes prepared or publishing at once: one is published and acknowledged while the next prepares.
STREAM_WRITES_IN_FLIGHT = 2
# The audit keeps HTTP's vocabulary of outcomes (tributary/audit.py): a gRPC status as the code it stands for.
AUDIT_OUTCOME = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# A rejected write (seen with `wait`) answers the code of its cause, as its HTTP twin does.
REJECTED: dict[str, type[Exception]] = {"not_found": NotFound, "conflict": Conflict}


@dataclass(frozen=True)
class Declared:
    action: Action
    scope: Scope


@dataclass(frozen=True)
class Call:
    """One admitted call: who makes it, through which services."""

    services: Services
    principal: Principal
    context: Context
    action: Action

    def on_dataset(self, dataset: str) -> str:
        check_dataset(self.principal, self.action, dataset)
        return dataset

    def metadata(self, name: str) -> str | None:
        for key, value in self.context.invocation_metadata() or ():
            if key == name:
                return value if isinstance(value, str) else value.decode()
        return None

    @property
    def reads(self) -> ReadServices:
        if not isinstance(self.services, ReadServices):
            raise _Unimplemented("this role serves no reads: call a query-api replica")
        return self.services

    @property
    def reader(self) -> Reader:
        return Reader(self.reads, self.principal.tenant)

    @property
    def publisher(self) -> CommandPublisher:
        if self.services.publisher is None:
            raise _Unimplemented("this role takes no writes: call the command-api")
        return self.services.publisher

    @asynccontextmanager
    async def writer(
        self, wait: bool, request: Any = None, publisher: CommandPublisher | None = None
    ) -> AsyncIterator[Writer]:
        """The write service of this call; with an `idempotency-key` in the metadata (unary writes), its request
        is identified by the RPC and the request's bytes, as an HTTP write is by its method, path and body.
        `publisher`: this call's own (a stream's turn), else the role's."""
        services = self.services
        publisher = publisher or self.publisher
        keyed = None
        key = self.metadata("idempotency-key")
        if key is not None and request is not None:
            if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
                reason = f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
                raise Invalid([{"loc": ("header", "idempotency-key"), "msg": reason}])
            digest = hashlib.sha256(f"{self.principal.tenant}\n{type(request).__name__}\n".encode())
            digest.update(request.SerializeToString(deterministic=True))
            keyed = Keyed(key, digest.hexdigest())
        async with services.sessions() as session:
            yield Writer(
                self.principal.tenant,
                session,
                publisher,
                services.embedders,
                services.settings,
                keyed,
                wait,
            )


class _Unimplemented(Exception):
    """The RPC belongs to the other distributed role."""


def rpc(
    action: Action, scope: Scope, renamed: Mapping[str, str] | None = None
) -> Callable[
    [Callable[[Servicer, Any, Call], Awaitable[Any]]], Callable[[Servicer, Any, Context], Awaitable[Any]]
]:
    """An RPC handler: authenticate the `authorization` metadata, admit the action (role and rate limit), check
    the declared scope, run the method, and answer a failure with its status (entrypoints/grpc_api/errors.py;
    `renamed`: HTTP field names that have another name in the proto)."""

    def wrap(
        method: Callable[[Servicer, Any, Call], Awaitable[Any]],
    ) -> Callable[[Servicer, Any, Context], Awaitable[Any]]:
        # The servicer class and the method, as the route names them: Search.Search -> Search/Search.
        target = f"/{SERVICE_PACKAGE}.{method.__qualname__.replace('.', '/')}"

        @functools.wraps(method)
        async def handler(self: Servicer, request: Any, context: Context) -> Any:
            principal: Principal | None = None
            code = grpc.StatusCode.UNKNOWN
            started = time.perf_counter()
            metadata = dict(context.invocation_metadata() or ())
            # The request id in and out: in the trailing metadata, which goes with the status (initial metadata of
            # its own would cost a write of its own: a sixth of a search's CPU, measured with py-spy).
            echo = ((logs.REQUEST_ID_HEADER, logs.begin_request(metadata)),)
            context.set_trailing_metadata(echo)
            with tracing.serving(target, metadata) as span:
                try:
                    call = await self.authenticated(context, metadata, action)
                    principal = call.principal
                    await admit(principal, action, self.services.rate_limiter)
                    if scope == "dataset" and isinstance(request, Message):
                        # A stream's messages are checked one by one, as they come.
                        call.on_dataset(getattr(request, "dataset"))  # noqa: B009
                    elif scope == "tenant":
                        check_tenant_wide(call.principal, action)
                    answer = await method(self, request, call)
                    code = grpc.StatusCode.OK
                    return answer
                except _Unimplemented as exc:
                    code = grpc.StatusCode.UNIMPLEMENTED
                    await context.abort(code, str(exc), echo)
                except Exception as exc:
                    status = failure_status(exc, renamed or {})
                    if status is None:
                        span.record_exception(exc)
                        raise
                    code = status.code
                    await abort(context, status, echo)
                finally:
                    outcome = AUDIT_OUTCOME.get(code, 500)
                    GRPC_REQUESTS.labels(target, code.name).inc()
                    GRPC_DURATION.labels(target).observe(time.perf_counter() - started)
                    if span.is_recording():
                        _describe(span, target, code, outcome)
                    await audit.record(self.services, principal, "GRPC", target, outcome, action != "read")

        handler.declared = Declared(action, scope)  # type: ignore[attr-defined]
        return handler

    return wrap


def _describe(span: Span, target: str, code: grpc.StatusCode, outcome: int) -> None:
    """What a recorded call's server span says of it (semconv: RPC); an error when its code is a server's fault,
    as HTTP's 5xx is."""
    service, _, name = target[1:].partition("/")
    span.set_attributes(
        {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": name,
            "rpc.grpc.status_code": code.value[0],
        }
    )
    if outcome >= 500:
        span.set_status(StatusCode.ERROR, code.name)


class Base:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def authenticated(self, context: Context, metadata: Mapping[str, Any], action: Action) -> Call:
        services = self.services
        header = metadata.get("authorization", "")
        try:
            principal = await authenticate(str(header), services)
        except Unauthenticated as failure:
            await refuse_unauthenticated(failure, services.rate_limiter, _client(context.peer()))
            raise
        return Call(services, principal, context, action)


class Datasets(Base, pb_grpc.DatasetsServicer):
    @rpc("write", "tenant")
    async def Create(self, request: pb.CreateDatasetRequest, call: Call) -> pb.Accepted:
        body = _create_body(request)
        async with call.writer(request.wait, request) as writer:
            return _accepted(await writer.replay() or await writer.create_dataset(body))

    @rpc("read", "dataset")
    async def Get(self, request: pb.DatasetRef, call: Call) -> pb.Dataset:
        async with call.services.sessions() as session:
            return _dataset(await catalog.get_dataset(session, call.principal.tenant, request.dataset))

    @rpc("read", "tenant")
    async def List(self, request: pb.ListDatasetsRequest, call: Call) -> pb.DatasetList:
        async with call.services.sessions() as session:
            views = await catalog.list_datasets(session, call.principal)
        return pb.DatasetList(datasets=[_dataset(view) for view in views])

    @rpc("write", "dataset")
    async def Delete(self, request: pb.DatasetRef, call: Call) -> pb.Accepted:
        async with call.writer(request.wait, request) as writer:
            return _accepted(await writer.replay() or await writer.delete_dataset(request.dataset))

    @rpc("read", "dataset")
    async def Versions(self, request: pb.DatasetRef, call: Call) -> pb.DatasetVersions:
        views = await call.reader.versions(request.dataset)
        return pb.DatasetVersions(
            versions=[pb.DatasetVersion(**view.model_dump(mode="json")) for view in views]
        )


class Vectors(Base, pb_grpc.VectorsServicer):
    @rpc("write", "dataset", renamed={"vectors": "records"})
    async def Upsert(self, request: pb.UpsertRequest, call: Call) -> pb.Accepted:
        body = _upsert_body(request.records)
        async with call.writer(request.wait, request) as writer:
            return _accepted(
                await writer.replay() or await writer.upsert_vectors(request.dataset, body.vectors)
            )

    @rpc("write", "dataset", renamed={"vectors": "records"})
    async def UpsertStream(
        self, requests: AsyncIterator[pb.UpsertRequest], call: Call
    ) -> pb.UpsertStreamSummary:
        """Each message is one write, admitted, submitted and published in the order sent; a refused message ends
        the stream with its error (the messages before it were accepted: their operations stand; the ones after it
        publish nothing). While one message is published and acknowledged, the next is checked, recorded and
        serialised, and the one after it read and validated (in a thread)."""
        summary = pb.UpsertStreamSummary()
        order = InOrder(call.publisher)
        in_flight: deque[asyncio.Task[tuple[Accepted, int]]] = deque()

        def tally(answer: Accepted, records: int) -> None:
            summary.records += records
            summary.operation_ids.append(answer.operation_id)
            summary.consistency_token = answer.consistency_token

        try:
            first = True
            async for request, body in _read_ahead(requests):
                if not first:
                    # Each message is a write request of its own for the rate limit, as N HTTP upserts would be.
                    await admit(call.principal, call.action, call.services.rate_limiter)
                first = False
                call.on_dataset(request.dataset)
                in_flight.append(asyncio.create_task(_streamed_upsert(call, order.turn(), request, body)))
                if len(in_flight) == STREAM_WRITES_IN_FLIGHT:
                    tally(*await in_flight.popleft())
            while in_flight:
                tally(*await in_flight.popleft())
        finally:
            # The writes still in flight end by themselves: published, or out of turn with nothing sent (their
            # operations forgotten), which cancelling them half-way would not ensure.
            await asyncio.gather(*in_flight, return_exceptions=True)
        return summary

    @rpc("write", "dataset")
    async def Delete(self, request: pb.DeleteVectorsRequest, call: Call) -> pb.Accepted:
        body = DeleteVectorsRequest.model_validate(
            {"ids": list(request.ids) or None, **_json_fields(request, filter="filter_json")}
        )
        async with call.writer(request.wait, request) as writer:
            return _accepted(await writer.replay() or await writer.delete_vectors(request.dataset, body))

    @rpc("write", "dataset")
    async def UpdateMetadata(self, request: pb.UpdateMetadataRequest, call: Call) -> pb.Accepted:
        body = MetadataPatch.model_validate(
            {**_json_fields(request, metadata="metadata_json"), "merge": not request.replace}
        )
        async with call.writer(request.wait, request) as writer:
            answer = await writer.replay() or await writer.update_metadata(request.dataset, request.id, body)
            return _accepted(answer)

    @rpc("read", "dataset", renamed=READ_FIELDS)
    async def Get(self, request: pb.GetVectorsRequest, call: Call) -> pb.VectorsResponse:
        body = GetVectorsRequest.model_validate({"ids": list(request.ids), **_include(request.include)})
        reader = call.reader
        read = await _served(reader, request.dataset, request.consistency)
        found = await reader.get(read, body)
        return pb.VectorsResponse(
            state=_state(read), results=[_view(view.model_dump(exclude_none=True)) for view in found]
        )


class Search(Base, pb_grpc.SearchServicer):
    @rpc("read", "dataset", renamed=READ_FIELDS)
    async def Search(self, request: pb.SearchRequest, call: Call) -> pb.SearchResponse:
        body = _validated(SearchRequest, _query(request.query), "query")
        reader = call.reader
        read = await _served(reader, request.dataset, request.consistency)
        page = await reader.search_page(read, body)
        return pb.SearchResponse(state=_state(read), page=_page(page))

    @rpc("read", "dataset", renamed=READ_FIELDS)
    async def SearchBatch(self, request: pb.SearchBatchRequest, call: Call) -> pb.SearchBatchResponse:
        bodies = [_validated(SearchRequest, _query(q), "queries", i) for i, q in enumerate(request.queries)]
        if not 1 <= len(bodies) <= 100:
            raise Invalid([{"loc": ("queries",), "msg": "give 1 to 100 queries"}])
        reader = call.reader
        read = await _served(reader, request.dataset, request.consistency)
        pages = [_page(await reader.search_page(read, body)) for body in bodies]
        return pb.SearchBatchResponse(state=_state(read), pages=pages)


class Operations(Base, pb_grpc.OperationsServicer):
    @rpc("read", "operation")
    async def Get(self, request: pb.OperationRef, call: Call) -> pb.Operation:
        async with call.services.sessions() as session:
            return _operation(await catalog.get_operation(session, call.principal, request.operation_id))

    @rpc("read", "operation")
    async def Wait(self, request: pb.OperationRef, call: Call) -> pb.Operation:
        limit = call.services.settings.wait_timeout_s
        timeout = min(request.timeout_s, limit) if request.HasField("timeout_s") else limit
        async with call.services.sessions() as session:
            view = await catalog.wait_operation(
                session, call.principal, request.operation_id, max(0.0, timeout)
            )
        return _operation(view)


class Snapshots(Base, pb_grpc.SnapshotsServicer):
    @rpc("write", "dataset")
    async def Create(self, request: pb.CreateSnapshotRequest, call: Call) -> pb.Accepted:
        body = CreateSnapshotRequest.model_validate(_present(request, "keep_last", "max_age_days"))
        async with call.writer(request.wait, request) as writer:
            return _accepted(await writer.replay() or await writer.create_snapshot(request.dataset, body))

    @rpc("read", "dataset")
    async def List(self, request: pb.DatasetRef, call: Call) -> pb.SnapshotList:
        async with call.services.sessions() as session:
            views = await snapshots.list_snapshots(
                call.services.settings, session, call.principal.tenant, request.dataset
            )
        return pb.SnapshotList(snapshots=[_snapshot(view) for view in views])

    @rpc("read", "dataset")
    async def Get(self, request: pb.SnapshotRef, call: Call) -> pb.Snapshot:
        snapshot_id = _snapshot_id(request.snapshot_id)
        view = await snapshots.get_snapshot(
            call.services.settings, call.principal.tenant, request.dataset, snapshot_id
        )
        return _snapshot(view)

    @rpc("write", "dataset")
    async def Delete(self, request: pb.SnapshotRef, call: Call) -> pb.Accepted:
        snapshot_id = _snapshot_id(request.snapshot_id)
        async with call.writer(request.wait, request) as writer:
            return _accepted(
                await writer.replay() or await writer.delete_snapshot(request.dataset, snapshot_id)
            )

    @rpc("write", "dataset")
    async def Restore(self, request: pb.RestoreSnapshotRequest, call: Call) -> pb.Accepted:
        snapshot_id = _snapshot_id(request.snapshot_id)
        # The key must be allowed to write the target too, as over HTTP.
        target = (
            call.on_dataset(_validated_name(request.target, "target")) if request.HasField("target") else None
        )
        async with call.writer(request.wait, request) as writer:
            answer = await writer.replay() or await writer.restore_snapshot(
                request.dataset, snapshot_id, target or request.dataset
            )
            return _accepted(answer)


SERVICERS = (Datasets, Vectors, Search, Operations, Snapshots)
ADD_TO_SERVER = {
    Datasets: pb_grpc.add_DatasetsServicer_to_server,
    Vectors: pb_grpc.add_VectorsServicer_to_server,
    Search: pb_grpc.add_SearchServicer_to_server,
    Operations: pb_grpc.add_OperationsServicer_to_server,
    Snapshots: pb_grpc.add_SnapshotsServicer_to_server,
}


def _client(peer: str) -> str:
    """The address of `ipv4:127.0.0.1:5000` or `ipv6:[::1]:5000`."""
    address = peer.partition(":")[2]
    return address.rsplit(":", 1)[0].strip("[]") or "unknown"


def _create_body(request: pb.CreateDatasetRequest) -> CreateDatasetRequest:
    return CreateDatasetRequest.model_validate(
        {
            "name": request.name,
            "dimensions": request.dimensions,
            **_present(request, "metric", "text_field"),
            "metadata_schema": dict(request.metadata_schema),
            **_json_fields(
                request,
                embedder="embedder_json",
                text_analysis="text_analysis_json",
                index="index_json",
                vectors="vectors_json",
            ),
        }
    )


def _given(message: Any, field: str) -> bool:
    """Whether the client set `field` (a field without presence counts as set when it is not empty)."""
    if _has_presence(message.DESCRIPTOR, field):
        return bool(message.HasField(field))
    return bool(getattr(message, field))


@functools.cache
def _has_presence(descriptor: Any, field: str) -> bool:
    # Asked of every field a call reads (a search's query a dozen times, an upsert's records a thousand):
    # looking it up in the descriptor cost a search 5 us.
    return bool(descriptor.fields_by_name[field].has_presence)


def _present(message: Any, *names: str) -> dict[str, Any]:
    return {name: getattr(message, name) for name in names if _given(message, name)}


def _json_fields(message: Any, **fields: str) -> dict[str, Any]:
    """The JSON text fields of a message, parsed, under their model names."""
    parsed = {}
    for name, field in fields.items():
        if _given(message, field):
            try:
                parsed[name] = json.loads(getattr(message, field))
            except json.JSONDecodeError as exc:
                raise Invalid([{"loc": (field,), "msg": f"is not JSON: {exc}"}]) from None
    return parsed


def _upsert_body(records: Any) -> UpsertVectorsRequest:
    vectors = _unpacked([record.vector for record in records])
    rows = []
    for index, record in enumerate(records):
        row: dict[str, Any] = {"id": record.id or None}
        if record.HasField("text"):
            row["text"] = record.text
        if record.vector:
            row["vector"] = vectors[index]
        if record.vectors:
            row["vectors"] = {name: _base64(vector) for name, vector in record.vectors.items()}
        if record.images or record.image_urls:
            if both := sorted(set(record.images) & set(record.image_urls)):
                raise Invalid([{"loc": ("vectors", index, "images", both[0]), "msg": "give bytes or a URL"}])
            row["images"] = {
                **{name: ImageRef(data=image) for name, image in record.images.items()},
                **{name: ImageRef(url=url) for name, url in record.image_urls.items()},
            }
        if record.HasField("metadata_json"):
            try:
                row["metadata"] = json.loads(record.metadata_json)
            except json.JSONDecodeError as exc:
                raise Invalid(
                    [{"loc": ("vectors", index, "metadata_json"), "msg": f"is not JSON: {exc}"}]
                ) from None
        rows.append(row)
    return UpsertVectorsRequest.model_validate({"vectors": rows})


def _unpacked(packed: list[bytes]) -> list[npt.NDArray[np.float32] | str]:
    """The records' packed float32 vectors decoded in one go when they share a width, as a stream's records
    do: decoding each on its own through its base64 form costs more than the rest of the message's checks.
    A vector that is not whole floats or not finite keeps its base64 form, for the model to name the problem."""
    widths = {len(vector) for vector in packed}
    if len(widths) != 1 or (width := widths.pop()) % 4 or not width:
        return [_base64(vector) for vector in packed]
    matrix = np.frombuffer(b"".join(packed), dtype="<f4").reshape(len(packed), width // 4)
    finite = np.isfinite(matrix).all(axis=1)
    return [
        row if ok else _base64(vector)
        for row, ok, vector in zip(matrix.astype(np.float32, copy=False), finite, packed, strict=True)
    ]


def _validated(model: type[M], data: dict[str, Any], *at: str | int) -> M:
    """`data` as `model`; its problems located under `at` in the proto request (e.g. queries[2].k)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid([{**e, "loc": (*at, *e["loc"])} for e in exc.errors()]) from None


async def _read_ahead(
    requests: AsyncIterator[pb.UpsertRequest],
) -> AsyncIterator[tuple[pb.UpsertRequest, UpsertVectorsRequest]]:
    """The stream's messages with their validated bodies, one message ahead of the consumer."""
    ahead: asyncio.Queue[tuple[pb.UpsertRequest, UpsertVectorsRequest] | BaseException | None] = (
        asyncio.Queue(1)
    )

    async def read() -> None:
        try:
            async for request in requests:
                await ahead.put((request, await asyncio.to_thread(_upsert_body, request.records)))
            await ahead.put(None)
        except Exception as exc:
            await ahead.put(exc)

    reader = asyncio.create_task(read())
    try:
        while (item := await ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        await cancel(reader)


async def _streamed_upsert(
    call: Call, turn: Turn, request: pb.UpsertRequest, body: UpsertVectorsRequest
) -> tuple[Accepted, int]:
    """The write's answer and its number of records."""
    try:
        async with call.writer(request.wait, publisher=turn) as writer:
            return _outcome(await writer.upsert_vectors(request.dataset, body.vectors)), len(body.vectors)
    finally:
        turn.close()


def _include(include: Any) -> dict[str, Any]:
    return {"include": list(include)} if include else {}


def _query(query: pb.Query) -> dict[str, Any]:
    body: dict[str, Any] = {
        **_present(
            query,
            "text",
            "mode",
            "field",
            "k",
            "offset",
            "score_threshold",
            "fusion",
            "rrf_k",
            "alpha",
            "exact",
            "ef",
        ),
        **_json_fields(query, filter="filter_json"),
        **_include(query.include),
    }
    if query.vector:
        (body["vector"],) = _unpacked([query.vector])
    if query.queries:
        body["queries"] = [
            {
                **_present(given, "mode", "field", "text", "weight"),
                **({"vector": _base64(given.vector)} if given.vector else {}),
                **_image(given),
            }
            for given in query.queries
        ]
    return {**body, **_image(query)}


def _image(query: pb.Query | pb.QueryInput) -> dict[str, Any]:
    """A query's image, as the request models take it: its bytes, or its URL."""
    if query.HasField("image_url"):
        return {"image": ImageRef(url=query.image_url)}
    return {"image": ImageRef(data=query.image)} if query.image else {}


def _base64(vector: bytes) -> str:
    """A packed vector in the form the request models take (schemas.vectors.PackedVector)."""
    return base64.b64encode(vector).decode("ascii")


async def _served(reader: Reader, dataset: str, consistency: pb.Consistency) -> ServedRead:
    level = consistency.level or None
    if level is not None and level not in get_args(ConsistencyLevel):
        levels = ", ".join(get_args(ConsistencyLevel))
        raise Invalid([{"loc": ("consistency", "level"), "msg": f"one of {levels}"}])
    return await reader.served(
        dataset, cast(ConsistencyLevel | None, level), consistency.token or None, consistency.version or None
    )


def _state(read: ServedRead) -> pb.ReadState:
    return pb.ReadState(**read.state)


# A search page comes as the JSON bytes the search cache keeps and HTTP sends as they are; gRPC converts them.
# Small pages (10 results without vectors are about 1 KiB) keep their conversion for as long as the cache may
# hand the same bytes again: parsing them and building the messages cost a cached search a tenth of its CPU.
PAGES_KEPT, PAGE_KEPT_BYTES = 512, 16 << 10


def _page(page: bytes) -> pb.SearchPage:
    return _small_page(page) if len(page) <= PAGE_KEPT_BYTES else _converted_page(page)


@functools.lru_cache(maxsize=PAGES_KEPT)
def _small_page(page: bytes) -> pb.SearchPage:
    return _converted_page(page)


def _converted_page(page: bytes) -> pb.SearchPage:
    parsed = json.loads(page)
    return pb.SearchPage(
        results=[_view(result) for result in parsed["results"]], next_offset=parsed.get("next_offset")
    )


def _view(view: Mapping[str, Any]) -> pb.VectorView:
    vector = view.get("vector")
    metadata = view.get("metadata")
    return pb.VectorView(
        id=view["id"],
        score=view.get("score"),
        vector=np.asarray(vector, dtype="<f4").tobytes() if vector is not None else b"",
        metadata_json=json.dumps(metadata) if metadata is not None else None,
        text=view.get("text"),
        vectors={
            name: np.asarray(v, dtype="<f4").tobytes() for name, v in (view.get("vectors") or {}).items()
        },
        # Bytes from a model, base64 from a cached page's JSON.
        images={
            name: image if isinstance(image, bytes) else base64.b64decode(image)
            for name, image in (view.get("images") or {}).items()
        },
    )


def _outcome(answer: Accepted) -> Accepted:
    """A write seen rejected (with `wait`) is an error with its cause's code; otherwise the answer."""
    if answer.status == "rejected":
        reason = f"operation {answer.operation_id} was rejected: {answer.reason}"
        kind = REJECTED.get(answer.rejection or "")
        if kind is not None:
            raise kind(reason)
        raise Invalid([{"loc": (), "msg": reason}])
    return answer


def _accepted(answer: Accepted) -> pb.Accepted:
    return pb.Accepted(**_outcome(answer).model_dump(exclude_none=True))


def _dataset(view: DatasetView) -> pb.Dataset:
    fields = view.model_dump(mode="json", exclude_none=True)
    if "embedder" in fields:
        fields["embedder_json"] = json.dumps(fields.pop("embedder"))
    if named := fields.pop("vectors", None):
        fields["vectors_json"] = json.dumps(named)
    return pb.Dataset(**fields)


_snapshot_ids: TypeAdapter[str] = TypeAdapter(SnapshotId)
_names: TypeAdapter[str] = TypeAdapter(Name)


def _snapshot_id(value: str) -> str:
    return _validated_value(_snapshot_ids, value, "snapshot_id")


def _validated_name(value: str, field: str) -> str:
    return _validated_value(_names, value, field)


def _validated_value(adapter: TypeAdapter[str], value: str, field: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise Invalid([{"loc": (field,), "msg": error["msg"]} for error in exc.errors()]) from None


def _snapshot(view: SnapshotView) -> pb.Snapshot:
    return pb.Snapshot(**view.model_dump(mode="json"))


def _operation(view: OperationView) -> pb.Operation:
    return pb.Operation(**view.model_dump(mode="json", exclude_none=True))
