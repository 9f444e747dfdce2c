"""`ffrtmp queues`: the TranscodeQueues jobs name in spec.queue, with their order, pause, cap and counts
(the status the operator writes). Where a cluster has no queue object of the names live, default or batch,
the operator serves that name with built-in defaults: those rows say so.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import ffrtmp_api as api
from kubernetes.client.exceptions import ApiException

from .format import age, table
from .kube import Kube

QUEUE_HEADERS = ["NAME", "ORDER", "PAUSED", "MAX", "PENDING", "ADMITTED", "RUNNING", "FAIR", "RECLAIMS", "AGE"]


def list_objects(kube: Kube, **kwargs: Any) -> list[dict[str, Any]]:
    """The TranscodeQueue objects; none where the CRD is not installed."""
    try:
        return kube.custom.list_cluster_custom_object(api.GROUP, api.VERSION, api.QUEUE_PLURAL, **kwargs)["items"]
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise


def effective(objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pure: the queue objects plus each built-in no object replaces, in the order jobs are served."""
    queues = {q["metadata"]["name"]: dict(q) for q in objects}
    for name, spec in api.BUILTIN_QUEUES.items():
        queues.setdefault(
            name, {"metadata": {"name": name}, "spec": spec.model_dump(exclude_none=True), "builtin": True}
        )
    return sorted(queues.values(), key=lambda q: ((q.get("spec") or {}).get("order", 100), q["metadata"]["name"]))


def queue_rows(
    queues: Iterable[Mapping[str, Any]], *, jobs: Iterable[Mapping[str, Any]] = (), now: datetime
) -> list[list[object]]:
    """Pure: one row per queue. A built-in queue has no status: its counts come from `jobs`."""
    counted: dict[str, list[int]] = {}
    for job in jobs:
        phase = (job.get("status") or {}).get("phase")
        paused_from = (job.get("status") or {}).get("pausedFrom")
        tally = counted.setdefault((job.get("spec") or {}).get("queue", "default"), [0, 0, 0])
        tally[0] += phase == api.Phase.QUEUED
        tally[1] += api.holds_slot(phase, paused_from)
        tally[2] += phase == api.Phase.PROCESSING
    rows = []
    for queue in queues:
        name, spec, status = queue["metadata"]["name"], queue.get("spec") or {}, queue.get("status") or {}
        numbers = (
            counted.get(name, [0, 0, 0])
            if queue.get("builtin")
            else [status.get("pending", 0), status.get("admitted", 0), status.get("running", 0)]
        )
        created = queue["metadata"].get("creationTimestamp")
        rows.append(
            [
                name,
                spec.get("order", 100),
                str(bool(spec.get("paused"))).lower(),
                spec.get("maxRunning", "-"),
                *numbers,
                "on" if (spec.get("fairSharing") or {}).get("enabled") else "off",
                ",".join((spec.get("preemption") or {}).get("reclaimFrom") or []) or "-",
                age(created, now=now) if created else "(built-in)",
            ]
        )
    return rows


def list_queues(args: argparse.Namespace, kube: Kube, out: TextIO) -> int:
    queues = effective(list_objects(kube))
    jobs = (
        kube.custom.list_cluster_custom_object(api.GROUP, api.VERSION, api.PLURAL)["items"]
        if any(q.get("builtin") for q in queues)
        else []
    )
    print(table(QUEUE_HEADERS, queue_rows(queues, jobs=jobs, now=datetime.now(UTC))), file=out)
    return 0


def names(kube: Kube) -> list[str]:
    """Queue names in serving order (completion)."""
    return [q["metadata"]["name"] for q in effective(list_objects(kube, _request_timeout=3.0))]
