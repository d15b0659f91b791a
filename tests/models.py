"""Whether the local embedding model's runtime (the embed-local extra) is installed.

Tests that need it are marked `local_model`. Without the extra they skip with the reason, except under CI=true,
where they fail: CI installs the extra, so a missing model there is a broken install, not a reason to skip.
"""

from __future__ import annotations

import pytest

from tests.services import IN_CI
from tributary.embedding import local


def require_local_model() -> None:
    reason = local.missing("all-minilm-l6-v2")
    if reason is None:
        return
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)
