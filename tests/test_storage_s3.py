"""DeepLake on an S3-compatible store through the standard AWS variables, as deploy/compose and
deploy/kubernetes configure it: a real S3Proxy (the version of the compose image, from its Maven Central jar) with
its filesystem backend, where a bucket is a folder."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy_tools import ROOT, require_tool
from tests.processes import free_port
from tests.test_deploy_compose import resolved_compose

S3PROXY_VERSION = "4.0.0"
CREDENTIAL = "s3-test-credential"
INSTALL = "bash deploy/local/services.sh install (Java and Maven)"


def test_the_compose_file_runs_the_tested_s3proxy() -> None:
    assert resolved_compose()["services"]["s3"]["image"] == f"andrewgaul/s3proxy:s3proxy-{S3PROXY_VERSION}"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    java, mvn = require_tool("java", INSTALL), require_tool("mvn", INSTALL)
    home = tmp_path_factory.mktemp("s3proxy")
    subprocess.run(
        [
            mvn,
            "-q",
            "dependency:copy",
            f"-Dartifact=org.gaul:s3proxy:{S3PROXY_VERSION}:jar:jar-with-dependencies",
            f"-DoutputDirectory={home}",
        ],
        check=True,
        timeout=600,
        cwd=home,
    )
    (home / "data" / "tributary").mkdir(parents=True)
    port = free_port()
    (home / "s3proxy.conf").write_text(
        "s3proxy.authorization=aws-v2-or-v4\n"
        f"s3proxy.endpoint=http://127.0.0.1:{port}\n"
        "s3proxy.identity=tributary\n"
        f"s3proxy.credential={CREDENTIAL}\n"
        "jclouds.provider=filesystem\n"
        f"jclouds.filesystem.basedir={home / 'data'}\n"
    )
    jar = home / f"s3proxy-{S3PROXY_VERSION}-jar-with-dependencies.jar"
    with (home / "s3proxy.log").open("ab") as log:
        process = subprocess.Popen(
            [java, "-jar", str(jar), "--properties", str(home / "s3proxy.conf")], stdout=log, stderr=log
        )
    try:
        _wait_until_it_answers(f"http://127.0.0.1:{port}/", process, home / "s3proxy.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_it_answers(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"S3Proxy exited:\n{log.read_text(errors='replace')[-4000:]}"
        try:
            httpx.get(url, timeout=1)  # any answer (403 without credentials) means it listens
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"S3Proxy did not answer within 120 s:\n{log.read_text(errors='replace')[-4000:]}")


# Run in a child process: the AWS variables are the deployment's configuration, and they must not leak into the
# other tests' DeepLake.
ROUND_TRIP = """
import numpy as np
from tributary.storage import DatasetSpec, DatasetStore
store = DatasetStore("s3://tributary/datasets")
store.create("default", "docs", DatasetSpec(dimensions=4, metric="cosine"), "create")
writer = store.writer("default", "docs")
writer.upsert(["a", "b", "c"], np.ones((3, 4), dtype=np.float32), None, [{"n": 1}, {}, {}])
writer.commit()
writer.delete(["b"])
writer.commit()
store.forget_all()
reopened = store.writer("default", "docs")
print(reopened.count, store.spec("default", "docs").dimensions, reopened.metadata_of("a"))
"""


def run_with_aws(endpoint: str, secret: str, script: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": "tributary",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
    }
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_datasets_round_trip_through_s3(s3_endpoint: str) -> None:
    result = run_with_aws(s3_endpoint, CREDENTIAL, ROUND_TRIP)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(maxsplit=2) == ["2", "4", "{'n': 1}"]


def test_a_wrong_credential_is_refused(s3_endpoint: str) -> None:
    script = (
        "from tributary.storage import DatasetStore; DatasetStore('s3://tributary/datasets').exists('t', 'd')"
    )
    result = run_with_aws(s3_endpoint, "not-the-credential", script)
    assert result.returncode != 0
    assert "Access denied" in result.stderr
