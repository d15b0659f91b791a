"""The OpenAPI document is a contract: a bounded schemathesis run (every operation, every check, with a
credential) against a real embedded server finds no server error and no answer the document does not promise."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import ADMIN_KEY
from tests.processes import free_port, serve, wait_ready
from tributary.settings import Settings

# A schema-valid request can still be unprocessable for the state it meets, which no schema can express: a
# vector of another width than the dataset's, metadata against the dataset's schema, text for a dataset
# without an embedder, an Idempotency-Key reused with another body (422 by the IETF draft), `session`
# consistency without its token. Every other check keeps its defaults.
# A DELETE answers 202: the command is accepted and applied shortly after (at once with ?wait=true), so a request
# on the resource right after it may still find it. Schemathesis's use-after-free check expects a 404 at once,
# and failed under load when the delete had not been applied yet.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

[checks.use_after_free]
enabled = false
"""
EXAMPLES_PER_OPERATION = 40
SEED = 20261127


async def test_schemathesis_finds_no_server_error_and_no_conformance_failure(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    env = os.environ | {
        "TRIBUTARY_DATA_DIR": str(embedded_settings.data_dir),
        "TRIBUTARY_ADMIN_KEY": ADMIN_KEY,
        # A read waiting for a token no write gave out gives up after a second, not ten.
        "TRIBUTARY_READ_TIMEOUT_S": "1",
        "TRIBUTARY_WAIT_TIMEOUT_S": "2",
    }
    server = serve("embedded", env, log, port)
    try:
        await asyncio.to_thread(wait_ready, port, server, log)
        config = tmp_path / "schemathesis.toml"
        config.write_text(CONFIG)
        run = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(config),
                "--no-color",
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {ADMIN_KEY}",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                str(SEED),
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--generation-database",
                "none",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=600,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = run.stdout[-20_000:]
    assert run.returncode == 0, (
        f"{summary}\n{run.stderr[-4000:]}\nserver log tail:\n{log.read_text()[-4000:]}"
    )
    # Every operation of the document ran through both the coverage and the fuzzing phases.
    selected = re.search(r"Operations:\s+(\d+) selected / (\d+) total", run.stdout)
    assert selected is not None and selected[1] == selected[2], summary
    assert run.stdout.count(f"✅ {selected[2]} passed") >= 2, summary
