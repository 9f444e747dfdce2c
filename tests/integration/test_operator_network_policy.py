"""The job pods' NetworkPolicy (issue #10): the operator makes it in a namespace before the first job pod
there (no admin lists the namespace anywhere), with the egress the job policy asks for, and restores it when
a user widens or deletes it, by the next job pod at the latest.

The light stack has no network plugin, so nothing enforces the policy here: the tests assert the object the
API server holds. "Before" is read from resourceVersions, which a single etcd hands out in write order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ffrtmp_api as api
import pytest
from ffrtmp_operator.network_policy import NAME
from kubernetes import client

from tests.support import wait_until

ALLOW = ("10.20.0.0/16", "[fd00::/8]:443", "media.corp:443")


def _policy(api_client: client.ApiClient, namespace: str) -> dict[str, Any] | None:
    try:
        found = client.NetworkingV1Api(api_client).read_namespaced_network_policy(NAME, namespace)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return api_client.sanitize_for_serialization(found)


def _placed(cluster: Any, name: str) -> int:
    """Creates job `name`, waits for its pod; the pod's resourceVersion (no one writes the pod afterwards)."""
    cluster.create_job(name)
    cluster.wait_phase(name, "Assigned")
    pods = wait_until(lambda: cluster.pods(name), what=f"{name}'s pod")
    return int(pods[0].metadata.resource_version)


@pytest.fixture
def api_endpoints(api_client: client.ApiClient) -> Iterator[tuple[str, int]]:
    """EndpointSlice default/kubernetes as a kind cluster's API server writes it (the light stack's runs no
    endpoint reconciler, and an EndpointSlice may not name its loopback address); removed afterwards."""
    discovery = client.DiscoveryV1Api(api_client)
    body = {
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["172.18.0.2"]}],
        "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
    }
    discovery.create_namespaced_endpoint_slice("default", body)
    yield ("172.18.0.2", 6443)
    discovery.delete_namespaced_endpoint_slice("kubernetes", "default")


def test_given_a_job_in_a_fresh_namespace_when_its_pod_is_made_then_the_network_policy_exists_first(
    start_operator, cluster, api_client, namespace, api_endpoints
):
    allow = [arg for entry in ALLOW for arg in ("--egress-allow", entry)]
    start_operator(*allow).wait_active()
    cluster.add_node("w", slots=4)
    assert _policy(api_client, namespace) is None  # nothing listed this namespace anywhere

    pod_version = _placed(cluster, "first")
    policy = _policy(api_client, namespace)
    assert policy is not None and int(policy["metadata"]["resourceVersion"]) < pod_version
    assert policy["metadata"]["labels"][api.LABEL_MANAGED_BY] == api.MANAGED_BY
    assert not policy["metadata"].get("ownerReferences")
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {api.LABEL_MANAGED_BY: api.MANAGED_BY}}
    assert spec["policyTypes"] == ["Ingress", "Egress"] and not spec.get("ingress")
    dns, *rest = spec["egress"]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    ip, port = api_endpoints
    api_server, public, *allowed = rest  # the API server's endpoint, on its port only
    assert api_server == {"to": [{"ipBlock": {"cidr": f"{ip}/32"}}], "ports": [{"protocol": "TCP", "port": port}]}
    v4, v6 = (p["ipBlock"] for p in public["to"])
    assert v4["cidr"] == "0.0.0.0/0" and {"10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8"} <= set(v4["except"])
    assert v6["cidr"] == "::/0" and "fc00::/7" in v6["except"]
    # The allow list's networks, each on its port; the host name cannot be written in a NetworkPolicy.
    assert allowed == [
        {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]},
        {"to": [{"ipBlock": {"cidr": "fd00::/8"}}], "ports": [{"protocol": p, "port": 443} for p in ("TCP", "UDP")]},
    ]

    _placed(cluster, "second")  # as it should be: read, not written again
    assert _policy(api_client, namespace)["metadata"]["resourceVersion"] == policy["metadata"]["resourceVersion"]


def test_given_a_user_widens_or_deletes_the_policy_when_the_next_job_pod_is_made_then_it_is_restored_first(
    operator, cluster, api_client, namespace
):
    net = client.NetworkingV1Api(api_client)
    cluster.add_node("w", slots=3)
    _placed(cluster, "first")
    made = _policy(api_client, namespace)

    # A tenant allowed all egress, and made the policy select no job pod (a label job pods lack).
    widened = {"egress": [{}], "podSelector": {"matchLabels": {"team": "a"}}}
    net.patch_namespaced_network_policy(NAME, namespace, {"metadata": {"labels": {"team": "a"}}, "spec": widened})
    assert _policy(api_client, namespace)["spec"]["podSelector"]["matchLabels"]["team"] == "a"
    pod_version = _placed(cluster, "second")
    restored = _policy(api_client, namespace)
    assert restored["spec"] == made["spec"] and int(restored["metadata"]["resourceVersion"]) < pod_version
    assert restored["metadata"]["labels"]["team"] == "a"  # the user's own label is kept

    net.delete_namespaced_network_policy(NAME, namespace)
    pod_version = _placed(cluster, "third")
    remade = _policy(api_client, namespace)
    assert remade is not None and remade["spec"] == made["spec"]
    assert int(remade["metadata"]["resourceVersion"]) < pod_version
