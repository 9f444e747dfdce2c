"""The local control plane and `make up` / `make down`, checked the way a user would: versions, the
TranscodeJob API through kubectl, PriorityClasses, ServiceAccount tokens under RBAC, and an idempotent
stack that survives a dead part and stops completely.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import ffrtmp_api as api
import pytest
import urllib3
from ffrtmp_stack import ControlPlane, procs
from ffrtmp_stack.controlplane import REPO, SA_ISSUER
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support import token_client

pytestmark = pytest.mark.integration


def _pinned(name: str) -> str:
    """A version from tools/versions.env, the single place where versions are pinned."""
    for line in (REPO / "tools" / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise KeyError(name)


def test_given_the_built_binaries_when_asked_then_apiserver_and_kubectl_report_the_pinned_version(api_client, kubectl):
    assert _pinned("K8S_VERSION") == "v1.34.4"
    server = client.VersionApi(api_client).get_code()
    assert server.git_version == "v1.34.4"
    assert (server.major, server.minor) == ("1", "34")
    assert "Client Version: v1.34.4" in kubectl("version", "--client").stdout


def test_given_the_crd_when_a_user_applies_an_example_then_kubectl_get_tj_lists_it(kubectl, namespace):
    resources = kubectl("api-resources", "--api-group", api.GROUP, "-o", "wide").stdout
    assert "transcodejobs" in resources and " tj " in resources
    assert "No resources found" in kubectl("get", "tj", "-n", namespace).stderr

    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "hello.yaml"))

    listed = kubectl("get", "tj", "-n", namespace).stdout.splitlines()
    assert listed[0].split()[:6] == ["NAME", "PHASE", "PROGRESS", "QUEUE", "PRIORITY", "NODE"]
    assert listed[1].split()[:3] == ["hello", "default", "medium"]  # no phase yet: no operator runs here


def test_given_a_fresh_control_plane_then_priority_classes_and_system_namespace_exist(api_client):
    classes = {pc.metadata.name: pc for pc in client.SchedulingV1Api(api_client).list_priority_class().items}
    for name, value in api.PRIORITY_CLASS_VALUES.items():
        assert classes[name].value == value
        assert not classes[name].global_default
    assert client.CoreV1Api(api_client).read_namespace(api.DEFAULT_SYSTEM_NAMESPACE).status.phase == "Active"


def test_given_a_service_account_when_a_token_is_requested_then_it_authenticates_and_rbac_applies(
    control_plane, api_client, namespace
):
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "probe"}})
    request = {"spec": {"audiences": [SA_ISSUER], "expirationSeconds": 600}}
    token = core.create_namespaced_service_account_token("probe", namespace, request).status.token

    with token_client(control_plane, token) as sa_api:
        review = client.AuthenticationV1Api(sa_api).create_self_subject_review({})
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:probe"
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(sa_api).list_namespaced_pod(namespace)
        assert denied.value.status == 403

        rbac = client.RbacAuthorizationV1Api(api_client)
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "probe-reads-pods"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "probe", "namespace": namespace}],
            },
        )
        deadline = time.monotonic() + 10  # the RBAC authorizer reads through an informer cache
        while True:
            try:
                assert client.CoreV1Api(sa_api).list_namespaced_pod(namespace).items == []
                break
            except ApiException as exc:
                if exc.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def test_given_a_control_plane_when_stopped_and_started_then_objects_and_kubeconfig_survive(control_plane, tmp_path):
    with ControlPlane(tmp_path / "cp", bin_dir=control_plane.bin_dir) as own:
        with own.api_client() as admin:
            client.CoreV1Api(admin).create_namespace({"metadata": {"name": "survivor"}})
        own.stop()
        with pytest.raises(urllib3.exceptions.MaxRetryError), own.api_client() as admin:
            client.VersionApi(admin).get_code(_request_timeout=2)  # really down
        own.start()
        with own.api_client() as admin:
            assert client.CoreV1Api(admin).read_namespace("survivor").status.phase == "Active"


# -- make up / make down ----------------------------------------------------------------------------------


def _make(*args: str, dev: Path, metrics_port: int, slots: int = 1) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO),
            *args,
            f"DEV={dev}",
            "AGENTS=1",
            f"SLOTS={slots}",
            f"METRICS_PORT={metrics_port}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0 or args[0] == "status", f"make {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _pids(dev: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (dev / "pids").glob("*.pid")}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_given_make_up_when_repeated_after_a_crash_or_resized_then_it_converges_keeps_state_and_down_stops_all(
    tmp_path,
):
    dev = tmp_path / "dev"
    port = procs.free_block(2)[0]  # not 9090: a developer's `make up` may run
    try:
        _make("up", dev=dev, metrics_port=port)
        first = _pids(dev)
        assert first.keys() == {"etcd", "kube-apiserver", "operator", "agent-1"}
        assert all(_alive(pid) for pid in first.values())
        env_file = (dev / "env").read_text()
        assert f'KUBECONFIG="{dev.resolve()}/kubeconfig"' in env_file
        bin_dir = re.search(r'export PATH="(.*?):\$PATH"', env_file).group(1)
        kubectl = [f"{bin_dir}/kubectl", "--kubeconfig", str(dev / "kubeconfig")]
        subprocess.run([*kubectl, "create", "namespace", "kept"], check=True, capture_output=True)

        again = _make("up", dev=dev, metrics_port=port)
        assert _pids(dev) == first
        for part in first:
            assert f"{part}: already running" in again.stdout

        os.kill(first["kube-apiserver"], signal.SIGKILL)
        repaired = _make("up", dev=dev, metrics_port=port)
        assert "kube-apiserver: started" in repaired.stdout
        assert "etcd: already running" in repaired.stdout
        assert _pids(dev)["kube-apiserver"] != first["kube-apiserver"]
        got = subprocess.run(
            [*kubectl, "get", "namespace", "kept", "-o", "name"], capture_output=True, text=True, check=False
        )
        assert got.stdout.strip() == "namespace/kept"  # etcd data survived the restart
        assert _make("status", dev=dev, metrics_port=port).returncode == 0

        resized = _make("up", dev=dev, metrics_port=port, slots=2)
        assert "agent-1: stopped" in resized.stdout and "agent-1: started" in resized.stdout
        assert "operator: already running" in resized.stdout
        assert "--slots 2" in " ".join(procs.cmdline(_pids(dev)["agent-1"]))

        running = _pids(dev)
        _make("down", dev=dev, metrics_port=port)
        assert not any(_alive(pid) for pid in running.values())
        assert _pids(dev) == {}
        assert _make("status", dev=dev, metrics_port=port).returncode != 0
    finally:
        subprocess.run(["make", "-C", str(REPO), "down", f"DEV={dev}"], capture_output=True, timeout=120, check=False)
