"""Standalone mode only: the Node object for a machine without a kubelet, its status as a kubelet would
post it (Ready, capacity, addresses), and its registration.

Builders are pure (`now` passed in); `register_node` does the API calls.
"""

from __future__ import annotations

import json
import logging
import platform
from datetime import datetime
from typing import Any

import ffrtmp_api as api
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
AGENT_VERSION = "ffrtmp-agent/0.1.0"


def standalone_node(name: str, *, labels: dict[str, str], hardware: dict[str, Any]) -> dict[str, Any]:
    """A Node object for a machine without a kubelet (standalone mode), labelled and annotated at once."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": _arch(),
                **labels,
            },
            "annotations": {api.ANNOTATION_HARDWARE: json.dumps(hardware, separators=(",", ":"))},
        },
        "spec": {},
    }


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def standalone_node_status(
    *, cpu_cores: int, memory_bytes: int, slots: int, now: datetime, ready: bool = True
) -> dict[str, Any]:
    """Node status as a kubelet would post it: Ready, capacity, allocatable, the loopback address."""
    capacity = {"cpu": str(cpu_cores), "memory": f"{memory_bytes // 1024}Ki", "pods": str(max(slots, 1) * 4)}
    stamp = api.stamp_seconds(now)  # metav1.Time: whole seconds
    return {
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "AgentReady" if ready else "AgentStopped",
                    "message": "ffrtmp standalone agent is running" if ready else "ffrtmp standalone agent stopped",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "localhost"}],
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": platform.platform(),
                "containerRuntimeVersion": "local-process://" + AGENT_VERSION,
                "kubeletVersion": AGENT_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }
    }


def register_node(
    core: client.CoreV1Api, name: str, *, labels: dict[str, str], hardware: dict[str, Any], status: dict[str, Any]
) -> None:
    """Create Node `name` if missing (standalone mode), then post its status."""
    try:
        core.create_node(standalone_node(name, labels=labels, hardware=hardware))
        log.info("registered node %s", name)
    except ApiException as exc:
        if exc.status != 409:
            raise
    core.patch_node_status(name, status, _content_type=api.MERGE_PATCH)
