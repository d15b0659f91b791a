"""The `tributary` command."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from tributary.settings import Settings

app = typer.Typer(help="Tributary: vector search for DeepLake over Kafka.", no_args_is_help=True)


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
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8080)")] = None,
) -> None:
    """Run Tributary."""
    if role not in ("embedded", "command-api", "query-api", "applier", "projector"):
        raise typer.BadParameter(f"unknown role {role!r}", param_hint="--role")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if role in ("applier", "projector"):
        from tributary.worker import run_worker

        asyncio.run(run_worker(settings, role))  # type: ignore[arg-type]
        return
    from tributary.app import create_app

    if role == "embedded":
        typer.echo(f"Tributary embedded: data in {settings.data_dir.resolve()}")
    uvicorn.run(
        create_app(settings, role),  # type: ignore[arg-type]
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )


@app.command()
def migrate() -> None:
    """Apply the database migrations to the configured database."""
    from tributary.db.migrate import upgrade
    from tributary.db.session import engine_for

    settings = Settings()
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

    settings = Settings()

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

    text = json.dumps(asyncapi_document(Settings()), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
