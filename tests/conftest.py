"""Shared fixtures: one real etcd + kube-apiserver per pytest run, started lazily on the first test that
asks for it (unit tests never do), with ffrtmp's CRDs, PriorityClasses and system namespace installed;
a namespace per test, kubectl, and the Helm chart installed under a release of the test's own.

Binaries come from tools/binaries.sh (KUBEBUILDER_ASSETS when it has them, else the build cache).
There is no kubelet, scheduler or controller-manager: namespaces never finish deleting, no "default"
ServiceAccount appears in a new namespace, and nothing runs a pod unless a standalone agent does. So each
test's teardown deletes what it made (tests/support/cleanup.py) rather than leaving it to a namespace.
Plain helpers are in tests/support; only fixtures live here.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import ffrtmp_api as api
import pytest
from ffrtmp_stack import ControlPlane, find_bin_dir
from kubernetes import client

from tests.support import delete_jobs, wait_until
from tests.support.helm import CHART, helm

Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]
_LEFTOVERS = pytest.StashKey[set[str]]()


@pytest.fixture(scope="session", autouse=True)
def interpreter_for_job_users() -> None:
    """Standalone agents run job pods as their non-root user (65532), and those run this interpreter and
    the repository's packages: let any user pass through (o+x, not list) the folders above them. Here
    Python may live under /root (0700); in the image it is in /usr."""
    import sys

    for path in (Path(sys.executable).resolve(), Path(sys.executable), Path(__file__).resolve()):
        for folder in path.parents:
            mode = folder.stat().st_mode & 0o777
            if mode & 0o001 == 0:
                folder.chmod(mode | 0o001)


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
    with (
        ControlPlane(tmp_path_factory.mktemp("control-plane"), bin_dir=bin_dir) as cp,
        pytest.MonkeyPatch.context() as mp,
    ):
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
    """The name of a fresh namespace for this test. Afterwards its jobs and job pods are deleted (and gone),
    then the namespace (which stays Terminating: no controllers), so no later test can see them."""
    core = client.CoreV1Api(api_client)
    name = _namespace_name(request.node.name)
    core.create_namespace({"metadata": {"name": name, "labels": {"ffrtmp.io/test": "true"}}})
    yield name
    delete_jobs(api_client, name)
    try:
        core.delete_namespace(name)
    except client.exceptions.ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(autouse=True)
def _leaves_no_jobs_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the session's apiserver (and after its own teardown): no TranscodeJob or job
    pod may be left in a namespace being deleted. Such leftovers never go away here, and an operator watching
    every namespace (the chart's) would act on them in a later test."""
    yield
    if "api_client" not in request.fixturenames:
        return  # unit tests, and tests with a control plane of their own
    api_client = request.getfixturevalue("api_client")
    core, custom = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    deleted = {ns.metadata.name for ns in core.list_namespace().items if ns.metadata.deletion_timestamp}
    jobs = [
        f"job {j['metadata']['namespace']}/{j['metadata']['name']}"
        for j in custom.list_cluster_custom_object(api.GROUP, api.VERSION, api.PLURAL)["items"]
        if j["metadata"]["namespace"] in deleted
    ]
    pods = [
        f"pod {p.metadata.namespace}/{p.metadata.name}"
        for p in core.list_pod_for_all_namespaces(label_selector=api.LABEL_JOB).items
        if p.metadata.namespace in deleted
    ]
    reported = request.config.stash.setdefault(_LEFTOVERS, set())
    new = sorted(set(jobs + pods) - reported)  # a leftover stays: blame only the test that left it
    reported.update(new)
    assert not new, f"left behind in deleted namespaces (jobs, pods): {new}"


@pytest.fixture
def kubectl(control_plane: ControlPlane) -> Kubectl:
    """kubectl(*args, input=None, check=True, timeout=120) -> CompletedProcess[str] (stdout and stderr as text).

    Runs the built kubectl against the session's control plane; with check=True a non-zero exit fails the
    test showing kubectl's stderr.
    """
    exe = str(Path(control_plane.bin_dir) / "kubectl")
    env = control_plane.env()

    def run(
        *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [exe, *args], input=input, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    return run


@pytest.fixture
def release(control_plane: ControlPlane, api_client: client.ApiClient) -> Iterator[dict[str, str]]:
    """The chart installed into the system namespace under a unique release and peering name; uninstalled
    after the test. Keys: name, peering, operator_sa, agent_sa (the chart's ServiceAccount names)."""
    name = f"it-{secrets.token_hex(3)}"
    peering = f"{name}-peering"
    helm(
        control_plane,
        "install",
        name,
        str(CHART),
        "-n",
        api.DEFAULT_SYSTEM_NAMESPACE,
        "--take-ownership",
        "--set",
        f"operator.peering.name={peering}",
    )
    yield {
        "name": name,
        "peering": peering,
        "operator_sa": f"{name}-ffrtmp-operator",
        "agent_sa": f"{name}-ffrtmp-agent",
    }
    helm(control_plane, "uninstall", name, "-n", api.DEFAULT_SYSTEM_NAMESPACE, check=False)
    _wait_policy_gone(api_client, f"{name}-ffrtmp-jobs")


def _wait_policy_gone(api_client: client.ApiClient, policy: str) -> None:
    """The chart's admission policy binds every namespace, and the API server drops a deleted policy from
    its admission cache a moment after the DELETE returns: the next test must not meet it."""
    custom = client.CustomObjectsApi(api_client)
    probe = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "policy-gone-probe"},
        "spec": {
            "input": {"testSource": {"durationSeconds": 1}},
            "output": {"url": "file:///m/x.mp4"},
            "volumes": [{"name": "m", "mountPath": "/m", "hostPath": {"path": "/policy-gone-probe"}}],
        },
    }

    def gone() -> bool:
        try:
            custom.create_namespaced_custom_object(api.GROUP, api.VERSION, "default", api.PLURAL, probe, dry_run="All")
        except client.exceptions.ApiException as exc:
            return f"'{policy}'" not in str(exc.body)
        return True

    wait_until(gone, timeout=30, interval=0.2, what=f"admission policy {policy} to stop applying")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The random order's seed again at the end (the header with it is hidden under -q), to repeat a run."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and config.pluginmanager.has_plugin("randomly"):
        terminalreporter.write_line(f"random order: repeat it with -p randomly --randomly-seed={seed}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/integration and tests/e2e carry their marker even where the module forgot it."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for kind in ("integration", "e2e"):
            if kind in parts and kind not in item.keywords:
                item.add_marker(getattr(pytest.mark, kind))
