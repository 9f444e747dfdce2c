"""The agent process against a real API server: it labels and annotates its Node with what this machine
really has, keeps its heartbeat Lease fresh, and serves node metrics."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import ffrtmp_api as api
import psutil
import pytest
from kubernetes import client

from tests.support import AgentProcess, registered_agent, scrape_metrics, wait_until


@pytest.fixture(scope="module")
def agent(
    control_plane: Any, api_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentProcess]:
    with registered_agent(
        control_plane.env(),
        client.CoreV1Api(api_client),
        node=f"agent-node-{secrets.token_hex(3)}",
        work_dir=tmp_path_factory.mktemp("agent"),
    ) as proc:
        yield proc


def _node(api_client: client.ApiClient, name: str) -> dict[str, Any]:
    return api_client.sanitize_for_serialization(client.CoreV1Api(api_client).read_node(name))


def _lease(api_client: client.ApiClient, node: str) -> dict[str, Any]:
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(
        api.LEASE_PREFIX + node, api.DEFAULT_SYSTEM_NAMESPACE
    )
    return api_client.sanitize_for_serialization(lease)


def test_given_a_standalone_agent_then_its_node_is_registered_ready_on_loopback(agent, api_client):
    node = _node(api_client, agent.node)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    assert node["status"]["capacity"]["cpu"] == str(os.cpu_count())


def test_given_this_machine_then_labels_show_worker_and_proven_software_encoders(agent, api_client):
    labels = _node(api_client, agent.node)["metadata"]["labels"]
    hardware = json.loads(_node(api_client, agent.node)["metadata"]["annotations"][api.ANNOTATION_HARDWARE])
    assert labels[api.LABEL_WORKER] == "true"
    assert labels[api.LABEL_GPU] == ("true" if hardware["gpus"] else "false")
    assert labels[api.LABEL_ENCODER_PREFIX + "libx264"] == "true"
    proven = {k.removeprefix(api.LABEL_ENCODER_PREFIX) for k in labels if k.startswith(api.LABEL_ENCODER_PREFIX)}
    assert proven == set(hardware["encoders"]["proven"]), "a label for every proven encoder, and only those"


def test_given_this_machine_then_the_hardware_annotation_matches_it(agent, api_client):
    hardware = json.loads(_node(api_client, agent.node)["metadata"]["annotations"][api.ANNOTATION_HARDWARE])
    assert hardware["cpu"]["cores"] == os.cpu_count()
    total = psutil.virtual_memory().total
    assert abs(hardware["memory"]["totalBytes"] - total) <= 0.05 * total
    trials = {t["encoder"]: t for t in hardware["encoders"]["trials"]}
    assert trials["libx264"]["ok"] is True
    for name in ("h264_nvenc", "hevc_nvenc"):
        if name in trials and not trials[name]["ok"]:
            assert trials[name]["error"], "a failed trial says why"
            assert api.LABEL_ENCODER_PREFIX + name not in _node(api_client, agent.node)["metadata"]["labels"]


def test_given_a_running_agent_then_its_lease_is_renewed(agent, api_client):
    first = _lease(api_client, agent.node)
    assert first["spec"]["holderIdentity"] == agent.node
    assert first["spec"]["leaseDurationSeconds"] == 15
    assert first["metadata"]["annotations"][api.ANNOTATION_SLOTS] == "2"

    def renewed() -> bool:
        return _lease(api_client, agent.node)["spec"]["renewTime"] > first["spec"]["renewTime"]

    wait_until(renewed, timeout=12, interval=0.5, what="renewTime to advance")
    renew = datetime.fromisoformat(_lease(api_client, agent.node)["spec"]["renewTime"].replace("Z", "+00:00"))
    assert abs(time.time() - renew.timestamp()) < 15, "the lease is fresh by the operator's rule"


def test_given_unchanged_hardware_then_the_node_is_not_rewritten(agent, api_client):
    before = _node(api_client, agent.node)["metadata"]["resourceVersion"]
    time.sleep(6)  # a full renewal period: the heartbeat writes the Lease, never the Node
    assert _node(api_client, agent.node)["metadata"]["resourceVersion"] == before


def test_given_a_running_agent_then_node_metrics_are_served(agent):
    body = wait_until(lambda: scrape_metrics(agent.metrics_port), timeout=10, what="the metrics endpoint")
    assert f'ffrtmp_node_cpu_cores{{node="{agent.node}"}} {float(os.cpu_count())}' in body
    assert f'ffrtmp_node_encoder_available{{encoder="libx264",node="{agent.node}"}} 1.0' in body
    assert f'ffrtmp_agent_slots{{node="{agent.node}"}} 2.0' in body
    assert "ffrtmp_node_memory_total_bytes" in body


def test_given_a_kubelet_node_with_a_stale_nvenc_label_when_the_daemonset_agent_starts_then_it_is_corrected(
    control_plane, api_client, tmp_path
):
    core = client.CoreV1Api(api_client)
    name = f"kubelet-node-{secrets.token_hex(3)}"
    stale = api.LABEL_ENCODER_PREFIX + "h264_nvenc"
    core.create_node({"metadata": {"name": name, "labels": {stale: "true", "team": "video"}}})
    agent = AgentProcess(env=control_plane.env(), node=name, work_dir=tmp_path, standalone=False)
    try:
        node = agent.wait_registered(core)
        hardware = json.loads(node["metadata"]["annotations"][api.ANNOTATION_HARDWARE])
        labels = node["metadata"]["labels"]
        if "h264_nvenc" not in hardware["encoders"]["proven"]:
            assert stale not in labels, "an encoder that failed its trial loses its label"
        assert labels["team"] == "video", "labels that are not ours stay"
        assert "conditions" not in (node.get("status") or {}), "the kubelet owns the node status, not the agent"
        wait_until(lambda: _lease_holder(api_client, name) == name, timeout=10, what="the heartbeat lease")
    finally:
        agent.stop()
        core.delete_node(name)


def _lease_holder(api_client: client.ApiClient, node: str) -> str | None:
    try:
        return _lease(api_client, node)["spec"]["holderIdentity"]
    except client.exceptions.ApiException:
        return None
