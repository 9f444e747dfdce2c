"""Shared fixtures: one real etcd + kube-apiserver per pytest run, started lazily on the first test that
asks for it (unit tests never do), with ffrtmp's CRDs, PriorityClasses and system namespace installed.

Binaries come from tools/binaries.sh (KUBEBUILDER_ASSETS when it has them, else the build cache).
There is no kubelet, scheduler or controller-manager: namespaces never finish deleting, no "default"
ServiceAccount appears in a new namespace, and nothing runs a pod unless a standalone agent does.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from ffrtmp_stack import ControlPlane, find_bin_dir

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A running control plane for the whole session; $KUBECONFIG points at it while it runs.

    Attributes: kubeconfig (Path), bin_dir (Path: kube-apiserver, etcd, kubectl, helm), server
    ("https://127.0.0.1:<port>"), token (admin bearer token, group system:masters), ca_file (Path),
    work_dir (Path, logs in work_dir/logs/). Methods: env() (os.environ + KUBECONFIG + bin_dir on PATH,
    for subprocesses), api_client() (a new admin kubernetes ApiClient; close it).
    """
    try:
        bin_dir = find_bin_dir(build=False)  # a cold build takes minutes: `make tools`, not a test's timeout
    except RuntimeError as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing:
        pytest.fail(f"no Kubernetes test binaries: {missing}", pytrace=False)
    with (ControlPlane(tmp_path_factory.mktemp("control-plane"), bin_dir=bin_dir) as cp,
          pytest.MonkeyPatch.context() as mp):
        mp.setenv("KUBECONFIG", str(cp.kubeconfig))  # so kopf and kubernetes.config find it without help
        yield cp


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """An admin kubernetes.client.ApiClient for the session's control plane."""
    with control_plane.api_client() as api:
        yield api


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].rstrip("-")
    return f"t-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """The name of a fresh namespace for this test, deleted afterwards (it stays Terminating: no controllers)."""
    core = client.CoreV1Api(api_client)
    name = _namespace_name(request.node.name)
    core.create_namespace({"metadata": {"name": name, "labels": {"ffrtmp.io/test": "true"}}})
    yield name
    try:
        core.delete_namespace(name)
    except client.exceptions.ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture
def kubectl(control_plane: ControlPlane) -> Kubectl:
    """kubectl(*args, input=None, check=True, timeout=60) -> CompletedProcess[str] (stdout and stderr as text).

    Runs the built kubectl against the session's control plane; with check=True a non-zero exit fails the
    test showing kubectl's stderr.
    """
    exe = str(Path(control_plane.bin_dir) / "kubectl")
    env = control_plane.env()

    def run(*args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([exe, *args], input=input, capture_output=True, text=True, env=env,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/integration and tests/e2e carry their marker even where the module forgot it."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for kind in ("integration", "e2e"):
            if kind in parts and kind not in item.keywords:
                item.add_marker(getattr(pytest.mark, kind))
