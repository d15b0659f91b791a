"""The `tributary` command."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from tributary import logs
from tributary.settings import Settings

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
) -> None:
    """Run Tributary."""
    if role not in ("embedded", "command-api", "query-api", "applier", "projector"):
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role")
    if workers > 1 and role not in ("command-api", "query-api"):
        raise typer.BadParameter(f"the {role} role runs as one process", param_hint="--workers")
    logs.configure()
    settings = load_settings()
    if role in ("applier", "projector"):
        from tributary.worker import run_worker

        asyncio.run(run_worker(settings, role, port=port))  # type: ignore[arg-type]
        return
    from tributary.app import WORKER_ROLE_VARIABLE, create_app

    if role == "embedded":
        typer.echo(f"Tributary embedded: data in {settings.data_dir.resolve()}")
    host, port = host or settings.host, port or settings.port
    if workers == 1:
        uvicorn.run(
            create_app(settings, role),  # type: ignore[arg-type]
            host=host,
            port=port,
            log_level="info",
            access_log=settings.access_log,
        )
        return
    # Worker processes import the app by name; they read the role from the environment they inherit.
    os.environ[WORKER_ROLE_VARIABLE] = role
    uvicorn.run(
        "tributary.app:app_for_worker",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=settings.access_log,
    )


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


@app.command()
def asyncapi(
    output: Annotated[Path | None, typer.Option(help="Write the document here instead of stdout")] = None,
) -> None:
    """Print the AsyncAPI document of the command, event and dead-letter topics."""
    from tributary.asyncapi import asyncapi_document

    text = json.dumps(asyncapi_document(load_settings()), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
