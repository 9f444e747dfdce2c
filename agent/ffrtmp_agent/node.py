"""The agent's writes about its node: ffrtmp labels and the hardware annotation on the Node, the
heartbeat Lease (with the slot count) in the system namespace, and, in standalone mode, the Node itself.

Builders are pure (plain dicts in, plain dicts out, `now` passed in); the small functions at the bottom
do the API calls. Writes are kept low: the Node is patched only when our labels or annotation differ.
"""

from __future__ import annotations

import json
import logging
import platform
from datetime import datetime, timezone
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ffrtmp_agent import probe
import ffrtmp_api as api

log = logging.getLogger(__name__)
MERGE_PATCH = "application/merge-patch+json"
AGENT_VERSION = "ffrtmp-agent/0.1.0"


def micro_time(now: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with exactly six fraction digits, as Lease fields require)."""
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def lease_name(node: str) -> str:
    return api.LEASE_PREFIX + node


def lease_body(node: str, *, namespace: str, slots: int, lease_seconds: int, now: datetime) -> dict[str, Any]:
    """The heartbeat Lease: alive while renewTime + leaseDurationSeconds > now (see interfaces)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(node),
            "namespace": namespace,
            "labels": {api.LABEL_MANAGED_BY: "ffrtmp-agent"},
            "annotations": {api.ANNOTATION_SLOTS: str(slots)},
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": lease_seconds,
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
        },
    }


def renewal_patch(node: str, *, slots: int, lease_seconds: int, now: datetime) -> dict[str, Any]:
    """What each renewal writes: renewTime, plus the fields a restarted agent may have changed."""
    return {
        "metadata": {"annotations": {api.ANNOTATION_SLOTS: str(slots)}},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": lease_seconds, "renewTime": micro_time(now)},
    }


def metadata_patch(node_obj: dict[str, Any], *, labels: dict[str, str], hardware: dict[str, Any]) -> dict[str, Any]:
    """The Node patch that brings our labels and hardware annotation up to date; {} when they are.

    `probedAt` and the load figures change on every probe, so they are ignored when deciding whether
    the annotation changed: a restart on the same hardware writes nothing.
    """
    meta = node_obj.get("metadata") or {}
    patch: dict[str, Any] = {}
    label_changes = probe.labels_patch(meta.get("labels") or {}, labels)
    if label_changes:
        patch["labels"] = label_changes
    current = (meta.get("annotations") or {}).get(api.ANNOTATION_HARDWARE)
    if current is None or _stable(_loads(current)) != _stable(hardware):
        patch["annotations"] = {api.ANNOTATION_HARDWARE: json.dumps(hardware, separators=(",", ":"))}
    return {"metadata": patch} if patch else {}


def _loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _stable(hardware: dict[str, Any]) -> dict[str, Any]:
    """The hardware document without the fields that change from one probe to the next."""
    doc = {k: v for k, v in hardware.items() if k != "probedAt"}
    doc["cpu"] = {k: v for k, v in (doc.get("cpu") or {}).items() if not k.startswith("load")}
    doc["memory"] = {k: v for k, v in (doc.get("memory") or {}).items() if k != "availableBytes"}
    enc = dict(doc.get("encoders") or {})
    enc["trials"] = [{k: v for k, v in t.items() if k not in ("seconds", "error")} for t in enc.get("trials", [])]
    doc["encoders"] = enc
    doc["gpus"] = [
        {k: v for k, v in g.items() if not k.endswith("Percent") and k != "encoderSessions"}
        for g in doc.get("gpus") or []
    ]
    return doc


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
    stamp = rfc3339(now)
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


# --------------------------------------------------------------------------------------- API calls


def sync_node_metadata(core: client.CoreV1Api, node: str, *, labels: dict[str, str], hardware: dict[str, Any]) -> bool:
    """Patch the Node's labels/annotation when they differ; True when a write happened."""
    current = core.api_client.sanitize_for_serialization(core.read_node(node))
    patch = metadata_patch(current, labels=labels, hardware=hardware)
    if not patch:
        return False
    core.patch_node(node, patch, _content_type=MERGE_PATCH)
    log.info("node %s: labels/annotation updated (%s)", node, ", ".join(sorted(patch["metadata"])))
    return True


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
    core.patch_node_status(name, status, _content_type=MERGE_PATCH)


class Heartbeat:
    """Renews the node's Lease; creates it when missing (first start, or someone deleted it)."""

    def __init__(self, coord: client.CoordinationV1Api, node: str, *, namespace: str, slots: int, lease_seconds: int):
        self.coord = coord
        self.node = node
        self.namespace = namespace
        self.slots = slots
        self.lease_seconds = lease_seconds

    def renew(self, now: datetime) -> None:
        name = lease_name(self.node)
        patch = renewal_patch(self.node, slots=self.slots, lease_seconds=self.lease_seconds, now=now)
        try:
            self.coord.patch_namespaced_lease(name, self.namespace, patch, _content_type=MERGE_PATCH)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        body = lease_body(self.node, namespace=self.namespace, slots=self.slots, lease_seconds=self.lease_seconds,
                          now=now)
        try:
            self.coord.create_namespaced_lease(self.namespace, body)
            log.info("created lease %s/%s", self.namespace, name)
        except ApiException as exc:
            if exc.status != 409:  # created between our patch and create: the next renewal patches it
                raise
