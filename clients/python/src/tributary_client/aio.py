"""The asynchronous client. `Tributary` (sync) runs this one on a thread of its own, so the two behave alike."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel

from tributary_client import models
from tributary_client._wire import (
    RETRY_STATUSES,
    Retries,
    Vector,
    batch_key,
    batches,
    image,
    pack,
    record_body,
    records_of,
    retry_after,
)
from tributary_client.errors import ApiError, BatchFailed, RequestTimeout, TransportError, api_error

Consistency = Literal["eventual", "bounded", "session", "strong"]
M = TypeVar("M", bound=BaseModel)

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass
class IngestReport:
    """What `upsert_many` sent: every batch acknowledged, in order."""

    records: int = 0
    batches: list[models.Accepted] = field(default_factory=list)


class AsyncTributary:
    """A Tributary server over HTTP: `url` for everything, or, where the command and query APIs are served
    apart, `url` for writes and key management and `read_url` for reads.

    Writes answer at once with an operation (`wait=True` waits until it is applied); the client remembers each
    dataset's latest consistency token and, unless told otherwise, reads that dataset at `session` consistency
    with it, so a read sees the client's own writes. Requests that are safe to repeat (reads, and writes, which
    always carry an Idempotency-Key) are retried on 429, 503 and connection errors with exponential backoff and
    jitter, honouring Retry-After.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        read_url: str | None = None,
        timeout: float = 60.0,
        retries: Retries | None = None,
        read_your_writes: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport)
        self._write_url, self._read_url = url.rstrip("/"), (read_url or url).rstrip("/")
        self._retries = retries or Retries()
        self._read_your_writes = read_your_writes
        self._tokens: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # Datasets

    async def create_dataset(
        self,
        /,
        name: str,
        dimensions: int,
        *,
        metric: Literal["cosine", "dot", "l2"] = "cosine",
        metadata_schema: Mapping[str, str] | None = None,
        text_field: str | None = None,
        embedder: Mapping[str, Any] | None = None,
        vectors: Mapping[str, Mapping[str, Any]] | None = None,
        wait: bool = True,
    ) -> models.Accepted:
        """`vectors`: named vector fields beside the default vector, e.g. {"image": {"dimensions": 512}}."""
        body = {
            "name": name,
            "dimensions": dimensions,
            "metric": metric,
            "metadata_schema": dict(metadata_schema or {}),
            "text_field": text_field,
            "embedder": dict(embedder) if embedder is not None else None,
            "vectors": {field: dict(definition) for field, definition in (vectors or {}).items()},
        }
        return await self._write(name, "POST", "/api/v1/datasets", body, wait=wait)

    async def get_dataset(self, /, name: str) -> models.DatasetView:
        return await self._read(models.DatasetView, "GET", f"/api/v1/datasets/{name}")

    async def list_datasets(self, /) -> list[models.DatasetView]:
        return (await self._read(models.DatasetList, "GET", "/api/v1/datasets")).datasets

    async def delete_dataset(self, /, name: str, *, wait: bool = False) -> models.Accepted:
        return await self._write(name, "DELETE", f"/api/v1/datasets/{name}", None, wait=wait)

    # Writes

    async def upsert(
        self,
        /,
        dataset: str,
        records: Sequence[Mapping[str, Any]],
        *,
        wait: bool = False,
        idempotency_key: str | None = None,
    ) -> models.Accepted:
        """Insert or replace records (`id`, `vector`, `text`, `metadata`, `vectors`: the named fields' vectors by
        field, and `images`: the image fields' images by field, as bytes or URLs); vectors travel packed. Without an
        `idempotency_key` the call makes its own, so its retries are applied once."""
        body = {"vectors": [record_body(record) for record in records]}
        return await self._write(
            dataset, "POST", f"/api/v1/datasets/{dataset}/vectors", body, wait=wait, key=idempotency_key
        )

    async def upsert_many(
        self,
        /,
        dataset: str,
        records: Iterable[Mapping[str, Any]] | Any,
        *,
        batch_size: int = 1000,
        in_flight: int = 4,
        key_prefix: str | None = None,
        first_batch: int = 0,
        on_batch: Callable[[int, models.Accepted], None] | None = None,
        wait: bool = False,
    ) -> IngestReport:
        """Stream records in batches, at most `in_flight` requests at a time: any iterable of mappings, a numpy
        matrix of vectors, a pandas DataFrame or an Arrow table (see `records_of`). Each batch's
        Idempotency-Key derives from `key_prefix`, its index and its content: give the same prefix to resume an
        interrupted ingest (with `first_batch`, the index of the first batch `records` starts at) and the
        batches already applied are answered, not applied again. Without a prefix the call makes a random one
        (a later call with the same records writes them again, as `upsert` would). `on_batch(records, answer)`
        is called as each batch is acknowledged, in order."""
        prefix = key_prefix if key_prefix is not None else uuid.uuid4().hex
        report = IngestReport()
        pending: list[tuple[int, int, asyncio.Task[models.Accepted]]] = []

        refused = False  # a batch failed: none after it counts as acknowledged

        async def acknowledge() -> None:
            nonlocal refused
            first, size, task = pending.pop(0)
            try:
                answer = await task
            except ApiError as exc:
                refused = True
                raise BatchFailed(first, exc) from exc
            except BaseException:
                refused = True
                raise
            report.batches.append(answer)
            if on_batch is not None:
                on_batch(size, answer)

        try:
            for index, batch in enumerate(batches(records_of(records), batch_size), start=first_batch):
                bodies = [record_body(record) for record in batch]
                path = f"/api/v1/datasets/{dataset}/vectors"
                write = self._write(
                    dataset,
                    "POST",
                    path,
                    {"vectors": bodies},
                    wait=wait,
                    key=batch_key(prefix, index, bodies),
                )
                pending.append((report.records, len(batch), asyncio.ensure_future(write)))
                report.records += len(batch)
                if len(pending) >= in_flight:
                    await acknowledge()
            while pending:
                await acknowledge()
        except Exception:
            # The batches already sent finish. When the records failed (not a batch), they all come before the
            # failure and count as acknowledged; after a refused batch none does, so what the report and
            # `on_batch` say was written is an unbroken run from the start of the stream.
            if not refused:
                with contextlib.suppress(Exception):
                    while pending:
                        await acknowledge()
            await asyncio.gather(*(task for _, _, task in pending), return_exceptions=True)
            raise
        except BaseException:
            # Interrupted: stop at once. Resending with the same keys later is safe.
            await _cancel(task for _, _, task in pending)
            raise
        return report

    async def delete(
        self,
        /,
        dataset: str,
        *,
        ids: Sequence[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        wait: bool = False,
    ) -> models.Accepted:
        """Delete by ids, or every vector whose metadata matches `filter`."""
        body = {"ids": list(ids)} if ids is not None else {"filter": dict(filter or {})}
        return await self._write(
            dataset, "POST", f"/api/v1/datasets/{dataset}/vectors/delete", body, wait=wait
        )

    async def update_metadata(
        self,
        /,
        dataset: str,
        vector_id: str,
        metadata: Mapping[str, Any],
        *,
        merge: bool = True,
        wait: bool = False,
    ) -> models.Accepted:
        body = {"metadata": dict(metadata), "merge": merge}
        return await self._write(
            dataset, "PATCH", f"/api/v1/datasets/{dataset}/vectors/{vector_id}", body, wait=wait
        )

    # Reads

    async def search(
        self,
        /,
        dataset: str,
        vector: Vector | None = None,
        *,
        text: str | None = None,
        mode: Literal["vector", "text", "hybrid"] | None = None,
        k: int = 10,
        offset: int = 0,
        filter: Mapping[str, Any] | None = None,
        include: Sequence[str] | None = None,
        consistency: Consistency | None = None,
        token: str | None = None,
        version: str | None = None,
        **options: Any,
    ) -> models.SearchResponse:
        """Vector, text or hybrid search; `options` are the request's other fields (`score_threshold`,
        `fusion`, `rrf_k`, `alpha`, `field`: a named vector field, `image`: a query image of an image field, as
        bytes or a URL, `queries`: inputs fused at once, ...). `version` (every read takes it): answer from that past version (an id
        from `versions`, a tag or a snapshot id), read-only."""
        body = _search_body(vector, text, mode, k, offset, filter, include, options)
        params = self._consistency(dataset, consistency, token, version)
        return await self._query(models.SearchResponse, dataset, "search", body, params)

    async def search_batch(
        self,
        /,
        dataset: str,
        searches: Sequence[Mapping[str, Any]],
        *,
        consistency: Consistency | None = None,
        token: str | None = None,
        version: str | None = None,
    ) -> models.SearchBatchResponse:
        """Several searches at one consistency wait; each mapping holds `search`'s arguments."""
        body = {
            "searches": [
                _search_body(
                    s.get("vector"),
                    s.get("text"),
                    s.get("mode"),
                    s.get("k", 10),
                    s.get("offset", 0),
                    s.get("filter"),
                    s.get("include"),
                    {n: v for n, v in s.items() if n not in _SEARCH_ARGUMENTS},
                )
                for s in searches
            ]
        }
        params = self._consistency(dataset, consistency, token, version)
        return await self._query(models.SearchBatchResponse, dataset, "search/batch", body, params)

    async def get(
        self,
        /,
        dataset: str,
        ids: Sequence[str],
        *,
        include: Sequence[str] | None = None,
        consistency: Consistency | None = None,
        token: str | None = None,
        version: str | None = None,
    ) -> list[models.VectorView]:
        """The vectors of these ids that exist, in the order asked."""
        body = {"ids": list(ids), "include": list(include or ["vector", "metadata", "text"])}
        params = self._consistency(dataset, consistency, token, version)
        answer = await self._query(models.VectorsResponse, dataset, "vectors/get", body, params)
        return answer.results

    async def scroll(
        self,
        /,
        dataset: str,
        *,
        filter: Mapping[str, Any] | None = None,
        page_size: int = 1000,
        include: Sequence[str] | None = None,
        consistency: Consistency | None = None,
        token: str | None = None,
        version: str | None = None,
    ) -> AsyncIterator[models.VectorView]:
        """Every vector (matching `filter`), page by page, to the end."""
        cursor: str | None = None
        params = self._consistency(dataset, consistency, token, version)
        while True:
            body: dict[str, Any] = {"filter": filter, "limit": page_size, "cursor": cursor}
            if include is not None:
                body["include"] = list(include)
            page = await self._read(
                models.ScrollResponse,
                "POST",
                f"/api/v1/datasets/{dataset}/scroll",
                {n: v for n, v in body.items() if v is not None},
                params=params,
            )
            for view in page.results:
                yield view
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def count(
        self,
        /,
        dataset: str,
        *,
        filter: Mapping[str, Any] | None = None,
        consistency: Consistency | None = None,
        token: str | None = None,
        version: str | None = None,
    ) -> int:
        body = {"filter": dict(filter)} if filter is not None else {}
        params = self._consistency(dataset, consistency, token, version)
        answer = await self._query(models.CountResponse, dataset, "count", body, params)
        return answer.count

    async def versions(self, /, dataset: str) -> list[models.DatasetVersionView]:
        """The dataset's history, oldest first: each version a read's `version` may name."""
        path = f"/api/v1/datasets/{dataset}/versions"
        return (await self._read(models.DatasetVersionList, "GET", path)).versions

    # Snapshots

    async def create_snapshot(
        self,
        /,
        dataset: str,
        *,
        keep_last: int | None = None,
        max_age_days: float | None = None,
        wait: bool = False,
    ) -> models.Accepted:
        """Snapshot the dataset as it is after the writes before this call; its id is the answer's
        `operation_id`. Then keep at most `keep_last` of the dataset's snapshots and none older than
        `max_age_days` (the retention, when given)."""
        body = _retention(keep_last, max_age_days)
        return await self._write(dataset, "POST", f"/api/v1/datasets/{dataset}/snapshots", body, wait=wait)

    async def list_snapshots(self, /, dataset: str) -> list[models.SnapshotView]:
        """The dataset's snapshots, oldest first (a deleted dataset's too, so it can be restored)."""
        path = f"/api/v1/datasets/{dataset}/snapshots"
        return (await self._read(models.SnapshotList, "GET", path)).snapshots

    async def get_snapshot(self, /, dataset: str, snapshot_id: str) -> models.SnapshotView:
        return await self._read(
            models.SnapshotView, "GET", f"/api/v1/datasets/{dataset}/snapshots/{snapshot_id}"
        )

    async def delete_snapshot(
        self, /, dataset: str, snapshot_id: str, *, wait: bool = False
    ) -> models.Accepted:
        path = f"/api/v1/datasets/{dataset}/snapshots/{snapshot_id}"
        return await self._write(dataset, "DELETE", path, None, wait=wait)

    async def restore_snapshot(
        self, /, dataset: str, snapshot_id: str, *, target: str | None = None, wait: bool = False
    ) -> models.Accepted:
        """Restore the snapshot over the dataset, or into `target`, a new dataset; reads of the dataset written
        then see the restore."""
        path = f"/api/v1/datasets/{dataset}/snapshots/{snapshot_id}/restore"
        query = {"target": target} if target is not None else None
        return await self._write(target or dataset, "POST", path, None, wait=wait, query=query)

    async def get_snapshot_schedule(self, /, dataset: str) -> models.SnapshotScheduleView:
        """`NotFound` when the dataset has none."""
        path = f"/api/v1/datasets/{dataset}/snapshot-schedule"
        return await self._read(models.SnapshotScheduleView, "GET", path)

    async def set_snapshot_schedule(
        self,
        /,
        dataset: str,
        every_s: float,
        *,
        keep_last: int | None = None,
        max_age_days: float | None = None,
    ) -> models.SnapshotScheduleView:
        """Snapshot the dataset every `every_s` seconds (the first `every_s` from now), with the retention applied
        after each; replaces the dataset's schedule. Not an operation: it holds once answered."""
        body = {"every_s": every_s, **_retention(keep_last, max_age_days)}
        url = f"{self._write_url}/api/v1/datasets/{dataset}/snapshot-schedule"
        response = await self._send("PUT", url, body, repeatable=True)
        return models.SnapshotScheduleView.model_validate_json(response.content)

    async def delete_snapshot_schedule(self, /, dataset: str) -> None:
        url = f"{self._write_url}/api/v1/datasets/{dataset}/snapshot-schedule"
        await self._send("DELETE", url, None, repeatable=True)

    # Operations and keys

    async def operation(self, /, operation_id: str) -> models.OperationView:
        return await self._read(models.OperationView, "GET", f"/api/v1/operations/{operation_id}")

    async def wait_for(
        self, /, operation: models.Accepted | str, *, timeout: float = 120.0, every: float = 0.1
    ) -> models.OperationView:
        """Poll an operation until it is no longer `accepted`; `TimeoutError` after `timeout` seconds."""
        operation_id = operation if isinstance(operation, str) else operation.operation_id
        async with asyncio.timeout(timeout):
            while True:
                view = await self.operation(operation_id)
                if view.status != "accepted":
                    return view
                await asyncio.sleep(every)

    async def create_key(
        self, /, tenant: str, roles: Sequence[str], *, datasets: Sequence[str] | None = None
    ) -> models.CreatedKey:
        """A new API key (shown this once). Not retried once sent: a repeat would make a second key."""
        body = {"tenant": tenant, "roles": list(roles), "datasets": list(datasets) if datasets else None}
        response = await self._send("POST", self._write_url + "/api/v1/admin/keys", body, repeatable=False)
        return models.CreatedKey.model_validate_json(response.content)

    async def list_keys(self, /, *, tenant: str | None = None) -> list[models.KeyView]:
        params = {"tenant": tenant} if tenant else None
        response = await self._send(
            "GET", self._write_url + "/api/v1/admin/keys", None, repeatable=True, params=params
        )
        return models.KeyList.model_validate_json(response.content).keys

    async def revoke_key(self, /, key_id: str) -> None:
        await self._send("DELETE", f"{self._write_url}/api/v1/admin/keys/{key_id}", None, repeatable=True)

    def last_token(self, dataset: str) -> str | None:
        """The consistency token of the last write this client made to `dataset`."""
        return self._tokens.get(dataset)

    # Transport

    def _consistency(
        self, dataset: str, consistency: Consistency | None, token: str | None, version: str | None
    ) -> dict[str, str]:
        """The query of a read: at a past version (what it holds is fixed: no level or remembered token
        applies; one given is sent, for the server to refuse), or at the consistency asked (by default,
        session with the last token)."""
        if version is not None:
            given = {"consistency": consistency, "token": token}
            return {"version": version} | {name: value for name, value in given.items() if value is not None}
        token = token or (self._tokens.get(dataset) if self._read_your_writes else None)
        if consistency is None:
            consistency = "session" if token else None
        params: dict[str, str] = {}
        if consistency is not None:
            params["consistency"] = consistency
        if consistency == "session" and token:
            params["token"] = token
        return params

    async def _write(
        self,
        dataset: str,
        method: str,
        path: str,
        body: Any,
        *,
        wait: bool,
        key: str | None = None,
        query: Mapping[str, str] | None = None,
    ) -> models.Accepted:
        headers = {"Idempotency-Key": key or f"sdk-{uuid.uuid4().hex}"}
        params = {**(query or {}), **({"wait": "true"} if wait else {})}
        response = await self._send(
            method, self._write_url + path, body, repeatable=True, params=params, headers=headers
        )
        accepted = models.Accepted.model_validate_json(response.content)
        self._remember(dataset, accepted.consistency_token)
        return accepted

    def _remember(self, dataset: str, token: str) -> None:
        known = self._tokens.get(dataset)
        if known is None or _position(token) >= _position(known):
            self._tokens[dataset] = token

    async def _query(
        self, model: type[M], dataset: str, route: str, body: Any, params: Mapping[str, str]
    ) -> M:
        """A read of a dataset's vectors with the query `_consistency` made."""
        return await self._read(model, "POST", f"/api/v1/datasets/{dataset}/{route}", body, params=params)

    async def _read(
        self,
        model: type[M],
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> M:
        response = await self._send(method, self._read_url + path, body, repeatable=True, params=params)
        return model.model_validate_json(response.content)

    async def _send(
        self,
        method: str,
        url: str,
        body: Any,
        *,
        repeatable: bool,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request with its retries. A request that is not `repeatable` is retried only where the server
        surely did not act on it: a refused connection, or a 429 (rate limits are checked before anything)."""
        attempts = self._retries.attempts
        for attempt in range(1, attempts + 1):
            try:
                response = await self._http.request(method, url, json=body, params=params, headers=headers)
            except httpx.TransportError as exc:
                if attempt == attempts or not (repeatable or isinstance(exc, httpx.ConnectError)):
                    kind = RequestTimeout if isinstance(exc, httpx.TimeoutException) else TransportError
                    raise kind(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(self._retries.delay(attempt, None))
                continue
            if response.is_success:
                return response
            wait = retry_after(response.headers.get("retry-after"))
            retry = response.status_code in RETRY_STATUSES and (repeatable or response.status_code == 429)
            if not retry or attempt == attempts:
                raise _error(response, wait)
            await asyncio.sleep(self._retries.delay(attempt, wait))
        raise AssertionError("unreachable: the last attempt returns or raises")


_SEARCH_ARGUMENTS = frozenset({"vector", "text", "mode", "k", "offset", "filter", "include"})


def _search_body(
    vector: Vector | None,
    text: str | None,
    mode: str | None,
    k: int,
    offset: int,
    filter: Mapping[str, Any] | None,
    include: Sequence[str] | None,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {"k": k, "offset": offset, **options}
    if "queries" in options:
        body["queries"] = [_query_input(query) for query in options["queries"]]
    if options.get("image") is not None:
        body["image"] = image(options["image"])
    if vector is not None:
        body["vector"] = pack(vector)
    if text is not None:
        body["text"] = text
    if mode is not None:
        body["mode"] = mode
    if filter is not None:
        body["filter"] = dict(filter)
    if include is not None:
        body["include"] = list(include)
    return body


def _retention(keep_last: int | None, max_age_days: float | None) -> dict[str, Any]:
    """The retention fields of a snapshot or a schedule: those given."""
    given = {"keep_last": keep_last, "max_age_days": max_age_days}
    return {name: value for name, value in given.items() if value is not None}


def _query_input(query: Mapping[str, Any]) -> dict[str, Any]:
    """One input of a fused search: its vector packed, its image (bytes) in base64."""
    given = dict(query)
    if given.get("vector") is not None:
        given["vector"] = pack(given["vector"])
    if given.get("image") is not None:
        given["image"] = image(given["image"])
    return given


async def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    waiting = list(tasks)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


def _position(token: str) -> tuple[int, int]:
    partition, _, offset = token.partition(":")
    try:
        return int(partition), int(offset)
    except ValueError:
        return (-1, -1)


def _error(response: httpx.Response, wait: float | None) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return api_error(response.status_code, body, wait)
