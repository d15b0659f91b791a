"""DeepLake's bundled crash reporter (Sentry) is off unless asked for: no session files under the temp folder,
so nothing to report, at exit or at the next start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tributary.deeplake_lib import CRASH_REPORTS_VARIABLE

# Uses DeepLake, lists every file under the temp folder while alive, then dies without cleaning up, as a
# killed process would (os._exit skips the reporter's own clean-up at exit, and its report).
CHILD = """
import json, os, sys
from tributary.deeplake_lib import deeplake
ds = deeplake.create("file://" + sys.argv[1])
ds.add_column("x", deeplake.types.Embedding(4))
ds.commit()
print(json.dumps([os.path.join(d, f) for d, _, fs in os.walk(os.environ["TMPDIR"]) for f in fs]), flush=True)
os._exit(0)
"""


def sentry_files(tmp_path: Path, **env: str) -> tuple[list[str], list[str]]:
    """The reporter's session files under a private TMPDIR while the child ran, and after it died."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    child_env = {k: v for k, v in os.environ.items() if k != CRASH_REPORTS_VARIABLE} | {"TMPDIR": str(temp)}
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "ds")],
        env=child_env | env,
        capture_output=True,
        text=True,
        check=True,
    )
    alive = [f for f in json.loads(run.stdout) if is_session_file(f)]
    after = [str(p) for p in temp.rglob("*") if is_session_file(str(p))]
    return alive, after


def is_session_file(path: str) -> bool:
    # <tmp>/indra/.sentry-native/<uuid>.run/session.json, and <uuid>.run.lock beside it.
    return path.endswith(("session.json", ".run.lock"))


def test_deeplake_leaves_no_crash_reporter_sessions_behind(tmp_path: Path) -> None:
    alive, after = sentry_files(tmp_path)
    assert alive == [] and after == []


def test_the_crash_reporter_runs_when_asked_for(tmp_path: Path) -> None:
    alive, after = sentry_files(tmp_path, **{CRASH_REPORTS_VARIABLE: "true"})
    assert any(f.endswith("session.json") for f in alive), alive
    assert after
