"""The synchronous client: the asynchronous one, run on an event loop thread of the client's own (anyio's
blocking portal), so both have one implementation, the same retries and the same connection reuse."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from tributary_client.aio import DEFAULT_URL, AsyncTributary

P = ParamSpec("P")
# The wrapped methods take `self` positional-only (`self, /`): ParamSpec's Concatenate requires it.
T = TypeVar("T")


def _blocking(
    method: Callable[Concatenate[AsyncTributary, P], Awaitable[T]],
) -> Callable[Concatenate[Tributary, P], T]:
    def call(self: Tributary, /, *args: P.args, **kwargs: P.kwargs) -> T:
        async def run() -> T:
            return await method(self._client, *args, **kwargs)

        return self._portal.call(run)

    call.__doc__, call.__name__ = method.__doc__, method.__name__
    return call


def _blocking_iterator(
    method: Callable[Concatenate[AsyncTributary, P], AsyncIterator[T]],
) -> Callable[Concatenate[Tributary, P], Iterator[T]]:
    def call(self: Tributary, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        iterator = method(self._client, *args, **kwargs)
        while True:
            try:
                yield self._portal.call(iterator.__anext__)
            except StopAsyncIteration:
                return

    call.__doc__, call.__name__ = method.__doc__, method.__name__
    return call


class Tributary:
    """A Tributary server over HTTP, with blocking calls; see `AsyncTributary` for what each call does."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, **options: Any) -> None:
        self._portal_context = start_blocking_portal()
        self._portal: BlockingPortal = self._portal_context.__enter__()

        async def make() -> AsyncTributary:
            return AsyncTributary(url, api_key, **options)

        self._client = self._portal.call(make)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._portal.call(self._client.close)
        self._portal_context.__exit__(None, None, None)

    def last_token(self, dataset: str) -> str | None:
        return self._client.last_token(dataset)

    create_dataset = _blocking(AsyncTributary.create_dataset)
    get_dataset = _blocking(AsyncTributary.get_dataset)
    list_datasets = _blocking(AsyncTributary.list_datasets)
    delete_dataset = _blocking(AsyncTributary.delete_dataset)
    upsert = _blocking(AsyncTributary.upsert)
    upsert_many = _blocking(AsyncTributary.upsert_many)
    delete = _blocking(AsyncTributary.delete)
    update_metadata = _blocking(AsyncTributary.update_metadata)
    search = _blocking(AsyncTributary.search)
    search_batch = _blocking(AsyncTributary.search_batch)
    get = _blocking(AsyncTributary.get)
    scroll = _blocking_iterator(AsyncTributary.scroll)
    count = _blocking(AsyncTributary.count)
    versions = _blocking(AsyncTributary.versions)
    create_snapshot = _blocking(AsyncTributary.create_snapshot)
    list_snapshots = _blocking(AsyncTributary.list_snapshots)
    get_snapshot = _blocking(AsyncTributary.get_snapshot)
    delete_snapshot = _blocking(AsyncTributary.delete_snapshot)
    restore_snapshot = _blocking(AsyncTributary.restore_snapshot)
    get_snapshot_schedule = _blocking(AsyncTributary.get_snapshot_schedule)
    set_snapshot_schedule = _blocking(AsyncTributary.set_snapshot_schedule)
    delete_snapshot_schedule = _blocking(AsyncTributary.delete_snapshot_schedule)
    operation = _blocking(AsyncTributary.operation)
    wait_for = _blocking(AsyncTributary.wait_for)
    create_key = _blocking(AsyncTributary.create_key)
    list_keys = _blocking(AsyncTributary.list_keys)
    revoke_key = _blocking(AsyncTributary.revoke_key)
