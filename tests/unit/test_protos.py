"""The generated gRPC code checked in under entrypoints/grpc_api/v1/ is what protos/generate.sh makes of
protos/ today: a changed .proto without regenerating fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "entrypoints" / "grpc_api" / "v1"


def test_the_generated_code_is_current(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        ["bash", str(ROOT / "protos" / "generate.sh"), str(tmp_path)], check=True, env=env, cwd=ROOT
    )
    for made in sorted(tmp_path.iterdir()):
        assert made.read_text() == (GENERATED / made.name).read_text(), (
            f"{made.name} is stale: run protos/generate.sh"
        )
