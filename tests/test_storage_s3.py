"""DeepLake on an S3-compatible store through the standard AWS variables, as deploy/compose and
deploy/kubernetes configure it: a real S3Proxy (the version of the compose image, run by `deploy/local/services.sh`
from its Maven Central jar) with its filesystem backend, where a bucket is a folder."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.deploy_tools import ROOT
from tests.services import S3Service
from tests.test_deploy_compose import resolved_compose

SERVICES_SH = ROOT / "deploy" / "local" / "services.sh"


def test_the_compose_file_runs_the_tested_s3proxy() -> None:
    version = re.search(r"^s3proxy_version=(\S+)$", SERVICES_SH.read_text(), re.MULTILINE)
    assert version is not None
    assert resolved_compose()["services"]["s3"]["image"] == f"andrewgaul/s3proxy:s3proxy-{version[1]}"


# Run in a child process: the AWS variables are the deployment's configuration, and they must not leak into the
# other tests' DeepLake.
ROUND_TRIP = """
import numpy as np
from tributary.storage import Commit, DatasetSpec, DatasetStore
store = DatasetStore(ROOT_URL)
store.create("default", "docs", DatasetSpec(dimensions=4, metric="cosine"), Commit([], []))
writer = store.writer("default", "docs")
writer.upsert(["a", "b", "c"], np.ones((3, 4), dtype=np.float32), None, [{"n": 1}, {}, {}])
writer.commit()
writer.delete(["b"])
writer.commit()
store.forget_all()
reopened = store.writer("default", "docs")
print(reopened.count, store.spec("default", "docs").dimensions, reopened.metadata_of("a"))
"""


def run_with_aws(s3: S3Service, secret: str, script: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_REGION": "us-east-1",
    }
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_datasets_round_trip_through_s3(s3_service: S3Service, run_id: str) -> None:
    # Each run under a prefix of its own: the store outlives test runs.
    root = f"s3://{s3_service.bucket}/{run_id}/datasets"
    result = run_with_aws(s3_service, s3_service.secret_access_key, f"ROOT_URL = {root!r}\n{ROUND_TRIP}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(maxsplit=2) == ["2", "4", "{'n': 1}"]


def test_a_wrong_credential_is_refused(s3_service: S3Service) -> None:
    script = (
        f"from tributary.storage import DatasetStore; DatasetStore('s3://{s3_service.bucket}/datasets')"
        ".exists('t', 'd')"
    )
    result = run_with_aws(s3_service, "not-the-credential", script)
    assert result.returncode != 0
    assert "Access denied" in result.stderr
