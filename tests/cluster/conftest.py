"""The cluster suite's cluster: FFRTMP_TEST_KUBECONFIG when set (kind, any cluster with the image loaded and
the chart installed as release "ffrtmp" in ffrtmp-system), else a `make cluster` of its own in
.dev/test-cluster (NODES=2 by default, FFRTMP_TEST_NODES), brought up once per session and removed at the
end. A cluster that cannot start fails the suite with the reason; nothing is skipped.

Other variables: FFRTMP_TEST_IMAGE (the image the chart runs; default localhost/ffrtmp:<version>),
FFRTMP_TEST_STORAGE_CLASS (for a cluster that is not this machine's: a class for the media claims).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kit import REPO, Kube, delete_namespace, media_namespace

DEV = REPO / ".dev" / "test-cluster"
LOCAL_SERVER = "https://10.250.0.1:6443"  # tools/ffrtmp_cluster/control.py
# test_cluster_live.py: job pods push RTMP to nginx on the bridge address, a private one the runner refuses
# unless the chart allows it
LIVE_EGRESS = "jobPolicy.egress.allow={10.250.0.1/32}"


def _cluster_cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'tools'}:{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "ffrtmp_cluster", "--dev-dir", str(DEV), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _bin_dir() -> Path:
    done = subprocess.run(
        [str(REPO / "tools" / "binaries.sh"), "--check", "--cluster"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"cluster suite: {done.stderr.strip()}", pytrace=False)
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    image = os.environ.get("FFRTMP_TEST_IMAGE", f"localhost/ffrtmp:{_version()}")
    given = os.environ.get("FFRTMP_TEST_KUBECONFIG")
    if given:
        # `make cluster` of this machine (its apiserver's address): hostPath media works on every node
        local = f"server: {LOCAL_SERVER}" in Path(given).read_text()
        yield Kube(
            Path(given),
            _bin_dir(),
            image,
            local=local,
            storage_class=os.environ.get("FFRTMP_TEST_STORAGE_CLASS", "standard"),
        )
        return
    bin_dir = _bin_dir()
    for step, args, timeout in (
        ("make image", ("image",), 900),
        ("make cluster", ("up", "--nodes", os.environ.get("FFRTMP_TEST_NODES", "2"), "--set", LIVE_EGRESS), 900),
    ):
        done = _cluster_cli(*args, timeout=timeout)
        sys.stderr.write(done.stdout + done.stderr)
        if done.returncode != 0:
            _cluster_cli("down", timeout=300)
            pytest.fail(
                f"cluster suite: {step} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}", pytrace=False
            )
    try:
        yield Kube(DEV / "kubeconfig", bin_dir, image, local=True)
    finally:
        done = _cluster_cli("down", timeout=300)
        sys.stderr.write(done.stdout + done.stderr)
        shutil.rmtree(DEV / "media", ignore_errors=True)  # the tests' hostPath PVs


@pytest.fixture
def media_ns(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A PSS-restricted namespace with the claim "media", removed after the test."""
    ns = media_namespace(kube, request.node.name.split("[")[0][5:25].replace("_", "-").strip("-"), DEV / "media")
    try:
        yield ns
    finally:
        delete_namespace(kube, ns)
