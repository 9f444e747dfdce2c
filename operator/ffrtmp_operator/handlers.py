"""kopf registration: watch handlers that feed the cache, and the scheduler as a peering-bound daemon.

Only `@kopf.on.event` handlers: kopf then writes nothing on the watched objects (no progress or
last-handled-configuration annotations). Each handler parses the raw object into a compact record and
wakes the scheduler. The scheduler runs as a daemon on this replica's ClusterKopfPeering object:
kopf stops daemons while peering pauses the operator, so only the active replica schedules.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ffrtmp_api as api
import kopf

from . import presets
from .cache import Cache
from .driver import Driver
from .kube import Kube
from .metrics import OperatorMetrics
from .queues import queue_record
from .recorder import MetricsRecorder, NoRecorder
from .records import job_record, lease_record, namespace_terminating, node_record, pod_record
from .settings import Settings

log = logging.getLogger("ffrtmp.handlers")


def register(
    registry: kopf.OperatorRegistry,
    *,
    cache: Cache,
    kube: Kube,
    settings: Settings,
    metrics: OperatorMetrics | None = None,
) -> None:
    on = {"registry": registry}

    @kopf.on.event(api.GROUP, api.VERSION, api.PLURAL, **on)
    async def job_event(event: dict[str, Any], **_: Any) -> None:
        obj = event["object"]
        meta = obj.get("metadata") or {}
        if not settings.manages(meta.get("namespace", "")):
            return
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if event.get("type") == "DELETED":
            cache.delete_job(key, resource_version=meta.get("resourceVersion", ""))
            await _stop_pods_of_deleted_job(key, meta.get("uid", ""))
        elif not cache.upsert_job(job_record(obj, previous=cache.jobs.get(key))):
            return
        await cache.notify()

    async def _stop_pods_of_deleted_job(key: tuple[str, str], uid: str) -> None:
        # The garbage collector does this on a real cluster (ownerReference); the local stack has none,
        # and a deleted job's encoder should not run on. A 404 (already gone) is fine.
        for pod in cache.pods_of(key):
            if pod.job_uid == uid and not pod.deleting:
                await kube.delete_pod(pod.namespace, pod.name)

    presets.register(registry, cache=cache, settings=settings)  # TranscodePresets: presets.py

    @kopf.on.event("", "v1", "pods", **on)
    async def pod_event(event: dict[str, Any], **_: Any) -> None:
        record = pod_record(event["object"])
        if record is None or not settings.manages(record.namespace):
            return
        if event.get("type") == "DELETED":
            cache.delete_pod(record.namespace, record.name, resource_version=record.resource_version)
        elif not cache.upsert_pod(record):
            return
        await cache.notify()

    @kopf.on.event("", "v1", "nodes", **on)
    async def node_event(event: dict[str, Any], **_: Any) -> None:
        record = node_record(event["object"])
        gone = event.get("type") == "DELETED" or record.labels.get(api.LABEL_WORKER) != "true"
        if cache.set_node(record.name, None if gone else record):
            log.debug("node changed", extra={"node": record.name, "event": event.get("type"), "gone": gone})
            await cache.notify()

    @kopf.on.event("coordination.k8s.io", "v1", "leases", **on)
    async def lease_event(event: dict[str, Any], **_: Any) -> None:
        obj = event["object"]
        if (obj.get("metadata") or {}).get("namespace") != settings.system_namespace:
            return  # the server-side field selector already drops these; kept for safety
        record = lease_record(obj)
        if record is not None and cache.set_lease(record.node, None if event.get("type") == "DELETED" else record):
            log.debug("lease changed", extra={"node": record.node, "event": event.get("type")})
            await cache.notify()

    @kopf.on.event("", "v1", "namespaces", **on)
    async def namespace_event(event: dict[str, Any], **_: Any) -> None:
        obj = event["object"]
        name = (obj.get("metadata") or {}).get("name", "")
        if not settings.manages(name):
            return
        terminating = event.get("type") != "DELETED" and namespace_terminating(obj)
        if cache.set_namespace_terminating(name, terminating):
            # A normal cluster state, not a problem: one debug line, no warnings, no Events.
            log.debug(
                "namespace terminating: its jobs are left alone" if terminating else "namespace not terminating",
                extra={"namespace": name},
            )
            await cache.notify()

    @kopf.on.event("scheduling.k8s.io", "v1", "priorityclasses", **on)
    async def priority_class_event(event: dict[str, Any], **_: Any) -> None:
        obj = event["object"]
        values = dict(cache.priority_values)
        name = (obj.get("metadata") or {}).get("name", "")
        if event.get("type") == "DELETED":
            values.pop(name, None)
        else:
            values[name] = int(obj.get("value") or 0)
        cache.set_priority_values(values)
        await cache.notify()

    @kopf.on.event(api.GROUP, api.VERSION, api.QUEUE_PLURAL, **on)
    async def queue_event(event: dict[str, Any], **_: Any) -> None:
        """TranscodeQueues (cluster-scoped): order, pause, cap and policies for the next cycle."""
        record = queue_record(event["object"])
        if cache.set_queue(record.name, None if event.get("type") == "DELETED" else record):
            log.debug("queue changed", extra={"queue": record.name, "event": event.get("type")})
            await cache.notify()

    async def run_scheduler(stopped: Any = None) -> None:
        log.info("scheduler started: this replica is active")
        try:
            recorder = MetricsRecorder(metrics) if metrics is not None else NoRecorder()
            await Driver(cache, kube, settings, recorder=recorder).run(stopped)
        finally:
            cache.live = False  # paused or stopping: the watches stop feeding the cache
            log.info("scheduler stopped")

    if settings.peering.enabled:

        @kopf.daemon(
            "kopf.dev",
            "v1",
            "clusterkopfpeerings",
            when=lambda name, **_: name == settings.peering.name,
            # On pause or exit: the flag first, 5 s for the pass in flight to finish its writes, then cancel.
            cancellation_backoff=5.0,
            cancellation_timeout=5.0,
            **on,
        )
        async def scheduler(stopped: kopf.DaemonStopped, **_: Any) -> None:
            await run_scheduler(stopped)

    else:

        @kopf.on.startup(**on)
        async def start_scheduler(memo: kopf.Memo, **_: Any) -> None:
            memo["scheduler"] = asyncio.get_running_loop().create_task(run_scheduler())

        @kopf.on.cleanup(**on)
        async def stop_scheduler(memo: kopf.Memo, **_: Any) -> None:
            task = memo.get("scheduler")
            if task is not None:
                task.cancel()
