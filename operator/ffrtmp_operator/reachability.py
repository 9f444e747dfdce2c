"""Whether the API server answers, and since when. A Lease that expired while heartbeats could not reach
the API says nothing about the node: agents get one full lease period of reachability to renew before
their jobs count as NodeLost (nodeloss.py asks `heartbeats_could_arrive`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from .clock import Clock
from .kube import Kube

log = logging.getLogger("ffrtmp.scheduler")


class Reachability:
    def __init__(self, kube: Kube, *, system_namespace: str, clock: Clock) -> None:
        self.kube = kube
        self.system_namespace = system_namespace
        self.clock = clock
        self.since: datetime | None = None
        """Since when the API server has answered without a break (None: it does not answer now)."""

    def reached(self) -> None:
        """The API answered a full resync: reachable from now."""
        self.since = self.clock()

    def lost(self) -> None:
        """A call found the API not answering."""
        if self.since is not None:
            log.warning("API server unreachable: no node is declared lost until it answers again")
        self.since = None

    async def observe(self) -> bool:
        """Probe the API once (each tick). True when it answers again after a break: the caller resyncs,
        since the watches reconnect on their own but may resume late."""
        if not await self.kube.reachable(system_namespace=self.system_namespace):
            self.lost()
            return False
        if self.since is None:
            self.since = self.clock()
            log.info("API server reachable again: resync")
            return True
        return False

    def heartbeats_could_arrive(self, now: datetime, lease_seconds: int) -> bool:
        """True once the API has answered for a whole lease period, so an expired Lease means the node."""
        since = self.since
        return since is not None and (now - since).total_seconds() >= lease_seconds
