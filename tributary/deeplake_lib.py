"""DeepLake, imported with its bundled crash reporter off (`TRIBUTARY_DEEPLAKE_CRASH_REPORTS=true` leaves it on).

DeepLake's native library starts Sentry's native crash reporter when it is imported, with its own DSN: it keeps a
session folder under the system temp folder (`<tmp>/indra/.sentry-native`), reports the session to sentry.io at
exit, and reports the sessions of killed processes at the next start. The library reads no setting that turns it
off (the DSN is compiled in, so SENTRY_DSN does not help), but the reporter gives up when it cannot create its
folder. So the import runs with TMPDIR pointing at a folder of ours where `indra/.sentry-native` is a file.

The variable is read from the environment (not the `.env` file): the library starts the reporter at import,
before any settings are read. Import DeepLake from here, never directly, so that this import is the first.

Also here: which of DeepLake's errors mean its store does not answer (`STORAGE_OUTAGES`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tributary.resilience import Unavailable

CRASH_REPORTS_VARIABLE = "TRIBUTARY_DEEPLAKE_CRASH_REPORTS"


def _crash_reports_wanted() -> bool:
    return os.environ.get(CRASH_REPORTS_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def _reporterless_temp_dir() -> Path | None:
    """A temp folder in which the reporter cannot create its own. The library keeps it as its temp folder for
    the life of the process, so it is a lasting one (per user), not a throwaway; asking `tempfile` first also
    fixes Python's own temp folder before TMPDIR changes. None when no temp folder is writable: the reporter
    cannot create its folder then either."""
    try:
        root = Path(tempfile.gettempdir()) / f"tributary-deeplake-{os.getuid()}"
        try:
            _block_reporter_folder(root)
        except OSError:
            # Someone else's folder of that name: one of this process's own.
            root = Path(tempfile.mkdtemp(prefix="tributary-deeplake-"))
            _block_reporter_folder(root)
    except OSError:
        return None
    return root


def _block_reporter_folder(temp: Path) -> None:
    (temp / "indra").mkdir(parents=True, exist_ok=True)
    (temp / "indra" / ".sentry-native").touch(exist_ok=True)


_temp = None if _crash_reports_wanted() else _reporterless_temp_dir()
if _temp is None:
    import deeplake
else:
    _saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(_temp)
    try:
        import deeplake
    finally:
        if _saved is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = _saved

# What DeepLake raises when its store does not answer (measured with S3Proxy stopped: a write's commit raised
# StorageNetworkConnectionError after about 40 s of the library's own retries, and the same handle committed
# again once S3Proxy was back). An outage to wait out, never the fault of a command or a request: the applier
# retries the batch for as long as it lasts, and a read answers 503.
STORAGE_OUTAGES: tuple[type[Exception], ...] = (deeplake.StorageNetworkConnectionError,)


def storage_unavailable(exc: Exception) -> Unavailable:
    return Unavailable("the dataset storage", str(exc), retry_after_s=5.0)


__all__ = ["STORAGE_OUTAGES", "deeplake", "storage_unavailable"]
