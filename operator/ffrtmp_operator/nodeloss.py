"""Node loss, confirmed before it is acted on. The cache's view of a node's Lease comes from a watch that
can lag far behind under load (the benchmark saw > 45 s), and declaring a node lost requeues its jobs and
deletes their running pods. So a node the cache thinks lost is read from the API first; a read that fails
keeps its jobs where they are this time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

import ffrtmp_api as api

from .apierrors import is_outage
from .cache import Cache
from .clock import Clock
from .kube import Kube
from .reachability import Reachability
from .records import lease_record

log = logging.getLogger("ffrtmp.scheduler")


class NodeLoss:
    def __init__(
        self,
        cache: Cache,
        kube: Kube,
        *,
        reachability: Reachability,
        system_namespace: str,
        tick_seconds: float,
        clock: Clock,
        limit: asyncio.Semaphore,
    ) -> None:
        self.cache = cache
        self.kube = kube
        self.reachability = reachability
        self.system_namespace = system_namespace
        self.tick_seconds = tick_seconds
        self.clock = clock
        self._limit = limit  # shared with the pass's writes: a Lease read is one more API call in flight
        # Direct Lease reads that confirm an expiry: node -> (monotonic time, whether the read answered).
        self._lease_reads: dict[str, tuple[float, bool]] = {}

    def node_alive(self, node: str | None, now: datetime) -> bool:
        """As the cache sees it: the node's agent Lease is live (or expired while heartbeats could not reach
        the API). Only the Lease: the worker label and cordoning gate new placement, never the jobs
        already running there (a node whose label is removed drops out of the worker cache)."""
        lease = self.cache.leases.get(node or "")
        return lease is not None and (
            lease.alive(now) or not self.reachability.heartbeats_could_arrive(now, lease.duration_seconds)
        )

    async def confirm_lost(self, nodes: set[str]) -> set[str]:
        """Read the Lease of each node the cache thinks lost from the API before any of its jobs is
        requeued. Refreshes the cache with what the reads return; returns the nodes whose Lease could not
        be read, whose jobs stay put this time. One read per node per tick: in between, a node read fine
        is judged on the refreshed cache, one not read stays held."""
        started = time.monotonic()
        self._lease_reads = {n: r for n, r in self._lease_reads.items() if started - r[0] < self.tick_seconds}
        due = [n for n in nodes if n not in self._lease_reads]
        answered = await asyncio.gather(*(self._read_lease(n) for n in due))
        self._lease_reads.update({n: (started, ok) for n, ok in zip(due, answered, strict=True)})
        return {n for n in nodes if not self._lease_reads[n][1]}

    async def _read_lease(self, node: str) -> bool:
        cached = self.cache.leases.get(node)
        try:
            async with self._limit:
                body = await self.kube.get_lease(self.system_namespace, api.LEASE_PREFIX + node)
        except Exception as exc:  # noqa: BLE001 -- any failure: the API, not the node, failed to answer
            log.warning("lease not readable: node not declared lost", extra={"node": node, "error": str(exc)[:200]})
            if is_outage(exc):
                self.reachability.lost()
            return False
        fresh = lease_record(body) if body is not None else None
        self.cache.set_lease(node, fresh)
        if fresh is not None and fresh.alive(self.clock()):
            behind = (fresh.renew_time - cached.renew_time).total_seconds() if cached and cached.renew_time else None
            log.info(
                "lease renewed in the API, the watch is behind: node kept", extra={"node": node, "behind_s": behind}
            )
        return True
