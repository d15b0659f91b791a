"""The `tributary` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast, get_args

import typer
import uvicorn
from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from events.names import NAME_PATTERN
from schemas.dead_letters import DeadLetterDetail, DeadLetterList, ReplayedLetter, ReplayReport
from tributary import logs
from tributary.db.models import DeadLetterStatus
from tributary.metrics import MULTIPROC_DIR_VARIABLE
from tributary.settings import ApiRole, Role, Settings, WorkerRole

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from command_api.dead_letters import DeadLetters
    from tributary.backup_store import BackupStore
    from tributary.storage import DatasetStore

T = TypeVar("T")

app = typer.Typer(help="Tributary: vector search for DeepLake over Kafka.", no_args_is_help=True)
log = logging.getLogger("tributary")


def load_settings(role: str = "cli") -> Settings:
    """The settings, with the logging of `role` configured as they say (the commands but `serve` log as `cli`:
    migrations, a catalog rebuild's Kafka client), or one line per bad setting (its variable, what is wrong) and
    exit 2: a traceback of the validator says less, forty lines later."""
    try:
        settings = Settings()
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
    else:
        logs.configure(role, logs.resolve_format(settings.log_format, role))
        return settings
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
    settings = load_settings(role)
    if role in get_args(WorkerRole):
        from entrypoints.worker import run_worker

        asyncio.run(run_worker(settings, cast(WorkerRole, role), port=port))
        return
    from entrypoints.http_app import WORKER_ROLE_VARIABLE, create_app

    if role == "embedded":
        log.info("Tributary embedded: data in %s", settings.data_dir.resolve())
    host, port = host or settings.host, port or settings.port
    grpc_port = settings.grpc_port if grpc_port is None else grpc_port
    settings = settings.model_copy(update={"host": host, "grpc_port": grpc_port})
    if grpc_port:
        log.info("gRPC API on %s:%d", host, grpc_port)
    if workers == 1:
        uvicorn.run(
            create_app(settings, cast(ApiRole, role)),
            host=host,
            port=port,
            log_level="info",
            access_log=settings.access_log,
            # uvicorn's own lines go to the root logger, in the format of every other line (tributary/logs.py).
            log_config=None,
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
            log_config=None,
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


dead_letters_app = typer.Typer(
    help="Dead letters, on the server's machine: list, inspect, replay after a fix, purge (every tenant's, or "
    "--tenant's). The admin API (/api/v1/admin/dead-letters) does the same for a tenant's admins."
)
app.add_typer(dead_letters_app, name="dead-letters")

TenantOption = Annotated[str | None, typer.Option(help="Only this tenant's dead letters")]
DatasetOption = Annotated[str | None, typer.Option(help="Only the dead letters of this dataset")]
StatusOption = Annotated[DeadLetterStatus | None, typer.Option(help="Only the dead letters in this status")]


@contextlib.asynccontextmanager
async def dead_letters_of(tenant: str | None, *, replaying: bool = False) -> AsyncIterator[DeadLetters]:
    """The dead-letter service over the configured database; `replaying`, with the deployment's command bus:
    Kafka's command topic, or embedded mode's log (which a running server reads within a second)."""
    from command_api.dead_letters import DeadLetters
    from entrypoints.embedded_bus import EmbeddedBus
    from events import Topics
    from tributary.bus import CommandPublisher
    from tributary.db.session import engine_for, make_sessionmaker
    from tributary.kafka import KafkaCommandPublisher
    from tributary.storage import DatasetStore

    settings = load_settings()
    engine = engine_for(settings)
    sessions = make_sessionmaker(engine)
    kafka: KafkaCommandPublisher | None = None
    publisher: CommandPublisher | None = None
    if replaying and settings.database_url:
        publisher = kafka = KafkaCommandPublisher(Topics(settings.topic_prefix), settings)
    elif replaying:
        publisher = EmbeddedBus(
            sessions, DatasetStore(settings.resolved_storage_root), settings.default_tenant
        )
    try:
        async with sessions() as session:
            yield DeadLetters(tenant, session, settings, publisher)
    finally:
        if kafka is not None:
            await kafka.close()
        await engine.dispose()


def echo_json(model: BaseModel) -> None:
    typer.echo(model.model_dump_json())


@dead_letters_app.command("list")
def list_dead_letters(
    tenant: TenantOption = None,
    dataset: DatasetOption = None,
    status: StatusOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many")] = 1000,
) -> None:
    """One JSON line per dead letter (without its message), oldest first."""

    async def run() -> DeadLetterList:
        async with dead_letters_of(tenant) as dead_letters:
            return await dead_letters.list(status=status, dataset=dataset, limit=limit, offset=0)

    for letter in asyncio.run(run()).dead_letters:
        echo_json(letter)


@dead_letters_app.command("show")
def show_dead_letter(letter_id: str) -> None:
    """A dead letter as JSON, with its reason and the original message."""

    async def run() -> DeadLetterDetail:
        async with dead_letters_of(None) as dead_letters:
            return await dead_letters.get(letter_id)

    echo_json(refusing(run))


@dead_letters_app.command("replay")
def replay_dead_letters(
    letter_ids: Annotated[list[str] | None, typer.Argument(help="The dead letters to replay")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every dead letter not replayed yet")] = False,
    tenant: TenantOption = None,
    dataset: DatasetOption = None,
) -> None:
    """Submit dead letters' commands again as new operations (after fixing what rejected them): one JSON line
    per replay. A dead letter replayed before answers its first replay's operation; nothing is sent again."""
    if bool(letter_ids) == every:
        raise typer.BadParameter("give dead-letter ids or --all", param_hint="--all")

    async def run() -> ReplayReport:
        async with dead_letters_of(tenant, replaying=True) as dead_letters:
            if every:
                return await dead_letters.replay_all(dataset)
            return ReplayReport(
                replayed=[
                    ReplayedLetter(dead_letter=letter_id, operation=await dead_letters.replay(letter_id))
                    for letter_id in letter_ids or []
                ],
                skipped=[],
            )

    report = refusing(run)
    for replayed in report.replayed:
        echo_json(replayed)
    for skipped in report.skipped:
        typer.echo(f"tributary: not replayed: {skipped.dead_letter}: {skipped.reason}", err=True)


@dead_letters_app.command("purge")
def purge_dead_letters(
    letter_ids: Annotated[list[str] | None, typer.Argument(help="The dead letters to drop")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every dead letter (of --tenant, --status, --dataset)")
    ] = False,
    tenant: TenantOption = None,
    dataset: DatasetOption = None,
    status: StatusOption = None,
) -> None:
    """Drop dead letters for good."""
    if bool(letter_ids) == every:
        raise typer.BadParameter("give dead-letter ids or --all", param_hint="--all")

    async def run() -> int:
        async with dead_letters_of(tenant) as dead_letters:
            if every:
                return await dead_letters.purge_all(status=status, dataset=dataset)
            for letter_id in letter_ids or []:
                await dead_letters.purge(letter_id)
            return len(letter_ids or [])

    typer.echo(f"purged {refusing(run)} dead letters")


def refusing(run: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`run`'s answer, or its refusal (a missing dead letter, a corrupt backup) or a dependency away (Kafka, the
    backup store) as one line and exit 1."""
    from command_api.operations import NotPublished
    from tributary.failures import Refused
    from tributary.resilience import Unavailable

    try:
        return asyncio.run(run())
    except Refused as exc:
        typer.echo(f"tributary: {exc.reason}", err=True)
    except NotPublished as exc:
        typer.echo(f"tributary: {exc.message}", err=True)
    except Unavailable as exc:
        typer.echo(f"tributary: {exc}", err=True)
    raise typer.Exit(1)


@app.command()
def backup(
    destination: Annotated[
        str,
        typer.Argument(
            help="An empty folder, or s3://bucket/prefix (endpoint, region, key: the backup settings)"
        ),
    ],
) -> None:
    """Back up the whole deployment: every dataset of every tenant at its last commit, and the SQL catalog (keys,
    operations, audit, datasets, dead letters), checksummed, to be put back by `tributary restore`."""
    from tributary.disaster_recovery import back_up

    settings = load_settings()

    async def run() -> str:
        async with deployment_of(settings, destination) as (engine, store, backups):
            manifest = await back_up(engine, store, backups)
        return f"backup {manifest.backup_id}: {len(manifest.datasets)} datasets, " + ", ".join(
            f"{dump.rows} {dump.table}" for dump in manifest.tables
        )

    typer.echo(refusing(run))


@app.command()
def restore(
    source: Annotated[str, typer.Argument(help="The folder or s3://bucket/prefix of a `tributary backup`")],
) -> None:
    """Put a backup into this (fresh) deployment: every object is checked against its checksum before anything
    changes, then the datasets are created and the SQL catalog's tables replaced (the schema migrated). Start
    the deployment after it."""
    from tributary.disaster_recovery import restore as restore_backup

    settings = load_settings()

    async def run() -> str:
        async with deployment_of(settings, source) as (engine, store, backups):
            manifest = await restore_backup(engine, store, backups)
        return f"restored backup {manifest.backup_id} of {manifest.created_at.isoformat()}: " + (
            f"{len(manifest.datasets)} datasets"
        )

    typer.echo(refusing(run))


@contextlib.asynccontextmanager
async def deployment_of(
    settings: Settings, backup_url: str
) -> AsyncIterator[tuple[AsyncEngine, DatasetStore, BackupStore]]:
    """The configured database and dataset storage, and the backup store at `backup_url` (with the settings'
    S3 endpoint, region and encryption key)."""
    from tributary.backup_store import open_backup_store
    from tributary.db.session import engine_for
    from tributary.storage import DatasetStore

    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = engine_for(settings)
    try:
        yield (
            engine,
            DatasetStore(settings.resolved_storage_root),
            open_backup_store(settings.model_copy(update={"backup_url": backup_url})),
        )
    finally:
        await engine.dispose()
