"""Writing TranscodeQueue status back: pending, admitted and running counts and the Active condition of
every queue object (never of a built-in one), at most once per interval and only when something changed,
so a busy queue costs one status write per few seconds, not one per job change.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from . import queues
from .apierrors import log_refusal
from .cache import Cache
from .clock import Clock
from .kube import Kube

log = logging.getLogger("ffrtmp.scheduler")
INTERVAL_SECONDS = 5.0
"""Least time between two rounds of queue status writes."""


class QueueStatusWriter:
    def __init__(self, cache: Cache, kube: Kube, *, clock: Clock, interval: float = INTERVAL_SECONDS) -> None:
        self.cache = cache
        self.kube = kube
        self.clock = clock
        self.interval = interval
        self._next = 0.0
        self._written: dict[str, dict[str, Any]] = {}
        """What this replica last wrote per queue (a new active replica writes each queue once)."""

    async def write_due(self) -> int:
        """One round, when its interval has passed; the number of queues written."""
        if not self.cache.queue_objects or time.monotonic() < self._next:
            return 0
        self._next = time.monotonic() + self.interval
        numbers = queues.counts(self.cache.jobs.values())
        now, written = self.clock(), 0
        for name, queue in list(self.cache.queue_objects.items()):
            patch = queues.status(queue, self._written.get(name, {}), numbers.get(name, (0, 0, 0)), now=now)
            if patch is None:
                continue
            try:
                await self.kube.patch_queue_status(name, patch)
            except ApiException as exc:  # counts are advisory: the next round tries again
                log_refusal(log, "queue status not written", exc, queue=name)
                continue
            self._written[name] = patch
            written += 1
        for gone in set(self._written) - set(self.cache.queue_objects):
            del self._written[gone]
        return written
