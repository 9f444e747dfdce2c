"""TranscodeQueues as the scheduler reads them: a compact QueueRecord per queue, parsed from the object or,
where none of that name exists, from the built-in live/default/batch (ffrtmp_api.BUILTIN_QUEUES); and the
status an existing queue gets back (pending/admitted/running counts and its Active condition).

Pure: raw bodies and job records in, records and status patches out, the clock injected as `now`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import ffrtmp_api as api
from ffrtmp_api import Phase, holds_slot
from pydantic import ValidationError

MISSING_ORDER = 10**9
"""Where jobs of a queue that does not exist sort: after every queue (they are not admitted anyway)."""


@dataclass(frozen=True, slots=True)
class QueueRecord:
    name: str
    order: int
    max_running: int | None = None
    paused: bool = False
    reclaim_from: frozenset[str] = frozenset()
    within_queue: bool = False
    """withinQueue: LowerPriority."""
    fair_sharing: bool = False
    half_life_seconds: float = 600.0
    aging_interval_seconds: float | None = None
    """None: no aging."""
    aging_step: int = 100
    builtin: bool = False
    """No object of this name: the built-in defaults (never written back)."""
    generation: int = 0
    broken: str | None = None
    """Why the object's spec could not be read: the queue admits nothing until it is fixed."""
    resource_version: str = field(default="", compare=False)

    @property
    def preempts(self) -> bool:
        return bool(self.reclaim_from) or self.within_queue

    @property
    def rearranged(self) -> bool:
        """Whether its order is not the heap's plain one (fairshare.arrange reads it whole)."""
        return self.fair_sharing or self.aging_interval_seconds is not None


def _record(name: str, spec: api.TranscodeQueueSpec, **more: Any) -> QueueRecord:
    return QueueRecord(
        name=name,
        order=spec.order,
        max_running=spec.maxRunning,
        paused=spec.paused,
        reclaim_from=frozenset(q for q in spec.preemption.reclaimFrom if q != name),
        within_queue=spec.preemption.withinQueue == "LowerPriority",
        fair_sharing=spec.fairSharing.enabled,
        half_life_seconds=float(spec.fairSharing.usageHalfLifeSeconds),
        aging_interval_seconds=float(spec.aging.intervalSeconds) if spec.aging.enabled else None,
        aging_step=spec.aging.step,
        **more,
    )


BUILTIN: dict[str, QueueRecord] = {name: _record(name, spec, builtin=True) for name, spec in api.BUILTIN_QUEUES.items()}


def queue_record(body: Mapping[str, Any]) -> QueueRecord:
    """The record of a TranscodeQueue object; one whose spec does not parse admits nothing (broken)."""
    meta = body.get("metadata") or {}
    name = meta.get("name", "")
    more = {"generation": int(meta.get("generation") or 0), "resource_version": meta.get("resourceVersion", "")}
    try:
        spec = api.TranscodeQueueSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        broken = f"invalid spec: {'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg')}"
        return QueueRecord(name=name, order=MISSING_ORDER, paused=True, broken=broken, **more)
    return _record(name, spec, **more)


def effective(objects: Mapping[str, QueueRecord]) -> dict[str, QueueRecord]:
    """The queues jobs may name: every object, plus each built-in no object of its name replaces."""
    return {**BUILTIN, **objects}


# ------------------------------------------------------------------------------------------ status


def counts(jobs: Iterable[Any]) -> dict[str, tuple[int, int, int]]:
    """pending (Queued), admitted (holding a node) and running (Processing) jobs per queue name."""
    tally: Counter[tuple[str, str]] = Counter()
    for job in jobs:
        if job.phase == Phase.QUEUED:
            tally[(job.queue, "pending")] += 1
        elif holds_slot(job.phase, job.paused_from):
            tally[(job.queue, "admitted")] += 1
            if job.phase == Phase.PROCESSING:
                tally[(job.queue, "running")] += 1
    names = {queue for queue, _ in tally}
    return {q: (tally[(q, "pending")], tally[(q, "admitted")], tally[(q, "running")]) for q in names}


def status(
    queue: QueueRecord, current: Mapping[str, Any], numbers: tuple[int, int, int], *, now: datetime
) -> dict[str, Any] | None:
    """The status patch for an existing queue, or None when `current` (its status as stored) says it all."""
    pending, admitted, running = numbers
    if queue.broken:
        active, reason, message = "False", "InvalidSpec", queue.broken
    elif queue.paused:
        active, reason, message = "False", "Paused", "spec.paused: nothing new is admitted; admitted jobs run on"
    else:
        active, reason, message = "True", "Admitting", "jobs are admitted in the queue's order"
    old = next((c for c in current.get("conditions") or [] if isinstance(c, Mapping) and c.get("type") == "Active"), {})
    condition = {
        "type": "Active",
        "status": active,
        "reason": reason,
        "message": message,
        "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == active else api.stamp_seconds(now),
        "observedGeneration": queue.generation,
    }
    patch = {
        "pending": pending,
        "admitted": admitted,
        "running": running,
        "conditions": [condition],
        "observedGeneration": queue.generation,
    }
    unchanged = all(current.get(k) == patch[k] for k in ("pending", "admitted", "running", "observedGeneration"))
    if unchanged and {k: old.get(k) for k in condition} == condition:
        return None
    return patch
