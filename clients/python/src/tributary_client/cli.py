"""`tributary-cli`: the data plane from a shell, on the Python SDK.

The server's URL and API key come from `--url`/`--key`, else `TRIBUTARY_URL`/`TRIBUTARY_API_KEY`, else a profile
of `~/.config/tributary/profiles.toml` (`TRIBUTARY_PROFILES` names another file):

    [default]
    url = "http://127.0.0.1:8080"
    api_key = "trb_..."
    # read_url = "http://query-api:8081"   where the query API is served apart
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tributary_client.aio import DEFAULT_URL, AsyncTributary
from tributary_client.errors import BatchFailed, TributaryError
from tributary_client.files import BadRecord, Source

T = TypeVar("T")
Output = Literal["table", "json"]

app = typer.Typer(
    help="Tributary's data plane: datasets, ingest, search, snapshots, keys, operations.",
    no_args_is_help=True,
)
datasets_app = typer.Typer(help="Create, list, show and delete datasets.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
ops_app = typer.Typer(help="Follow operations.", no_args_is_help=True)
snapshots_app = typer.Typer(help="Take, list, show, restore and delete snapshots.", no_args_is_help=True)
schedule_app = typer.Typer(help="A dataset's snapshot schedule.", no_args_is_help=True)
snapshots_app.add_typer(schedule_app, name="schedule")
app.add_typer(datasets_app, name="datasets")
app.add_typer(snapshots_app, name="snapshots")
app.add_typer(keys_app, name="keys")
app.add_typer(ops_app, name="ops")
out = Console()
err = Console(stderr=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@dataclass
class Connection:
    url: str
    api_key: str | None
    read_url: str | None
    output: Output

    def run(self, work: Callable[[AsyncTributary], Awaitable[T]]) -> T:
        async def session() -> T:
            async with AsyncTributary(self.url, self.api_key, read_url=self.read_url) as client:
                return await work(client)

        # Ctrl-C raises where the program is, as Python does by default. asyncio.run's own handler would cancel
        # the task instead, and Python 3.11's wait_for can swallow that cancellation: an interrupted ingest then
        # ran on to its end (seen in CI).
        previous = signal.signal(signal.SIGINT, _interrupt)
        try:
            return asyncio.run(session())
        except BatchFailed:
            raise  # `ingest` names the file and record
        except TributaryError as exc:
            err.print(f"[red]error[/red]: {exc}", highlight=False)
            raise typer.Exit(1) from None
        finally:
            signal.signal(signal.SIGINT, previous)

    def show(self, rows: Sequence[BaseModel], columns: Sequence[str]) -> None:
        if self.output == "json":
            out.print_json(json.dumps([row.model_dump(mode="json", exclude_none=True) for row in rows]))
            return
        table = Table()
        for column in columns:
            # Folded, never cut: a new key is shown this once.
            table.add_column(column, overflow="fold")
        for row in rows:
            values = row.model_dump(mode="json")
            table.add_row(*(_cell(values.get(column)) for column in columns))
        out.print(table)


def _cell(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def _profile(name: str) -> dict[str, str]:
    path = Path(os.environ.get("TRIBUTARY_PROFILES", Path.home() / ".config" / "tributary" / "profiles.toml"))
    if not path.exists():
        return {}
    profiles = tomllib.loads(path.read_text())
    if name not in profiles:
        raise typer.BadParameter(f"no profile {name!r} in {path}", param_hint="--profile")
    return {key: str(value) for key, value in profiles[name].items()}


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(envvar="TRIBUTARY_URL", help="The server (the command API)")
    ] = None,
    key: Annotated[str | None, typer.Option(envvar="TRIBUTARY_API_KEY", help="The API key")] = None,
    read_url: Annotated[
        str | None, typer.Option(envvar="TRIBUTARY_READ_URL", help="The query API, where served apart")
    ] = None,
    profile: Annotated[
        str, typer.Option(envvar="TRIBUTARY_PROFILE", help="A profile of the profiles file")
    ] = ("default"),
    output: Annotated[Output, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    saved = _profile(profile)
    ctx.obj = Connection(
        url or saved.get("url", DEFAULT_URL),
        key or saved.get("api_key"),
        read_url or saved.get("read_url"),
        output,
    )


def _json(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc.msg}", param_hint=option) from None


ANSWER_COLUMNS = ("operation_id", "status", "reason")
DATASET_COLUMNS = ("name", "dimensions", "metric", "vector_count", "version", "updated_at")


@datasets_app.command("list")
def datasets_list(ctx: typer.Context) -> None:
    connection: Connection = ctx.obj
    connection.show(connection.run(lambda c: c.list_datasets()), DATASET_COLUMNS)


@datasets_app.command("show")
def datasets_show(ctx: typer.Context, name: str) -> None:
    connection: Connection = ctx.obj
    connection.show([connection.run(lambda c: c.get_dataset(name))], DATASET_COLUMNS)


@datasets_app.command("create")
def datasets_create(
    ctx: typer.Context,
    name: str,
    dimensions: Annotated[int, typer.Option(help="Vector dimensions")],
    metric: Annotated[Literal["cosine", "dot", "l2"], typer.Option()] = "cosine",
    metadata_schema: Annotated[str | None, typer.Option(help='JSON, e.g. {"lang": "string"}')] = None,
    text_field: Annotated[str | None, typer.Option()] = None,
    embedder: Annotated[str | None, typer.Option(help="JSON embedder configuration")] = None,
) -> None:
    connection: Connection = ctx.obj
    answer = connection.run(
        lambda c: c.create_dataset(
            name,
            dimensions,
            metric=metric,
            metadata_schema=_json(metadata_schema, "--metadata-schema"),
            text_field=text_field,
            embedder=_json(embedder, "--embedder"),
        )
    )
    connection.show([answer], ANSWER_COLUMNS)


@datasets_app.command("delete")
def datasets_delete(ctx: typer.Context, name: str) -> None:
    connection: Connection = ctx.obj
    connection.show([connection.run(lambda c: c.delete_dataset(name, wait=True))], ("operation_id", "status"))


@app.command()
def ingest(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines, CSV, Parquet or .npy")
    ],
    dataset: Annotated[str, typer.Option(help="The dataset to write to")],
    ids: Annotated[Path | None, typer.Option(exists=True, help="For .npy: a file of ids, one a line")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 1_000,
    in_flight: Annotated[int, typer.Option(min=1, max=64, help="Batches sent at a time")] = 4,
    restart: Annotated[bool, typer.Option(help="Ignore a previous interrupted run of this ingest")] = False,
) -> None:
    """Write every record of FILE, with progress. Interrupted (Ctrl-C, a lost connection), the same command
    resumes: it skips what the server acknowledged, and batches sent but unacknowledged are answered, not
    applied again (each batch's Idempotency-Key derives from the file, its position and its content)."""
    connection: Connection = ctx.obj
    source = Source(file, ids)
    checkpoint = Checkpoint.of(source, dataset, connection.url)
    done = 0 if restart else checkpoint.load(batch_size)
    total = source.count()
    started, sent = time.monotonic(), 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err) as progress:
        bar = progress.add_task(f"ingest {file.name}", total=total, completed=done, rate="")

        def acknowledged(records: int, _answer: object) -> None:
            nonlocal done, sent
            done, sent = done + records, sent + records
            checkpoint.save(done, batch_size)
            rate = sent / max(time.monotonic() - started, 1e-9)
            progress.update(bar, completed=done, rate=f"{rate:,.0f} records/s")

        try:
            connection.run(
                lambda c: c.upsert_many(
                    dataset,
                    source.records(skip=done),
                    batch_size=batch_size,
                    in_flight=in_flight,
                    key_prefix=checkpoint.name,
                    first_batch=done // batch_size,
                    on_batch=acknowledged,
                )
            )
        except BadRecord as exc:
            err.print(
                f"[red]bad record[/red] {exc}; {done:,} records before it were written", highlight=False
            )
            raise typer.Exit(1) from None
        except BatchFailed as exc:
            where = (
                f"record {exc.record}"
                if exc.record is not None
                else f"the batch from record {exc.first_record}"
            )
            err.print(
                f"[red]refused[/red] {file}: {where}: {exc.reason}; {done:,} records before it were written",
                highlight=False,
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print(f"interrupted: {done:,} of {total:,} records written; run the same command to resume")
            raise typer.Exit(130) from None
    elapsed = time.monotonic() - started
    checkpoint.clear()
    err.print(
        f"{sent:,} records in {elapsed:.1f} s: {sent / max(elapsed, 1e-9):,.0f} records/s ({done:,} in all)"
    )


@dataclass(frozen=True)
class Checkpoint:
    """How far an ingest got, kept between runs: records acknowledged, with the batch size they were sent in
    (a resumed run keeps it, so its batches, and their keys, are the same)."""

    path: Path

    @classmethod
    def of(cls, source: Source, dataset: str, url: str) -> Checkpoint:
        stat = source.path.stat()
        identity = f"{source.path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{dataset}\0{url}"
        state = Path(os.environ.get("TRIBUTARY_CLI_STATE", Path.home() / ".cache" / "tributary" / "ingest"))
        return cls(state / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json")

    @property
    def name(self) -> str:
        return self.path.stem

    def load(self, batch_size: int) -> int:
        if not self.path.exists():
            return 0
        saved = json.loads(self.path.read_text())
        if saved["batch_size"] != batch_size:
            raise typer.BadParameter(
                f"the interrupted run used --batch-size {saved['batch_size']}: resume with it, or --restart"
            )
        return int(saved["acknowledged"])

    def save(self, acknowledged: int, batch_size: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps({"acknowledged": acknowledged, "batch_size": batch_size}))
        partial.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@app.command()
def search(
    ctx: typer.Context,
    dataset: str,
    vector: Annotated[str | None, typer.Option(help="The query vector as JSON")] = None,
    text: Annotated[str | None, typer.Option(help="Query text")] = None,
    mode: Annotated[Literal["vector", "text", "hybrid"] | None, typer.Option()] = None,
    k: Annotated[int, typer.Option(min=1)] = 10,
    filter: Annotated[str | None, typer.Option(help="A JSON filter")] = None,
) -> None:
    connection: Connection = ctx.obj
    answer = connection.run(
        lambda c: c.search(
            dataset, _json(vector, "--vector"), text=text, mode=mode, k=k, filter=_json(filter, "--filter")
        )
    )
    connection.show(answer.results, ("id", "score", "metadata"))


@app.command()
def get(ctx: typer.Context, dataset: str, ids: list[str]) -> None:
    connection: Connection = ctx.obj
    connection.show(connection.run(lambda c: c.get(dataset, ids)), ("id", "metadata", "text"))


@app.command()
def count(
    ctx: typer.Context, dataset: str, filter: Annotated[str | None, typer.Option(help="A JSON filter")] = None
) -> None:
    connection: Connection = ctx.obj
    counted = connection.run(lambda c: c.count(dataset, filter=_json(filter, "--filter")))
    out.print_json(json.dumps({"count": counted})) if connection.output == "json" else out.print(counted)


SNAPSHOT_COLUMNS = ("snapshot_id", "dataset", "vector_count", "size_bytes", "created_at")
SCHEDULE_COLUMNS = ("dataset", "every_s", "keep_last", "max_age_days", "next_at")
KeepLast = Annotated[int | None, typer.Option(help="Then keep at most this many snapshots")]
MaxAgeDays = Annotated[float | None, typer.Option(help="Then delete the snapshots older than this")]


@snapshots_app.command("take")
def snapshots_take(
    ctx: typer.Context, dataset: str, keep_last: KeepLast = None, max_age_days: MaxAgeDays = None
) -> None:
    """Snapshot DATASET, waiting until it is taken; its id is the operation id."""
    connection: Connection = ctx.obj
    answer = connection.run(
        lambda c: c.create_snapshot(dataset, keep_last=keep_last, max_age_days=max_age_days, wait=True)
    )
    connection.show([answer], ANSWER_COLUMNS)


@snapshots_app.command("list")
def snapshots_list(ctx: typer.Context, dataset: str) -> None:
    connection: Connection = ctx.obj
    connection.show(connection.run(lambda c: c.list_snapshots(dataset)), SNAPSHOT_COLUMNS)


@snapshots_app.command("show")
def snapshots_show(ctx: typer.Context, dataset: str, snapshot_id: str) -> None:
    connection: Connection = ctx.obj
    columns = (*SNAPSHOT_COLUMNS, "version", "dimensions", "metric", "encrypted")
    connection.show([connection.run(lambda c: c.get_snapshot(dataset, snapshot_id))], columns)


@snapshots_app.command("restore")
def snapshots_restore(
    ctx: typer.Context,
    dataset: str,
    snapshot_id: str,
    target: Annotated[
        str | None, typer.Option(help="Restore into this new dataset; without it, over DATASET itself")
    ] = None,
) -> None:
    connection: Connection = ctx.obj
    answer = connection.run(lambda c: c.restore_snapshot(dataset, snapshot_id, target=target, wait=True))
    connection.show([answer], ANSWER_COLUMNS)


@snapshots_app.command("delete")
def snapshots_delete(ctx: typer.Context, dataset: str, snapshot_id: str) -> None:
    connection: Connection = ctx.obj
    answer = connection.run(lambda c: c.delete_snapshot(dataset, snapshot_id, wait=True))
    connection.show([answer], ANSWER_COLUMNS)


@schedule_app.command("show")
def schedule_show(ctx: typer.Context, dataset: str) -> None:
    connection: Connection = ctx.obj
    connection.show([connection.run(lambda c: c.get_snapshot_schedule(dataset))], SCHEDULE_COLUMNS)


@schedule_app.command("set")
def schedule_set(
    ctx: typer.Context,
    dataset: str,
    every: Annotated[float, typer.Option(help="Seconds between two snapshots")],
    keep_last: KeepLast = None,
    max_age_days: MaxAgeDays = None,
) -> None:
    connection: Connection = ctx.obj
    schedule = connection.run(
        lambda c: c.set_snapshot_schedule(dataset, every, keep_last=keep_last, max_age_days=max_age_days)
    )
    connection.show([schedule], SCHEDULE_COLUMNS)


@schedule_app.command("delete")
def schedule_delete(ctx: typer.Context, dataset: str) -> None:
    connection: Connection = ctx.obj
    connection.run(lambda c: c.delete_snapshot_schedule(dataset))
    err.print(f"deleted the snapshot schedule of {dataset}")


KEY_COLUMNS = ("id", "tenant", "roles", "datasets", "created_at", "revoked_at")


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option()],
    role: Annotated[list[str], typer.Option(help="admin, writer or reader (repeat for more)")],
    dataset: Annotated[
        list[str] | None, typer.Option(help="Limit the key to this dataset (repeatable)")
    ] = None,
) -> None:
    connection: Connection = ctx.obj
    created = connection.run(lambda c: c.create_key(tenant, role, datasets=dataset))
    connection.show([created], ("id", "key"))


@keys_app.command("list")
def keys_list(ctx: typer.Context, tenant: Annotated[str | None, typer.Option()] = None) -> None:
    connection: Connection = ctx.obj
    connection.show(connection.run(lambda c: c.list_keys(tenant=tenant)), KEY_COLUMNS)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: str) -> None:
    connection: Connection = ctx.obj
    connection.run(lambda c: c.revoke_key(key_id))
    err.print(f"revoked {key_id}")


OPERATION_COLUMNS = ("id", "dataset", "command_type", "status", "reason", "consistency_token", "updated_at")


@ops_app.command("show")
def ops_show(ctx: typer.Context, operation_id: str) -> None:
    connection: Connection = ctx.obj
    connection.show([connection.run(lambda c: c.operation(operation_id))], OPERATION_COLUMNS)


@ops_app.command("wait")
def ops_wait(
    ctx: typer.Context, operation_id: str, timeout: Annotated[float, typer.Option(help="Seconds")] = 120.0
) -> None:
    connection: Connection = ctx.obj
    connection.show([connection.run(lambda c: c.wait_for(operation_id, timeout=timeout))], OPERATION_COLUMNS)


if __name__ == "__main__":
    app()
