"""Which running job a queued job that fits nowhere may preempt, by its queue's policy (Kueue's
preemption: reclaimWithinCohort and withinClusterQueue: LowerPriority, trimmed to slots).

Pure. A queue reclaims only from the queues its policy lists that are served after it (a higher order),
so a later queue never preempts an earlier one's jobs (live is never a victim of batch); within a queue
only a lower PriorityClass value gives way. Of the candidates the one with the least to lose goes: from
the latest queue, of the lowest priority, started last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from .queues import QueueRecord
from .records import JobRecord

_OLDEST = datetime.min


def may_preempt(
    preemptor: JobRecord,
    victim: JobRecord,
    *,
    queues: Mapping[str, QueueRecord],
    priority_of: Callable[[JobRecord], int],
) -> bool:
    own, theirs = queues.get(preemptor.queue), queues.get(victim.queue)
    if own is None or theirs is None or victim.key == preemptor.key:
        return False
    if victim.queue == preemptor.queue:
        return own.within_queue and priority_of(victim) < priority_of(preemptor)
    return victim.queue in own.reclaim_from and theirs.order > own.order


def pick(
    preemptor: JobRecord,
    candidates: Iterable[tuple[JobRecord, str]],
    *,
    queues: Mapping[str, QueueRecord],
    priority_of: Callable[[JobRecord], int],
) -> tuple[JobRecord, str] | None:
    """The (victim, node) to preempt for `preemptor` among (running job, node) `candidates` on nodes it
    could run on; None when its policy allows none of them."""
    best: tuple[tuple, JobRecord, str] | None = None
    for victim, node in candidates:
        if not may_preempt(preemptor, victim, queues=queues, priority_of=priority_of):
            continue
        # The run that took its node last has the least to lose (a paused one counts as oldest).
        started = victim.active_since.replace(tzinfo=None) if victim.active_since else _OLDEST
        key = (queues[victim.queue].order, -priority_of(victim), started, victim.namespace, victim.name)
        if best is None or key > best[0]:
            best = (key, victim, node)
    return None if best is None else (best[1], best[2])
