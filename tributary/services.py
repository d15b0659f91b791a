"""What one process serves with: the typed `Services` that entrypoints/bootstrap.py builds once per role from the
settings, and the one place that finds it on the running app (`app.state.services`, nothing else on app.state).

The roles extend it (query_api/services.py adds the read side) rather than the kernel naming their types, so the
kernel imports no role package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tributary.auth.jwt import JwtVerifier
from tributary.auth.key_cache import KeyCache
from tributary.auth.rate_limit import RateLimiter
from tributary.bus import CommandPublisher
from tributary.embedding import Embedders
from tributary.health import Readiness
from tributary.settings import Settings

if (
    TYPE_CHECKING
):  # audit.py finds the services through this module, so it cannot be imported back at run time
    from tributary.audit import AuditSink, RefusalTally


@dataclass(kw_only=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    readiness: Readiness
    jwt_verifier: JwtVerifier | None
    key_cache: KeyCache
    embedders: Embedders
    rate_limiter: RateLimiter | None
    refusals: RefusalTally
    # Kafka's audit topic (the distributed roles); embedded mode records in its database only.
    audit_sink: AuditSink | None
    # The AsyncAPI document `/asyncapi.json` serves, built once.
    asyncapi: dict[str, Any]
    # The roles that take writes (embedded, command-api).
    publisher: CommandPublisher | None = None


def services_of(app: Any) -> Services | None:
    """The services of a running app; None before its lifespan started them (or on a worker's health app)."""
    services: Services | None = getattr(app.state, "services", None)
    return services
