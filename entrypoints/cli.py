"""The `tributary` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, cast, get_args

import typer
import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from events.names import NAME_PATTERN
from tributary import logs
from tributary.metrics import MULTIPROC_DIR_VARIABLE
from tributary.settings import ApiRole, Role, Settings, WorkerRole

app = typer.Typer(help="Tributary: vector search for DeepLake over Kafka.", no_args_is_help=True)


def load_settings() -> Settings:
    """The settings, or one line per bad setting (its variable, what is wrong) and exit 2: a traceback of the
    validator says less, forty lines later."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = (
                "TRIBUTARY_" + "_".join(str(part) for part in error["loc"]).upper()
                if error["loc"]
                else "settings"
            )
            reason = error["msg"].removeprefix("Value error, ")
            typer.echo(f"tributary: {where}: {reason}", err=True)
    except SettingsError as exc:
        typer.echo(f"tributary: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def serve(
    role: Annotated[
        str,
        typer.Option(
            help="embedded (one process, no servers) or one distributed role: "
            "command-api, query-api, applier, projector"
        ),
    ] = "embedded",
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="HTTP port (default 8080); for the applier and projector, the port of /healthz and /readyz"
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes serving the port (command-api and query-api): each query-api process follows the "
            "event log and holds its own projections, so reads scale with cores",
        ),
    ] = 1,
    grpc_port: Annotated[
        int | None,
        typer.Option(help="gRPC port of embedded mode, command-api and query-api (default 50051); 0: none"),
    ] = None,
) -> None:
    """Run Tributary."""
    if role not in get_args(Role):
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role")
    if workers > 1 and role not in ("command-api", "query-api"):
        raise typer.BadParameter(f"the {role} role runs as one process", param_hint="--workers")
    logs.configure()
    settings = load_settings()
    if role in get_args(WorkerRole):
        from entrypoints.worker import run_worker

        asyncio.run(run_worker(settings, cast(WorkerRole, role), port=port))
        return
    from entrypoints.http_app import WORKER_ROLE_VARIABLE, create_app

    if role == "embedded":
        typer.echo(f"Tributary embedded: data in {settings.data_dir.resolve()}")
    host, port = host or settings.host, port or settings.port
    grpc_port = settings.grpc_port if grpc_port is None else grpc_port
    settings = settings.model_copy(update={"host": host, "grpc_port": grpc_port})
    if grpc_port:
        typer.echo(f"gRPC API on {host}:{grpc_port}")
    if workers == 1:
        uvicorn.run(
            create_app(settings, cast(ApiRole, role)),
            host=host,
            port=port,
            log_level="info",
            access_log=settings.access_log,
        )
        return
    # Worker processes import the app by name; they read the role and settings from the environment they inherit.
    os.environ.update(
        {WORKER_ROLE_VARIABLE: role, "TRIBUTARY_HOST": host, "TRIBUTARY_GRPC_PORT": str(grpc_port)}
    )
    with metrics_shared_by_workers():
        uvicorn.run(
            "entrypoints.http_app:app_for_worker",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=settings.access_log,
        )


@contextlib.contextmanager
def metrics_shared_by_workers() -> Iterator[None]:
    """The directory where the worker processes keep their metrics (prometheus_client's multiprocess mode), so
    that a scrape answered by any of them reports all: the operator's PROMETHEUS_MULTIPROC_DIR emptied of a
    previous run's files, else a temporary one removed at exit. Set before the workers start, as
    prometheus_client reads it on import."""
    given = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield
        return
    with tempfile.TemporaryDirectory(prefix="tributary-metrics-") as temporary:
        os.environ[MULTIPROC_DIR_VARIABLE] = temporary
        try:
            yield
        finally:
            del os.environ[MULTIPROC_DIR_VARIABLE]


@app.command()
def migrate() -> None:
    """Apply the database migrations to the configured database."""
    from tributary.db.migrate import upgrade
    from tributary.db.session import engine_for

    settings = load_settings()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        engine = engine_for(settings)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo("migrations applied")


@app.command("rebuild-catalog")
def rebuild_catalog_command() -> None:
    """Throw the SQL catalog away and fold it again from the event log (Kafka's event topic when a database URL is
    configured, else embedded mode's event table)."""
    from tributary.db.session import engine_for, make_sessionmaker
    from workers.catalog_rebuild import embedded_events, kafka_events, rebuild_catalog

    settings = load_settings()

    async def run() -> int:
        engine = engine_for(settings)
        sessions = make_sessionmaker(engine)
        try:
            events = kafka_events(settings) if settings.database_url else embedded_events(sessions)
            return await rebuild_catalog(sessions, events)
        finally:
            await engine.dispose()

    typer.echo(f"catalog rebuilt from {asyncio.run(run())} events")


keys_app = typer.Typer(help="API keys, on the server's machine: the way back in when no admin key is left.")
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create_key(
    admin: Annotated[bool, typer.Option("--admin", help="An admin key (manages the tenant's keys)")] = False,
    role: Annotated[
        list[str] | None, typer.Option(help="A role of the key (admin, writer, reader); may be repeated")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="The key's tenant (default: the default tenant)")] = None,
) -> None:
    """Make an API key straight in the configured database and print it (shown once). Whoever can run this can
    read the server's settings, so it needs no credential: it is how an operator gets back in after the last
    admin key is revoked or lost."""
    from tributary.auth.authenticate import issue_key
    from tributary.auth.principal import ROLES
    from tributary.db.migrate import upgrade
    from tributary.db.session import engine_for, make_sessionmaker

    settings = load_settings()
    roles = set(role or []) | ({"admin"} if admin else set())
    if not roles:
        raise typer.BadParameter("give --admin or at least one --role", param_hint="--role")
    if unknown := roles - ROLES:
        raise typer.BadParameter(f"unknown roles {sorted(unknown)}", param_hint="--role")
    tenant = tenant or settings.default_tenant
    if re.fullmatch(NAME_PATTERN, tenant) is None:
        raise typer.BadParameter(f"not a tenant name: {tenant!r}", param_hint="--tenant")

    async def run() -> tuple[str, str]:
        if settings.database_url is None:
            # Embedded mode's own SQLite file, perhaps before its first start.
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = engine_for(settings)
        try:
            if settings.database_url is None:
                await upgrade(engine)
            async with make_sessionmaker(engine)() as session:
                return await issue_key(session, tenant, roles)
        finally:
            await engine.dispose()

    key_id, key = asyncio.run(run())
    typer.echo(
        f"key {key_id} for tenant {tenant!r}, roles {', '.join(sorted(roles))} (shown once):", err=True
    )
    typer.echo(key)


@app.command()
def asyncapi(
    output: Annotated[Path | None, typer.Option(help="Write the document here instead of stdout")] = None,
) -> None:
    """Print the AsyncAPI document of the command, event and dead-letter topics."""
    from entrypoints.asyncapi import asyncapi_document

    text = json.dumps(asyncapi_document(load_settings()), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
