"""The scrape-time metrics snapshot, built from the operator's watch-fed cache instead of listing jobs,
nodes and leases from the API server on every scrape (10,000 jobs were a large read every 15 s).

`snapshot_from_cache` is pure; `cache_snapshot_source` hands the scrape thread a consistent copy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from ffrtmp_api import Phase

from .cache import Cache
from .metrics import JobSample, MetricsSnapshot, NodeSample, queue_labels
from .records import JobRecord, LeaseRecord, NodeRecord

CAPTURE_TIMEOUT_S = 5.0


def job_sample_of(job: JobRecord) -> JobSample:
    progress = job.progress
    return JobSample(
        namespace=job.namespace,
        name=job.name,
        phase=(job.phase or Phase.PENDING).value,
        queue=job.queue,
        priority=job.priority,
        node=job.node,
        paused_from=job.paused_from.value if job.paused_from else None,
        queued_at=job.queued_at,
        progress_percent=progress.percent if progress else None,
        fps=progress.fps if progress else None,
        speed=progress.speed if progress else None,
    )


def node_sample_of(node: NodeRecord, lease: LeaseRecord | None, *, now: datetime) -> NodeSample:
    """Same statuses as ffrtmp_api.samples.node_sample: cordoned wins, then no_lease, then ready while alive."""
    if node.unschedulable:
        status = "cordoned"
    elif lease is None:
        status = "no_lease"
    else:
        status = "ready" if lease.alive(now) else "lost"
    slots = lease.slots if lease is not None and lease.slots is not None else 0
    return NodeSample(name=node.name, status=status, slots=max(slots, 0))


def snapshot_from_cache(
    *,
    jobs: Iterable[JobRecord],
    nodes: Iterable[NodeRecord],
    leases: Mapping[str, LeaseRecord],
    now: datetime,
    queues: Iterable[str] = (),
) -> MetricsSnapshot:
    """Pure: the gauges' snapshot from the cache's records (`leases` keyed by node name, as in Cache;
    `queues`: the names of the queues that exist, which label the gauges)."""
    return MetricsSnapshot(
        now=now,
        jobs=[job_sample_of(j) for j in jobs],
        nodes=[node_sample_of(n, leases.get(n.name), now=now) for n in nodes],
        queues=queue_labels(queues),
    )


class CacheView(NamedTuple):
    jobs: list[JobRecord]
    nodes: list[NodeRecord]
    leases: dict[str, LeaseRecord]
    queues: list[str]


def capture(cache: Cache) -> CacheView | None:
    """A copy of the cache's containers (references only: records are immutable, replaced on change);
    None while the cache is not live (a standby replica, or before the first resync)."""
    if not cache.live:
        return None
    return CacheView(list(cache.jobs.values()), list(cache.nodes.values()), dict(cache.leases), list(cache.queues))


def cache_snapshot_source(
    cache: Cache,
    *,
    loop: asyncio.AbstractEventLoop,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[], MetricsSnapshot | None]:
    """The collector's snapshot callable, run in prometheus-client's HTTP thread.

    The cache is mutated on the asyncio loop without locks (every writer would need one). So the scrape
    asks the loop for the copy instead: it runs between two awaits, where the cache is consistent, and
    costs the loop a reference copy (well under a millisecond for 10,000 jobs); building the samples and
    families, the O(n) Python work, stays in the scrape thread. A loop busy for longer than
    CAPTURE_TIMEOUT_S fails the scrape's gauges (counted in ffrtmp_metrics_snapshot_errors_total).
    Returns None (the gauges are left out) while the cache is not live: see Cache.live."""

    def snapshot() -> MetricsSnapshot | None:
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:  # called on the loop itself (e.g. a test rendering in a coroutine): no hop, no deadlock
            view = capture(cache)
        else:
            future: concurrent.futures.Future[CacheView | None] = concurrent.futures.Future()

            def run() -> None:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(capture(cache))
                    except Exception as error:
                        future.set_exception(error)

            loop.call_soon_threadsafe(run)
            try:
                view = future.result(timeout=CAPTURE_TIMEOUT_S)
            finally:
                future.cancel()  # a loop that gets to it later does nothing
        if view is None:
            return None
        return snapshot_from_cache(jobs=view.jobs, nodes=view.nodes, leases=view.leases, now=now(), queues=view.queues)

    return snapshot
