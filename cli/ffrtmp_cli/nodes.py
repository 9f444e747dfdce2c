"""The `ffrtmp nodes` commands: list worker nodes with heartbeat status and slots, and describe one node
(hardware annotation, proven encoders, slots from its Lease, the jobs on it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import ffrtmp_api as api
import yaml
from ffrtmp_api.samples import job_sample, leases_by_node, node_sample
from kubernetes.client.exceptions import ApiException

from .errors import CliError
from .format import age, job_row, table
from .kube import Kube

STATUS_TEXT = {"ready": "Ready", "lost": "Lost", "cordoned": "Cordoned", "no_lease": "NoHeartbeat"}


def _encoders(node: dict[str, Any]) -> list[str]:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return sorted(
        k.removeprefix(api.LABEL_ENCODER_PREFIX)
        for k, v in labels.items()
        if k.startswith(api.LABEL_ENCODER_PREFIX) and v == "true"
    )


def _leases(kube: Kube, system_namespace: str) -> dict[str, Mapping[str, Any]]:
    try:
        items = kube.coordination.list_namespaced_lease(system_namespace).items
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return leases_by_node(kube.api_client.sanitize_for_serialization(lease) for lease in items)


def _slot_jobs(kube: Kube) -> list[dict[str, Any]]:
    return kube.custom.list_cluster_custom_object(api.GROUP, api.VERSION, api.PLURAL)["items"]


def node_rows(
    nodes: list[dict], leases: Mapping[str, Mapping[str, Any]], jobs: list[dict], *, now: datetime
) -> list[list[object]]:
    """Pure: one row per node for `nodes list`."""
    samples = [job_sample(j) for j in jobs]
    rows = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        lease = leases.get(name)
        sample = node_sample(node, lease, now=now)
        used = sum(1 for j in samples if j.node == name and j.holds_slot)
        gpu = (node["metadata"].get("labels") or {}).get(api.LABEL_GPU, "false")
        heartbeat = age((lease or {}).get("spec", {}).get("renewTime"), now=now) if lease else "-"
        rows.append(
            [
                name,
                STATUS_TEXT.get(sample.status, sample.status),
                f"{used}/{sample.slots}",
                gpu,
                ",".join(_encoders(node)) or "-",
                heartbeat,
                age(node["metadata"].get("creationTimestamp"), now=now),
            ]
        )
    return rows


NODE_HEADERS = ["NAME", "STATUS", "SLOTS", "GPU", "ENCODERS", "HEARTBEAT", "AGE"]


def list_nodes(args: argparse.Namespace, kube: Kube, out: TextIO) -> int:
    nodes = [
        kube.api_client.sanitize_for_serialization(n)
        for n in kube.core.list_node(label_selector=f"{api.LABEL_WORKER}=true").items
    ]
    if not nodes:
        print("No ffrtmp worker nodes (label ffrtmp.io/worker=true) found.", file=out)
        return 0
    rows = node_rows(nodes, _leases(kube, args.system_namespace), _slot_jobs(kube), now=datetime.now(UTC))
    print(table(NODE_HEADERS, rows), file=out)
    return 0


def describe_node(args: argparse.Namespace, kube: Kube, out: TextIO) -> int:
    try:
        node = kube.api_client.sanitize_for_serialization(kube.core.read_node(args.node))
    except ApiException as exc:
        if exc.status == 404:
            raise CliError(f'node "{args.node}" not found') from None
        raise
    now = datetime.now(UTC)
    lease = _leases(kube, args.system_namespace).get(args.node)
    jobs = [j for j in _slot_jobs(kube) if (j.get("status") or {}).get("node") == args.node]
    print(describe_node_text(node, lease, jobs, now=now), file=out)
    return 0


def describe_node_text(node: dict, lease: Mapping[str, Any] | None, jobs: list[dict], *, now: datetime) -> str:
    """Pure: the `nodes describe` page."""
    meta = node["metadata"]
    labels = meta.get("labels") or {}
    sample = node_sample(node, lease, now=now)
    holding = [j for j in jobs if job_sample(j).holds_slot]
    lines = [
        f"Name:        {meta['name']}",
        f"Status:      {STATUS_TEXT.get(sample.status, sample.status)}",
        f"Worker:      {labels.get(api.LABEL_WORKER, 'false')}    GPU: {labels.get(api.LABEL_GPU, 'false')}",
        f"Encoders:    {', '.join(_encoders(node)) or '-'}",
        f"Slots:       {len(holding)} used of {sample.slots}",
    ]
    if lease:
        spec = lease.get("spec") or {}
        lines.append(
            f"Heartbeat:   renewed {age(spec.get('renewTime'), now=now)} ago "
            f"(lease {spec.get('leaseDurationSeconds', '?')}s, holder {spec.get('holderIdentity', '?')})"
        )
    else:
        lines.append("Heartbeat:   none (no agent Lease)")
    raw = (meta.get("annotations") or {}).get(api.ANNOTATION_HARDWARE)
    if raw:
        try:
            hardware = json.loads(raw)
        except ValueError:
            hardware = {"unparsable": raw[:200]}
        lines.append("Hardware:")
        lines += ["  " + line for line in yaml.safe_dump(hardware, sort_keys=False).rstrip().splitlines()]
    else:
        lines.append("Hardware:    not probed (no ffrtmp.io/hardware annotation)")
    active = [
        j
        for j in jobs
        if ((j.get("status") or {}).get("phase") or "Pending") not in {p.value for p in api.TERMINAL_PHASES}
    ]
    if active:
        lines.append("Jobs:")
        rows = [job_row(j, now=now, namespace_column=True) for j in active]
        lines += [
            "  " + line
            for line in table(
                ["NAMESPACE", "NAME", "PHASE", "PROGRESS", "QUEUE", "PRIORITY", "NODE", "AGE"], rows
            ).splitlines()
        ]
    else:
        lines.append("Jobs:        none")
    return "\n".join(lines)
