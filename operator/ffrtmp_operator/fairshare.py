"""Fair sharing between namespaces and aging, within a queue (Kueue's admission fair sharing, simplified to
slots): among jobs of equal (aged) priority, the namespace that used the queue least goes first, so one
tenant's 200 queued jobs do not starve another tenant's 2; aging raises a waiting job's priority step by
step so low-priority jobs are not starved forever.

Pure: the cycle's job stream in, the admission order out, the clock injected as `now`. Usage is the slots a
namespace holds in the queue now plus its past admissions, halving every usageHalfLifeSeconds (Usage).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime

from .queues import QueueRecord
from .records import JobRecord

Share = Callable[[str, str], float]
"""share(queue, namespace): the namespace's usage of the queue now (read anew at every step of a cycle)."""


class Usage:
    """Past admissions per (queue, namespace), decayed exponentially; held by the operator's cache, so it
    starts empty after a restart (the slots held then still count: they come from the jobs)."""

    def __init__(self) -> None:
        self._admitted: dict[tuple[str, str], tuple[float, datetime]] = {}

    def admitted(self, queue: str, namespace: str, *, now: datetime, half_life: float) -> None:
        self._admitted[(queue, namespace)] = (self.of(queue, namespace, now=now, half_life=half_life) + 1.0, now)

    def of(self, queue: str, namespace: str, *, now: datetime, half_life: float) -> float:
        value, at = self._admitted.get((queue, namespace), (0.0, now))
        return value * 0.5 ** (max(0.0, (now - at).total_seconds()) / half_life)

    def forget_below(self, floor: float, *, now: datetime, half_life_of: Callable[[str], float]) -> None:
        """Drop entries that decayed to almost nothing (the dict does not grow with every namespace ever seen)."""
        for key in [k for k in self._admitted if self.of(*k, now=now, half_life=half_life_of(k[0])) < floor]:
            del self._admitted[key]


def aged_priority(job: JobRecord, base: int, queue: QueueRecord, now: datetime) -> int:
    """The priority value the queue orders `job` by: its PriorityClass value plus one aging step per
    aging interval it has waited since it was first queued."""
    if queue.aging_interval_seconds is None or job.queued_at is None:
        return base
    waited = max(0.0, (now - job.queued_at).total_seconds())
    return base + queue.aging_step * math.floor(waited / queue.aging_interval_seconds)


def arrange(
    ordered: Iterable[JobRecord],
    *,
    queues: Mapping[str, QueueRecord],
    priority_of: Callable[[JobRecord], int],
    share: Share,
    now: datetime,
) -> Iterator[JobRecord]:
    """The jobs in admission order. `ordered` is in order_key order, so each queue's jobs come together:
    those of a plain queue pass through lazily; a queue with fair sharing or aging is read whole when the
    cycle reaches it and handed out by aged priority, then least `share` of the namespace, then FIFO."""
    stream = iter(ordered)
    ahead: JobRecord | None = None
    while True:
        job = ahead if ahead is not None else next(stream, None)
        ahead = None
        if job is None:
            return
        queue = queues.get(job.queue)
        if queue is None or not queue.rearranged:
            yield job
            continue
        group = [job]
        for following in stream:
            if following.queue != job.queue:
                ahead = following
                break
            group.append(following)
        yield from _share_out(group, queue, priority_of=priority_of, share=share, now=now)


def _share_out(
    jobs: list[JobRecord],
    queue: QueueRecord,
    *,
    priority_of: Callable[[JobRecord], int],
    share: Share,
    now: datetime,
) -> Iterator[JobRecord]:
    by_priority: dict[int, list[JobRecord]] = {}
    for job in jobs:
        by_priority.setdefault(aged_priority(job, priority_of(job), queue, now), []).append(job)
    for priority in sorted(by_priority, reverse=True):
        level = sorted(by_priority[priority], key=_fifo)
        if not queue.fair_sharing:
            yield from level
            continue
        lanes: dict[str, deque[JobRecord]] = {}
        for job in level:
            lanes.setdefault(job.namespace, deque()).append(job)
        while lanes:
            # Least usage first; equal usage: the namespace whose next job waited longest.
            namespace = min(lanes, key=lambda ns: (share(queue.name, ns), _fifo(lanes[ns][0])))
            lane = lanes[namespace]
            yield lane.popleft()
            if not lane:
                del lanes[namespace]


def _fifo(job: JobRecord) -> tuple[datetime, str, str]:
    queued = job.queued_at.replace(tzinfo=None) if job.queued_at else datetime.max
    return (queued, job.namespace, job.name)


def held(jobs: Iterable[JobRecord], holds: Callable[[JobRecord], bool]) -> Counter[tuple[str, str]]:
    """Slots held now per (queue, namespace)."""
    return Counter((job.queue, job.namespace) for job in jobs if holds(job))
