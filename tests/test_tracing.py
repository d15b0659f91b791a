"""One write is one trace (tributary/tracing.py): the HTTP request's (or gRPC call's) span, the publish, the
applier's span of the command (linked to its batch's span), the projector's and each query replica's follower
span, each the child of the one before, through real Kafka and through the embedded bus; the domain event on
Kafka carries the context in its envelope and headers, and a stream consumer continues it. Also how the OTEL_*
variables turn tracing on (off by default)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence

import grpc
import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from entrypoints.grpc_api.v1 import tributary_pb2_grpc as pb_grpc
from entrypoints.http_app import create_app
from events import DomainEvent, Topics, UpsertVectors, VectorsUpserted, parse_command, parse_event
from tests.helpers import eventually, serving
from tests.kafka_tools import workers
from tests.processes import free_port
from tests.test_security import as_, key_for
from tributary.settings import Settings
from tributary.stream import EventStream

HTTP_UPSERT = "POST /api/v1/datasets/{dataset}/vectors"
GRPC_UPSERT = "/tributary.v1.Vectors/Upsert"
# A client's own trace context, sent with a write.
CLIENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def traceparent_of(span: ReadableSpan) -> str:
    assert span.context is not None
    ids = f"{trace.format_trace_id(span.context.trace_id)}-{trace.format_span_id(span.context.span_id)}"
    return f"00-{ids}-{span.context.trace_flags:02x}"


def write_trace(finished: Sequence[ReadableSpan], request: str, replicas: int) -> dict[str, ReadableSpan]:
    """The spans of the one write whose request span is named `request`, by name, each checked to be the child
    of the one before it (and linked, for the applier's batch); raises AssertionError until all are there."""
    [root] = [span for span in finished if span.name == request and span.kind in (SpanKind.SERVER,)]
    assert root.context is not None
    same_trace = [
        span for span in finished if span.context and span.context.trace_id == root.context.trace_id
    ]

    def children(parent: ReadableSpan, name: str) -> list[ReadableSpan]:
        return [s for s in same_trace if s.name == name and s.parent and s.parent.span_id == span_id(parent)]

    [published] = children(root, "publish UpsertVectors")
    assert published.kind == SpanKind.PRODUCER
    [applied] = children(published, "apply UpsertVectors")
    # The write was alone in its batch (sent with wait, one after the other): the batch is in its trace.
    [batch] = children(published, "apply batch")
    assert [link.context.span_id for link in batch.links] == [span_id(published)]
    assert [link.context.span_id for link in applied.links] == [span_id(batch)]
    [projected] = children(applied, "project VectorsUpserted")
    followed = children(applied, "follow VectorsUpserted")
    assert len(followed) == replicas, followed
    return {"request": root, "publish": published, "apply": applied, "batch": batch, "project": projected}


async def traced(spans: InMemorySpanExporter, request: str, replicas: int) -> dict[str, ReadableSpan]:
    async def complete() -> dict[str, ReadableSpan] | None:
        try:
            return write_trace(spans.get_finished_spans(), request, replicas)
        except (AssertionError, ValueError):
            return None

    return await eventually(complete)


async def test_one_write_is_one_trace_through_the_embedded_bus(
    embedded_settings: Settings, spans: InMemorySpanExporter
) -> None:
    async with serving(create_app(embedded_settings)) as client:
        created = await client.post("/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 4})
        assert created.status_code == 200, created.text
        written = await client.post(
            "/api/v1/datasets/docs/vectors?wait=true",
            json={"vectors": [{"id": "a", "vector": [1, 0, 0, 0]}]},
            headers={"traceparent": CLIENT},
        )
        assert written.status_code == 200, written.text
        chain = await traced(spans, HTTP_UPSERT, replicas=1)
        assert (await client.get("/healthz")).status_code == 200
    # The request continues the client's trace; probes are not traced.
    request = chain["request"]
    assert request.parent is not None and request.context is not None
    assert trace.format_span_id(request.parent.span_id) == CLIENT.split("-")[2]
    assert trace.format_trace_id(request.context.trace_id) == CLIENT.split("-")[1]
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/api/v1/datasets/{dataset}/vectors"
    assert request.attributes["http.response.status_code"] == 200
    assert not [
        span for span in spans.get_finished_spans() if span.kind == SpanKind.SERVER and "GET" in span.name
    ]


async def test_one_write_is_one_trace_through_kafka_over_http_and_grpc(
    distributed_settings: Settings, spans: InMemorySpanExporter
) -> None:
    grpc_port = free_port()
    write_settings = distributed_settings.model_copy(update={"grpc_port": grpc_port})
    handled: list[DomainEvent] = []

    async def mirror(event: DomainEvent) -> None:
        handled.append(event)

    stream = EventStream(
        distributed_settings.kafka_bootstrap,
        f"{distributed_settings.topic_prefix}.mirror",
        topic_prefix=distributed_settings.topic_prefix,
        poll_ms=100,
    )
    async with (
        workers(distributed_settings, "applier", "projector"),
        serving(create_app(write_settings, "command-api")) as commands,
        # Two query replicas: each follower continues the trace.
        serving(create_app(distributed_settings, "query-api")),
        serving(create_app(distributed_settings, "query-api")),
        grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
        stream,
    ):
        consuming = asyncio.create_task(stream.run(mirror))
        alice = await key_for(commands, "alice", "admin")
        created = await commands.post(
            "/api/v1/datasets?wait=true", json={"name": "docs", "dimensions": 4}, headers=as_(commands, alice)
        )
        assert created.status_code == 200, created.text
        written = await commands.post(
            "/api/v1/datasets/docs/vectors?wait=true",
            json={"vectors": [{"id": "a", "vector": [1, 0, 0, 0]}]},
            headers=as_(commands, alice),
        )
        assert written.status_code == 200, written.text
        over_http = await traced(spans, HTTP_UPSERT, replicas=2)

        accepted = await pb_grpc.VectorsStub(channel).Upsert(
            pb.UpsertRequest(
                dataset="docs",
                records=[pb.Record(id="b", vector=np.array([0, 1, 0, 0], "<f4").tobytes())],
                wait=True,
            ),
            metadata=(("authorization", f"Bearer {alice}"), ("traceparent", CLIENT)),
        )
        assert accepted.status == "applied"
        over_grpc = await traced(spans, GRPC_UPSERT, replicas=2)

        # On Kafka, the envelope and the headers of a command carry its publish span; of a domain event, the
        # applier's span of its command.
        sent = await _upserts(distributed_settings, Topics(distributed_settings.topic_prefix).commands)
        upserts = await _upserts(distributed_settings, Topics(distributed_settings.topic_prefix).events)
        # A stream consumer's handler runs in a span that continues it.
        await eventually(lambda: _seen(handled, 2))
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)

    finished = spans.get_finished_spans()
    for chain, vector in ((over_http, "a"), (over_grpc, "b")):
        command, headers = sent[vector]
        assert command.trace.traceparent == traceparent_of(chain["publish"])
        assert headers["traceparent"] == command.trace.traceparent
        event, headers = upserts[vector]
        assert event.trace.traceparent == traceparent_of(chain["apply"])
        assert headers["traceparent"] == event.trace.traceparent
        assert headers["message-type"] == "VectorsUpserted"
        [handling] = [
            span
            for span in finished
            if span.name == "handle VectorsUpserted"
            and span.parent
            and span.parent.span_id == span_id(chain["apply"])
        ]
        assert handling.kind == SpanKind.CONSUMER
    # The call continues the client's trace, and its span says which call it was (semconv: RPC).
    grpc_request = over_grpc["request"]
    assert grpc_request.kind == SpanKind.SERVER
    assert grpc_request.parent is not None
    assert trace.format_span_id(grpc_request.parent.span_id) == CLIENT.split("-")[2]
    assert grpc_request.attributes == {
        "rpc.system": "grpc",
        "rpc.service": "tributary.v1.Vectors",
        "rpc.method": "Upsert",
        "rpc.grpc.status_code": 0,
    }
    assert over_http["request"].context and over_grpc["request"].context
    assert over_http["request"].context.trace_id != over_grpc["request"].context.trace_id


async def _upserts(
    settings: Settings, topic: str
) -> dict[str, tuple[UpsertVectors | VectorsUpserted, dict[str, str]]]:
    """The upserts of one vector each on `topic` (commands or events), by that vector's id, with the headers of
    their message."""
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.command_partitions)]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        found: dict[str, tuple[UpsertVectors | VectorsUpserted, dict[str, str]]] = {}
        while any([await reader.position(p) < ends[p] for p in partitions]):
            for records in (await reader.getmany(timeout_ms=1000)).values():
                for record in records:
                    message = (parse_command if topic.endswith(".commands") else parse_event)(
                        record.value or b""
                    )
                    if isinstance(message, UpsertVectors | VectorsUpserted):
                        headers = {name: value.decode() for name, value in record.headers}
                        found[message.payload.ids[0]] = message, headers
        return found
    finally:
        await reader.stop()


async def _seen(handled: list[DomainEvent], upserts: int) -> bool | None:
    return True if sum(isinstance(event, VectorsUpserted) for event in handled) >= upserts else None


def configured(**variables: str) -> dict[str, str]:
    """What the composition root installs in a new process with these OTEL_* variables (and no others)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    probe = (
        "import json; from entrypoints.bootstrap import configure_tracing\n"
        "p = configure_tracing('applier')\n"
        "print(json.dumps(p and {'service': p.resource.attributes['service.name'],"
        " 'sampler': p.sampler.get_description(),"
        " 'exporters': [type(s.span_exporter).__name__ for s in p._active_span_processor._span_processors]}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env | variables, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1]}
    found: dict[str, str] = json.loads(done.stdout) or {}
    return found


def test_tracing_is_off_unless_an_exporter_is_named_and_configured_by_the_standard_variables() -> None:
    assert configured() == {}
    assert configured(OTEL_TRACES_EXPORTER="none") == {}
    assert configured(OTEL_TRACES_EXPORTER="otlp", OTEL_SDK_DISABLED="true") == {}
    assert configured(OTEL_TRACES_EXPORTER="otlp") == {
        "service": "tributary-applier",
        "sampler": "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}",
        "exporters": ["OTLPSpanExporter"],
    }
    one_percent = configured(
        OTEL_TRACES_EXPORTER="otlp,console",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.01",
        OTEL_SERVICE_NAME="search-eu",
    )
    assert one_percent["service"] == "search-eu"
    assert one_percent["sampler"].startswith("ParentBased{root:TraceIdRatioBased{0.01}")
    assert one_percent["exporters"] == ["OTLPSpanExporter", "ConsoleSpanExporter"]
    assert (
        "no installed package provides the span exporter 'zipkin'"
        in configured(OTEL_TRACES_EXPORTER="zipkin")["error"]
    )
