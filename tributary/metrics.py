"""Every Prometheus metric Tributary exports, declared once, and the text a `/metrics` scrape answers.

Names follow Prometheus conventions (`_total` counters, `_seconds` and `_bytes` units). Labels are bounded: a
route template, never a raw path; a dependency, embedder kind, consumer or partition number; never a tenant,
dataset, vector or request id. Each role exports the metrics of what it runs (a worker's health server, an HTTP
role's `/metrics`); a metric a role never touches is absent from its scrape, except the unlabelled ones, which
read 0.

Several processes behind one port (`tributary serve --workers N`): `entrypoints/cli.py` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, each process writes its values there
(prometheus_client's multiprocess mode), and a scrape answered by any of them adds up all of them
(`MultiProcessCollector`). Gauges say how: `livesum` adds the live processes' values (memory), `livemax` takes the
largest (a backlog every replica of the log has alike, a breaker's worst state).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: from a cached search (under a millisecond) to a large write waiting for its outcome (tens of seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Commands per applier batch: at most tributary/limits.py's COMMAND_BATCH (500).
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)

# -- HTTP (tributary/http_metrics.py) ------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "tributary_http_requests_total",
    "HTTP requests answered, by route template, method and status class (2xx, 4xx, 5xx)",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "tributary_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)

# -- gRPC (entrypoints/grpc_api/servicers.py) ------------------------------------------------------------------
GRPC_REQUESTS = Counter(
    "tributary_grpc_requests_total",
    "gRPC calls answered, by method (/package.Service/Method) and status code name",
    ["method", "code"],
)
GRPC_DURATION = Histogram(
    "tributary_grpc_request_duration_seconds",
    "Time from a call's arrival to its answer (a stream: to its summary), by method",
    ["method"],
    buckets=LATENCY_BUCKETS,
)

# -- Command API (tributary/bus.py) ---------------------------------------------------------------------------
COMMANDS_ACCEPTED = Counter(
    "tributary_commands_accepted_total",
    "Commands the bus took (a large upsert split into parts counts each part), by command type",
    ["command"],
)
RECORDS_ACCEPTED = Counter(
    "tributary_records_accepted_total",
    "Records (vectors upserted or deleted by id, metadata updated) in the commands the bus took",
    ["command"],
)
BYTES_ACCEPTED = Counter(
    "tributary_command_bytes_accepted_total",
    "Bytes of the commands the bus took, as serialized on the command topic",
    ["command"],
)

# -- Applier (workers/, entrypoints/kafka_workers.py and the embedded bus) ----------------------------------
APPLIER_BATCH_COMMANDS = Histogram(
    "tributary_applier_batch_commands",
    "Commands per batch the applier applied",
    buckets=BATCH_BUCKETS,
)
APPLIER_APPLY_SECONDS = Histogram(
    "tributary_applier_apply_seconds",
    "Time to apply one batch to DeepLake, its commits included",
    buckets=LATENCY_BUCKETS,
)
APPLIER_COMMIT_SECONDS = Histogram(
    "tributary_applier_commit_seconds",
    "Time of one DeepLake commit (one dataset's writes of a batch)",
    buckets=LATENCY_BUCKETS,
)
ACK_TO_APPLIED = Histogram(
    "tributary_ack_to_applied_seconds",
    "From a command's acceptance by the command API (its occurred_at) to the end of the applier's batch that "
    "applied it (DeepLake committed); across hosts, their clocks' difference is in it",
    buckets=LATENCY_BUCKETS,
)
DEAD_LETTERS = Counter(
    "tributary_dead_letters_total",
    "Commands the applier dead-letters (counted as its batch settles): unreadable, or rejected (crashing it included)",
    ["reason"],
)
DEAD_LETTERS_STORED = Gauge(
    "tributary_dead_letters_stored",
    "Dead letters kept for the admin API and the CLI, by status: dead (waiting for a replay or a purge) or "
    "replayed; read from SQL every few seconds by the projector (embedded mode: its one process)",
    ["status"],
    multiprocess_mode="livemax",
)

# -- Consumers ------------------------------------------------------------------------------------------------
CONSUMER_LAG = Gauge(
    "tributary_consumer_lag_messages",
    "Messages of a partition not yet handled: the applier's and projector's committed offsets behind the log's "
    "end (their groups, sampled by each worker), a query replica's follower position behind the event log",
    ["consumer", "partition"],
    multiprocess_mode="livemax",
)

# -- Query side (query_api/) ----------------------------------------------------------------------------------
APPLIED_TO_VISIBLE = Histogram(
    "tributary_applied_to_visible_seconds",
    "From a domain event's creation by the applier (its occurred_at, after the DeepLake commit) to its "
    "application to this replica's projections, where searches see it; with tributary_ack_to_applied_seconds, "
    "a write's way to visibility",
    buckets=LATENCY_BUCKETS,
)
VECTORS_PENDING_INDEX = Gauge(
    "tributary_vectors_pending_index",
    "Vectors a query replica applied but has not inserted into HNSW yet (searched exactly meanwhile)",
    multiprocess_mode="livemax",
)
INDEX_MEMORY = Gauge(
    "tributary_index_memory_bytes",
    "Estimated memory of a query replica's projections: vectors, norms and the HNSW graph",
    multiprocess_mode="livesum",
)
INDEX_TUNINGS = Counter(
    "tributary_index_tunings_total",
    "Times a query replica tuned a dataset's HNSW search breadth (ef) to its target recall",
)
BELOW_TARGET_RECALL = Gauge(
    "tributary_datasets_below_target_recall",
    "Datasets whose widest HNSW search breadth measured a recall@10 below their target at the last tuning "
    "(a graph too sparse for the data: create the dataset with a larger m or ef_construction)",
    multiprocess_mode="livemax",
)
SEARCH_CACHE_HITS = Counter(
    "tributary_search_cache_hits_total", "Searches answered from the cache", ["layer"]
)
SEARCH_CACHE_MISSES = Counter("tributary_search_cache_misses_total", "Searches the cache did not have")
SEARCH_CACHE_ERRORS = Counter(
    "tributary_search_cache_errors_total", "Reads and writes of the Redis search cache that failed"
)

# -- Kernel ---------------------------------------------------------------------------------------------------
RATE_LIMITED = Counter(
    "tributary_rate_limit_rejections_total",
    "Requests refused by the rate limiter (429, or 503 while Redis is away and rate_limit_fail_open is off), "
    "by bucket kind",
    ["kind"],
)
EMBED_SECONDS = Histogram(
    "tributary_embed_seconds",
    "Time to embed one call's texts, by embedder kind (local, openai)",
    ["embedder"],
    buckets=LATENCY_BUCKETS,
)
EMBED_FAILURES = Counter(
    "tributary_embed_failures_total", "Embedding calls that failed, by embedder kind", ["embedder"]
)
BREAKER_STATE = Gauge(
    "tributary_circuit_breaker_state",
    "A circuit breaker's state as last changed: 0 closed, 1 half-open (probing), 2 open",
    ["dependency"],
    multiprocess_mode="livemax",
)
BREAKER_OPENS = Counter(
    "tributary_circuit_breaker_opens_total",
    "Times a circuit breaker opened after being closed",
    ["dependency"],
)


def observe_since(histogram: Histogram, moments: Iterable[datetime]) -> None:
    """Observe the seconds from each of `moments` (aware datetimes, such as an envelope's occurred_at) to now."""
    now = datetime.now(UTC)
    for moment in moments:
        # A message from a foreign producer may carry a naive time: taken as UTC rather than failing the batch.
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        histogram.observe(max(0.0, (now - aware).total_seconds()))


def count_dead_letters(*, unreadable: int, rejected: int) -> None:
    DEAD_LETTERS.labels("unreadable").inc(unreadable)
    DEAD_LETTERS.labels("rejected").inc(rejected)


def exposition() -> tuple[bytes, str]:
    """The scrape's body and content type: this process's metrics, or every process's in multiprocess mode."""
    if os.environ.get(MULTIPROC_DIR_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def forget_this_process_at_exit() -> None:
    """In multiprocess mode, drop this process's live gauges when it exits, so a scrape no longer counts them."""
    if os.environ.get(MULTIPROC_DIR_VARIABLE):
        atexit.register(multiprocess.mark_process_dead, os.getpid())
