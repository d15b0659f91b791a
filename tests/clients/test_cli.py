"""`tributary-cli` against a real embedded server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.helpers import ADMIN_KEY

DIMENSIONS = 16


def cli(url: str, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tributary_client.cli", *args],
        env=_env(url, state),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _env(url: str, state: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TRIBUTARY_URL": url,
        "TRIBUTARY_API_KEY": ADMIN_KEY,
        "TRIBUTARY_CLI_STATE": str(state),
        "TRIBUTARY_PROFILES": str(state / "none.toml"),
        "COLUMNS": "200",
    }


def test_an_interrupted_parquet_ingest_resumes_to_exactly_every_record(
    embedded_url: str, tmp_path: Path
) -> None:
    rows = 200_000
    rng = np.random.default_rng(0)
    vectors = rng.random((rows, DIMENSIONS), dtype=np.float32)
    table = pa.table(
        {
            "id": [f"p{i}" for i in range(rows)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIMENSIONS),
            "shard": pa.array(np.arange(rows) % 7),
        }
    )
    file = tmp_path / "vectors.parquet"
    pq.write_table(table, file)
    state = tmp_path / "state"
    assert (
        cli(embedded_url, state, "datasets", "create", "big", "--dimensions", str(DIMENSIONS)).returncode == 0
    )

    # Interrupt with Ctrl-C (SIGINT) once a tenth is acknowledged, as a person at the terminal would. The ingest
    # is stopped (SIGSTOP) first, so however late this loop sees the checkpoint on a loaded machine, the ingest
    # cannot finish before the interrupt reaches it.
    command = [sys.executable, "-m", "tributary_client.cli", "ingest", str(file), "--dataset", "big"]
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(command, env=_env(embedded_url, state), stdout=log, stderr=log)
    checkpoints = list(state.glob("*.json"))
    while first.poll() is None:
        checkpoints = list(state.glob("*.json"))
        if checkpoints and json.loads(checkpoints[0].read_text())["acknowledged"] >= rows // 10:
            first.send_signal(signal.SIGSTOP)
            first.send_signal(signal.SIGINT)
            first.send_signal(signal.SIGCONT)
            break
        time.sleep(0.05)
    assert first.wait(timeout=120) == 130, (tmp_path / "first.log").read_text()
    interrupted = (tmp_path / "first.log").read_text()
    assert "interrupted:" in interrupted and "run the same command to resume" in interrupted
    acknowledged = json.loads(checkpoints[0].read_text())["acknowledged"]
    assert rows // 10 <= acknowledged < rows

    resumed = cli(embedded_url, state, "ingest", str(file), "--dataset", "big")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{rows - acknowledged:,} records in" in resumed.stderr and "records/s" in resumed.stderr
    assert not list(state.glob("*.json")), "a finished ingest leaves no checkpoint"
    counted = cli(embedded_url, state, "-o", "json", "count", "big")
    assert json.loads(counted.stdout) == {"count": rows}
    shard = cli(embedded_url, state, "-o", "json", "count", "big", "--filter", '{"shard": 3}')
    assert json.loads(shard.stdout) == {"count": int((np.arange(rows) % 7 == 3).sum())}


def test_a_bad_line_is_named_with_its_file_line_and_field(embedded_url: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cli(embedded_url, state, "datasets", "create", "docs", "--dimensions", "2")
    file = tmp_path / "records.jsonl"
    lines = [json.dumps({"id": f"r{i}", "vector": [0.5, 0.5]}) for i in range(3)]
    lines.insert(2, json.dumps({"id": "bad", "vector": ["x", 1]}))
    file.write_text("\n".join(lines) + "\n")
    failed = cli(embedded_url, state, "ingest", str(file), "--dataset", "docs", "--batch-size", "1")
    assert failed.returncode == 1
    message = [line for line in failed.stderr.splitlines() if "bad record" in line]
    assert message == [
        f"bad record {file}:line 3: vector: must be a list of finite numbers; 2 records before it were written"
    ]

    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"id": "s", "vector": [0.5]}) + "\n")
    refused = cli(embedded_url, state, "ingest", str(short), "--dataset", "docs", "--restart")
    assert refused.returncode == 1
    assert f"refused {short}: record 0:" in refused.stderr


def test_datasets_search_get_and_keys(embedded_url: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert cli(embedded_url, state, "datasets", "create", "docs", "--dimensions", "2").returncode == 0
    file = tmp_path / "r.csv"
    file.write_text('id,vector,lang\na,"[1, 0]",en\nb,"[0, 1]",fr\n')
    assert cli(embedded_url, state, "ingest", str(file), "--dataset", "docs").returncode == 0
    listed = json.loads(cli(embedded_url, state, "-o", "json", "datasets", "list").stdout)
    assert [d["name"] for d in listed] == ["docs"]
    hits = json.loads(
        cli(embedded_url, state, "-o", "json", "search", "docs", "--vector", "[1, 0]", "--k", "1").stdout
    )
    assert [(h["id"], h["metadata"]) for h in hits] == [("a", {"lang": "en"})]
    got = json.loads(cli(embedded_url, state, "-o", "json", "get", "docs", "b").stdout)
    assert got[0]["metadata"] == {"lang": "fr"}
    table = cli(embedded_url, state, "datasets", "show", "docs").stdout
    assert "docs" in table and "cosine" in table
    created = json.loads(
        cli(
            embedded_url, state, "-o", "json", "keys", "create", "--tenant", "default", "--role", "reader"
        ).stdout
    )
    assert created[0]["key"].startswith("trb_")
    assert cli(embedded_url, state, "keys", "revoke", created[0]["id"]).returncode == 0
    missing = cli(embedded_url, state, "datasets", "show", "nothing")
    assert missing.returncode == 1 and "404" in missing.stderr


def test_snapshots_are_taken_restored_deleted_and_scheduled(embedded_url: str, tmp_path: Path) -> None:
    state = tmp_path / "state"

    def run(*args: str) -> Any:
        done = cli(embedded_url, state, "-o", "json", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    run("datasets", "create", "docs", "--dimensions", "2")
    file = tmp_path / "r.jsonl"
    file.write_text("".join(json.dumps({"id": f"r{i}", "vector": [1, i]}) + "\n" for i in range(3)))
    assert cli(embedded_url, state, "ingest", str(file), "--dataset", "docs").returncode == 0
    [taken] = run("snapshots", "take", "docs", "--keep-last", "2")
    assert taken["status"] == "applied"
    snapshot_id = taken["operation_id"]
    [listed] = run("snapshots", "list", "docs")
    assert (listed["snapshot_id"], listed["vector_count"]) == (snapshot_id, 3)
    assert run("snapshots", "show", "docs", snapshot_id)[0]["dimensions"] == 2
    assert run("snapshots", "restore", "docs", snapshot_id, "--target", "copy")[0]["status"] == "applied"
    assert run("count", "copy") == {"count": 3}
    assert run("snapshots", "delete", "docs", snapshot_id)[0]["status"] == "applied"
    assert run("snapshots", "list", "docs") == []
    missing = cli(embedded_url, state, "snapshots", "show", "docs", snapshot_id)
    assert missing.returncode == 1 and "404" in missing.stderr

    [schedule] = run("snapshots", "schedule", "set", "docs", "--every", "3600", "--max-age-days", "7")
    assert (schedule["every_s"], schedule["max_age_days"]) == (3600, 7)
    assert run("snapshots", "schedule", "show", "docs") == [schedule]
    assert cli(embedded_url, state, "snapshots", "schedule", "delete", "docs").returncode == 0
    assert cli(embedded_url, state, "snapshots", "schedule", "show", "docs").returncode == 1
