"""The SDK's models are generated from the server's OpenAPI document: fail while the committed copy lags."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

from entrypoints.http_app import create_app
from tributary.settings import Settings

SDK = Path(__file__).resolve().parents[2] / "clients" / "python"


def test_the_sdk_models_are_generated_from_the_current_openapi_document() -> None:
    committed = (SDK / "openapi.json").read_bytes()
    served = create_app(Settings(_env_file=None)).openapi()
    assert json.loads(committed) == json.loads(json.dumps(served)), (
        "the HTTP API changed: run clients/python/scripts/generate_models.sh"
    )
    header = (SDK / "src" / "tributary_client" / "models.py").read_text().splitlines()[0]
    assert hashlib.sha256(committed).hexdigest() in header, "models.py was not generated from openapi.json"


def test_the_sdk_does_not_pull_the_server() -> None:
    project = tomllib.loads((SDK / "pyproject.toml").read_text())["project"]
    required = {re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0] for requirement in project["dependencies"]}
    assert required == {"httpx", "pydantic", "anyio"}
