"""`helm install` of the chart into the real apiserver, then the operator runs with a token of the chart's
own ServiceAccount (TokenRequest, not admin) and a job goes from Pending to Completed on a standalone
agent. A verb missing from the chart's RBAC stops the job or shows up as an RBAC denial in the operator's log.

The chart's Deployment and DaemonSet pods never run here (no kubelet); their objects are checked instead.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client

from tests.support import AgentProcess, delete_node, free_port, terminate, wait_until
from tests.support.helm import CHART, helm, sa_kubeconfig

REPO = Path(__file__).resolve().parents[2]
SYSTEM_NS = "ffrtmp-system"
# An RBAC denial as the operator logs it (apierrors.log_refusal flags it) or as kopf and the client quote
# the authorizer; other 403s (a namespace being terminated, Pod Security) are not denials of the chart's RBAC.
RBAC_DENIAL = re.compile(r'"rbac": ?true|\bcannot [a-z]+ resource \\?"')  # the quote is escaped in JSON lines


def test_given_the_chart_when_installed_then_its_objects_exist_as_rendered(release, kubectl, control_plane):
    name = release["name"]
    deploy = json.loads(kubectl("get", "deployment", f"{name}-ffrtmp-operator", "-n", SYSTEM_NS, "-o", "json").stdout)
    assert deploy["spec"]["replicas"] == 2
    assert f"--peering={release['peering']}" in deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    kubectl("get", "daemonset", f"{name}-ffrtmp-agent", "-n", SYSTEM_NS)
    kubectl("get", "clusterrole", f"{name}-ffrtmp-operator")
    kubectl("get", "clusterkopfpeering", release["peering"])
    services = kubectl(
        "get", "services", "-n", SYSTEM_NS, "-l", f"app.kubernetes.io/instance={name}", "-o", "name"
    ).stdout.split()
    assert sorted(services) == [f"service/{name}-ffrtmp-agent-metrics", f"service/{name}-ffrtmp-operator-metrics"]
    dashboards = kubectl(
        "get",
        "configmaps",
        "-n",
        SYSTEM_NS,
        "-l",
        f"grafana_dashboard=1,app.kubernetes.io/instance={name}",
        "-o",
        "name",
    ).stdout.split()
    assert len(dashboards) == len(list((REPO / "grafana").glob("*.json")))
    classes = json.loads(
        kubectl("get", "priorityclasses", "ffrtmp-high", "ffrtmp-medium", "ffrtmp-low", "-o", "json").stdout
    )["items"]
    assert {c["metadata"]["name"]: c["value"] for c in classes} == {
        "ffrtmp-high": 1000,
        "ffrtmp-medium": 500,
        "ffrtmp-low": 100,
    }
    # No monitoring.coreos.com API on this cluster, so the release holds no ServiceMonitor.
    assert not kubectl("api-resources", "--api-group=monitoring.coreos.com", "-o", "name").stdout.strip()
    manifest = helm(control_plane, "get", "manifest", name, "-n", SYSTEM_NS).stdout
    assert "kind: Deployment" in manifest and "kind: ServiceMonitor" not in manifest
    notes = helm(control_plane, "get", "notes", name, "-n", SYSTEM_NS).stdout
    assert "kubectl label node NODE ffrtmp.io/worker=true" in notes
    assert "No ServiceMonitor was created" in notes and f'kopf peering "{release["peering"]}"' in notes


def test_given_the_chart_sa_token_when_the_operator_runs_then_a_job_completes(
    release, control_plane, api_client, namespace, tmp_path
):
    """The operator holds only the chart's RBAC; the agent (standing in for a kubelet) runs as admin."""
    kubeconfig = sa_kubeconfig(
        control_plane,
        api_client,
        namespace=SYSTEM_NS,
        service_account=release["operator_sa"],
        path=tmp_path / "operator.kubeconfig",
    )
    env = {**control_plane.env(), "KUBECONFIG": str(kubeconfig)}
    log_path = tmp_path / "operator.log"
    node = f"helm-node-{secrets.token_hex(3)}"
    agent = AgentProcess(env=control_plane.env(), node=node, work_dir=tmp_path / "agent")
    with log_path.open("wb") as log:
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ffrtmp_operator",
                "--system-namespace",
                SYSTEM_NS,
                "--metrics-port",
                "0",
                "--peering",
                release["peering"],
                "--tick-seconds",
                "0.5",
                "--verbose",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    custom = client.CustomObjectsApi(api_client)
    try:
        agent.wait_registered(client.CoreV1Api(api_client))
        job = {
            "apiVersion": "ffrtmp.io/v1alpha1",
            "kind": "TranscodeJob",
            "metadata": {"name": "via-chart-rbac"},
            "spec": {
                "input": {"testSource": {"width": 320, "height": 240, "durationSeconds": 2}},
                "output": {"url": "file:///out/via-chart-rbac.mp4"},
                "volumes": [{"name": "out", "mountPath": "/out", "emptyDir": {}}],
                "video": {"codec": "h264", "preset": "ultrafast"},
                "hardware": {"accelerator": "none"},
                "nodeSelector": {"kubernetes.io/hostname": node},
            },
        }
        custom.create_namespaced_custom_object("ffrtmp.io", "v1alpha1", namespace, "transcodejobs", job)

        def phase() -> str | None:
            if operator.poll() is not None:
                raise AssertionError(f"operator exited {operator.returncode}:\n{log_path.read_text()[-3000:]}")
            obj = custom.get_namespaced_custom_object(
                "ffrtmp.io", "v1alpha1", namespace, "transcodejobs", "via-chart-rbac"
            )
            current = (obj.get("status") or {}).get("phase")
            return current if current in ("Completed", "Failed", "Canceled") else None

        try:
            final = wait_until(phase, timeout=120, interval=0.5, what="job via-chart-rbac to finish")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{log_path.read_text()[-4000:]}") from None
        assert final == "Completed", log_path.read_text()[-4000:]
        status = custom.get_namespaced_custom_object(
            "ffrtmp.io", "v1alpha1", namespace, "transcodejobs", "via-chart-rbac"
        )["status"]
        assert status["node"] == node
        events = (
            client.CoreV1Api(api_client)
            .list_namespaced_event(namespace, field_selector="involvedObject.name=via-chart-rbac")
            .items
        )
        assert {e.reason for e in events} >= {"Admitted", "Succeeded"}, [e.reason for e in events]
    finally:
        terminate(operator)
        agent.stop()
        delete_node(api_client, node)
    denied = [line for line in log_path.read_text(errors="replace").splitlines() if RBAC_DENIAL.search(line)]
    assert not denied, "operator hit RBAC denials:\n" + "\n".join(denied[:10])


def test_given_the_agent_sa_token_when_an_agent_runs_then_it_labels_its_node_and_renews_its_lease(
    release, control_plane, api_client, tmp_path
):
    """The DaemonSet's agent (not standalone) with only the chart's agent RBAC: labels, annotation, Lease."""
    core = client.CoreV1Api(api_client)
    node = f"helm-ds-{secrets.token_hex(3)}"
    core.create_node({"metadata": {"name": node}})  # a kubelet would have registered it
    kubeconfig = sa_kubeconfig(
        control_plane,
        api_client,
        namespace=SYSTEM_NS,
        service_account=release["agent_sa"],
        path=tmp_path / "agent.kubeconfig",
    )
    port = free_port()
    log_path = tmp_path / "agent.log"
    with log_path.open("wb") as log:
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ffrtmp_agent",
                "--node-name",
                node,
                "--system-namespace",
                SYSTEM_NS,
                "--metrics-port",
                str(port),
                "--slots",
                "3",
            ],
            env={**control_plane.env(), "KUBECONFIG": str(kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        labelled = wait_until(
            lambda: (
                (core.read_node(node).metadata.labels or {}).get("ffrtmp.io/worker") == "true"
                or (agent.poll() is not None and pytest.fail(log_path.read_text()[-3000:]))
            ),
            timeout=90,
            what="agent to label its node",
        )
        assert labelled
        lease = wait_until(lambda: _lease(api_client, node), timeout=30, what="the agent's Lease")
        assert lease.metadata.annotations["ffrtmp.io/slots"] == "3"
        first = lease.spec.renew_time
        wait_until(lambda: _lease(api_client, node).spec.renew_time > first, timeout=60, what="the Lease renewed")
        assert "ffrtmp.io/hardware" in (core.read_node(node).metadata.annotations or {})
    finally:
        terminate(agent)
        delete_node(api_client, node)
    text = log_path.read_text(errors="replace")
    assert "Forbidden" not in text and "403" not in text, text[-3000:]


def _lease(api_client, node: str):
    try:
        return client.CoordinationV1Api(api_client).read_namespaced_lease(f"ffrtmp-agent-{node}", SYSTEM_NS)
    except client.exceptions.ApiException:
        return None


SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "ServiceMonitor",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
            "listKind": "ServiceMonitorList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def test_given_the_prometheus_operator_api_then_install_creates_servicemonitors(control_plane, api_client, kubectl):
    """.Capabilities.APIVersions comes from the live cluster: with the ServiceMonitor CRD served, the chart
    creates one per component; without it (the other tests) none."""
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(SERVICE_MONITOR_CRD)
    name = f"sm-{secrets.token_hex(3)}"
    try:
        wait_until(
            lambda: (
                "servicemonitors"
                in kubectl("api-resources", "--api-group=monitoring.coreos.com", "-o", "name", check=False).stdout
            ),
            timeout=30,
            what="the ServiceMonitor API to be served",
        )
        helm(
            control_plane,
            "install",
            name,
            str(CHART),
            "-n",
            SYSTEM_NS,
            "--take-ownership",
            "--set",
            f"operator.peering.name={name}-peering",
        )
        monitors = json.loads(
            kubectl(
                "get", "servicemonitors", "-n", SYSTEM_NS, "-l", f"app.kubernetes.io/instance={name}", "-o", "json"
            ).stdout
        )["items"]
        assert sorted(m["metadata"]["name"] for m in monitors) == [f"{name}-ffrtmp-agent", f"{name}-ffrtmp-operator"]
        assert all(m["spec"]["endpoints"][0]["port"] == "metrics" for m in monitors)
    finally:
        helm(control_plane, "uninstall", name, "-n", SYSTEM_NS, check=False)
        ext.delete_custom_resource_definition(SERVICE_MONITOR_CRD["metadata"]["name"])
        # Other tests check that this API is absent: wait until discovery no longer serves it.
        wait_until(
            lambda: (
                not kubectl(
                    "api-resources", "--api-group=monitoring.coreos.com", "-o", "name", check=False
                ).stdout.strip()
            ),
            timeout=60,
            what="the ServiceMonitor API gone",
        )
