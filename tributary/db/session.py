"""Engine and session factories."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from tributary.resilience import CircuitBreaker, Unavailable
from tributary.settings import Settings

DATABASE = "PostgreSQL"
CONNECT_TIMEOUT_S = 5.0


def make_engine(url: str, *, search_path: str | None = None) -> AsyncEngine:
    """`search_path` confines a PostgreSQL engine to one schema (each test run gets its own)."""
    kwargs: dict[str, Any] = {}
    if url.startswith("postgresql+asyncpg"):
        # A server restart or a proxy's idle timeout leaves dead connections in the pool; a local file cannot.
        kwargs["pool_pre_ping"] = True
        # A server that does not answer at all (not even a refusal) costs this much, not asyncpg's 60 s, before
        # the breaker counts it.
        kwargs["connect_args"] = {"timeout": CONNECT_TIMEOUT_S}
        if search_path:
            kwargs["connect_args"]["server_settings"] = {"search_path": search_path}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        _break_circuit(engine, CircuitBreaker(DATABASE))
    return engine


def _break_circuit(engine: AsyncEngine, breaker: CircuitBreaker) -> None:
    """Connection failures open the breaker: while it is open, every use of the engine fails at once with
    `Unavailable` (a 503, or a worker's backoff) instead of waiting on a refused or hanging connect, and every
    `reset_s` one connect probes whether the server is back."""

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        breaker.before()
        try:
            connection = dialect.connect(*cargs, **cparams)
        except Exception as exc:
            breaker.failed(exc)
            raise Unavailable(
                DATABASE, f"cannot connect ({type(exc).__name__})", breaker.retry_after_s
            ) from exc
        breaker.succeeded()
        return connection

    def lost(context: ExceptionContext) -> None:
        # A connection that died under a statement (server restart): the pool drops it; the caller sees the
        # outage, not a driver error. Pre-ping failures stay inside the pool, which reconnects.
        if context.is_disconnect and not context.is_pre_ping:
            breaker.failed(context.original_exception)
            raise Unavailable(DATABASE, "the connection was lost", breaker.retry_after_s) from (
                context.original_exception
            )

    event.listen(engine.sync_engine, "do_connect", connect)
    event.listen(engine.sync_engine, "handle_error", lost)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while the embedded bus writes; FULL sync keeps an acknowledged command
    # on disk through a power loss, which is what a 202 promises.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def engine_for(settings: Settings) -> AsyncEngine:
    return make_engine(settings.resolved_database_url, search_path=settings.database_schema)
