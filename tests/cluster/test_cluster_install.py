"""The chart as `helm install` left it on a real cluster: kubelet + containerd nodes, the operator
replicas on in-cluster config with one active by peering, the agent probing its node from inside its
container (labels, Lease), and the metrics Services answering through the API server's service proxy.
"""

from __future__ import annotations

import time

from .kit import RELEASE, SYSTEM_NS, Kube, wait_until


def test_given_the_cluster_then_every_node_is_a_ready_kubelet_on_containerd(kube: Kube) -> None:
    nodes = kube.core.list_node().items
    assert nodes, "no nodes"
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True", node.metadata.name
        assert node.status.node_info.container_runtime_version.startswith("containerd://")
        assert node.status.node_info.kubelet_version.startswith("v1.")


def test_given_the_release_then_the_operator_replicas_run_in_cluster_and_one_is_active(kube: Kube) -> None:
    deploy = kube.apps.read_namespaced_deployment(f"{RELEASE}-operator", SYSTEM_NS)
    assert deploy.status.ready_replicas == deploy.spec.replicas == 2
    pods = kube.operator_pods()
    for pod in pods:
        container = pod.spec.containers[0]
        assert container.command == ["ffrtmp-operator"]
        assert not any(e.name == "KUBECONFIG" for e in container.env or []), "must use in-cluster config"
        assert pod.spec.security_context.run_as_non_root is True
        assert pod.status.container_statuses[0].ready
        assert pod.status.container_statuses[0].container_id.startswith("containerd://")
    # both start as active for a moment; peering pauses the lower-priority one within seconds
    wait_until(
        lambda: sum(kube.is_active(p.metadata.name) for p in kube.operator_pods()) == 1,
        timeout=60,
        what="exactly one active operator replica",
    )


def test_given_the_agent_daemonset_then_it_probed_labelled_and_heartbeats_each_node(kube: Kube) -> None:
    ds = kube.apps.read_namespaced_daemon_set(f"{RELEASE}-agent", SYSTEM_NS)
    workers = [n for n in kube.core.list_node().items if (n.metadata.labels or {}).get("ffrtmp.io/worker") == "true"]
    assert ds.status.number_ready == ds.status.desired_number_scheduled == len(workers) >= 1
    for node in workers:
        labels = kube.core.read_node(node.metadata.name).metadata.labels
        assert labels.get("ffrtmp.io/encoder.libx264") == "true", labels  # a trial encode inside the container
        lease = f"ffrtmp-agent-{node.metadata.name}"
        first = kube.coordination.read_namespaced_lease(lease, SYSTEM_NS).spec.renew_time
        wait_until(
            lambda lease=lease, first=first: (
                kube.coordination.read_namespaced_lease(lease, SYSTEM_NS).spec.renew_time != first
            ),
            timeout=20,
            what=f"{lease} renewed",
        )


def test_given_the_metrics_services_then_each_answers_with_its_series(kube: Kube) -> None:
    for service, port, series in (
        (f"{RELEASE}-operator-metrics", "metrics", "ffrtmp_"),
        (f"{RELEASE}-agent-metrics", "metrics", "ffrtmp_node"),
    ):
        endpoints = kube.kubectl(
            "get",
            "endpointslices",
            "-n",
            SYSTEM_NS,
            "-l",
            f"kubernetes.io/service-name={service}",
            "-o",
            "jsonpath={.items[*].endpoints[*].addresses[*]}",
        ).split()
        assert endpoints, f"{service} has no endpoints"
        for _ in range(3):  # the service proxy picks an endpoint: ask a few times
            text = kube.kubectl(
                "get", "--raw", f"/api/v1/namespaces/{SYSTEM_NS}/services/{service}:{port}/proxy/metrics"
            )
            assert series in text, f"{service}: no {series} series"
            time.sleep(0.2)
