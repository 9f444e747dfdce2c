"""Scheduling policy: queue order, node eligibility, least-loaded placement and live preemption.

Pure: records and a per-cycle NodeSnapshot in, assignments out, the clock injected as `now`. One cycle
walks the queued jobs in order and admits each against the snapshot, taking the slot out of it so
later jobs see it as used; a job that fits nowhere is skipped (best-effort FIFO), never blocking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

import ffrtmp_api as api
from ffrtmp_api import Phase
from .lifecycle import holds_slot
from .plan import required_encoder
from .records import JobRecord, LeaseRecord, NodeRecord

OrderKey = tuple[int, int, datetime, str, str]
_NEVER = datetime.max.replace(tzinfo=None)


def priority_value(job: JobRecord, priority_values: Mapping[str, int]) -> int:
    """The PriorityClass value (admins may add classes); a class not (yet) seen counts as 0."""
    return priority_values.get(job.priority_class, api.PRIORITY_CLASS_VALUES.get(job.priority_class, 0))


def order_key(job: JobRecord, priority_values: Mapping[str, int]) -> OrderKey:
    """Queue (live > default > batch), then PriorityClass value (high first), then FIFO by queuedAt,
    then name: a total order, so every replica and every cycle agree."""
    queued = job.queued_at.replace(tzinfo=None) if job.queued_at else _NEVER
    return (api.QUEUE_RANK.get(job.queue, 9), -priority_value(job, priority_values), queued, job.namespace, job.name)


def schedulable(job: JobRecord, now: datetime) -> bool:
    """Queued, not paused/canceled/broken, and past its retry backoff."""
    return (
        job.phase == Phase.QUEUED
        and not (job.paused or job.canceled or job.broken)
        and (job.retry_after is None or job.retry_after <= now)
    )


@dataclass(slots=True)
class NodeState:
    """One node as this cycle sees it; `used` grows as the cycle admits jobs (the snapshot is a copy)."""

    name: str
    labels: Mapping[str, str]
    encoders: frozenset[str]
    slots: int
    used: int = 0
    running: list[JobRecord] = field(default_factory=list)

    @property
    def free(self) -> int:
        return self.slots - self.used


NodeSnapshot = dict[str, NodeState]


def node_snapshot(
    nodes: Iterable[NodeRecord],
    leases: Mapping[str, LeaseRecord],
    jobs: Iterable[JobRecord],
    *,
    now: datetime,
    default_slots: int,
) -> NodeSnapshot:
    """The nodes a job may go to: worker label, fresh heartbeat Lease, not cordoned; with their slots
    used by jobs that hold one (Assigned, Processing, or paused from those)."""
    snapshot: NodeSnapshot = {}
    for node in nodes:
        lease = leases.get(node.name)
        if node.labels.get(api.LABEL_WORKER) != "true" or node.unschedulable or lease is None or not lease.alive(now):
            continue
        slots = lease.slots if lease.slots is not None else default_slots
        snapshot[node.name] = NodeState(node.name, node.labels, node.encoders, max(0, slots))
    for job in jobs:
        state = snapshot.get(job.node or "")
        if state is not None and holds_slot(job.phase, job.paused_from):
            state.used += 1
            state.running.append(job)
    return snapshot


@lru_cache(maxsize=4096)
def _encoder(codec: str, accelerator: str, encoders: frozenset[str]) -> str | None:
    # plan.required_encoder reads only video.codec and hardware.accelerator; a constructed (unvalidated)
    # spec keeps this call cheap, and the cache makes it once per (job kind, node kind).
    spec = api.TranscodeJobSpec.model_construct(
        video=api.VideoSpec.model_construct(codec=codec),
        hardware=api.HardwareSpec.model_construct(accelerator=accelerator),
    )
    return required_encoder(spec, encoders)


def encoder_on(job: JobRecord, node: NodeState) -> str | None:
    """The encoder `job` would use on `node`, ignoring slots; None when the node does not qualify
    (missing proven encoder or a nodeSelector label)."""
    if any(node.labels.get(k) != v for k, v in job.node_selector):
        return None
    return _encoder(job.codec, job.accelerator, node.encoders)


class Assignment(NamedTuple):
    job: JobRecord
    node: str
    encoder: str


class Preemption(NamedTuple):
    victim: JobRecord
    node: str
    for_job: JobRecord


class Cycle(NamedTuple):
    assignments: list[Assignment]
    preemptions: list[Preemption]
    considered: int
    truncated: bool = False
    """Stopped at `limit` admissions: jobs after the last one were not looked at."""


def _least_loaded(candidates: list[tuple[NodeState, str]]) -> tuple[NodeState, str]:
    return min(candidates, key=lambda c: (c[0].used / max(1, c[0].slots), -c[0].free, c[0].name))


def _victim(
    job: JobRecord, snapshot: NodeSnapshot, priority_values: Mapping[str, int]
) -> tuple[JobRecord, NodeState, str] | None:
    """The lowest running batch job on a node `job` could use, by reverse queue order."""
    best = None
    for node in snapshot.values():
        encoder = encoder_on(job, node)
        if encoder is None:
            continue
        for victim in node.running:
            if victim.queue != "batch":
                continue
            key = order_key(victim, priority_values)
            if best is None or key > best[0]:
                best = (key, victim, node, encoder)
    return None if best is None else best[1:]


def schedule(
    ordered: Iterable[JobRecord],
    snapshot: NodeSnapshot,
    *,
    now: datetime,
    priority_values: Mapping[str, int],
    preemption: bool = True,
    limit: int | None = None,
) -> Cycle:
    """Admit jobs (given in order_key order) against `snapshot`, which this mutates.

    Stops once no slot is left and no live job could preempt, or after `limit` admissions (so one pass
    does not hold back everything that arrives while its writes are in flight). A live job that fits nowhere takes the
    slot of the lowest running batch job (when `preemption`); that job is requeued by the caller.
    """
    assignments: list[Assignment] = []
    preemptions: list[Preemption] = []
    open_nodes = [n for n in snapshot.values() if n.free > 0]
    victims = sum(1 for n in snapshot.values() for j in n.running if j.queue == "batch")
    # Shapes (encoder need + nodeSelector) that found no open node this cycle: nodes only fill up
    # during a cycle, so every later job of that shape would fail too (Kueue keeps the same memo).
    unfit: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    considered = 0
    for job in ordered:
        if limit is not None and len(assignments) >= limit:
            return Cycle(assignments, preemptions, considered, truncated=True)
        if not open_nodes and not (preemption and victims and job.queue == "live"):
            break  # queue order: only live jobs (they come first) could still preempt
        if not schedulable(job, now):
            continue
        considered += 1
        shape = (job.codec, job.accelerator, job.node_selector)
        candidates = [] if shape in unfit else [(n, e) for n in open_nodes if (e := encoder_on(job, n)) is not None]
        if candidates:
            node, encoder = _least_loaded(candidates)
            node.used += 1
            node.running.append(job)
            if node.free <= 0:
                open_nodes.remove(node)
            assignments.append(Assignment(job, node.name, encoder))
            continue
        unfit.add(shape)
        if preemption and victims and job.queue == "live":
            found = _victim(job, snapshot, priority_values)
            if found is not None:
                victim, node, encoder = found
                victims -= 1
                node.running.remove(victim)
                node.running.append(job)
                preemptions.append(Preemption(victim, node.name, job))
                assignments.append(Assignment(job, node.name, encoder))
    return Cycle(assignments, preemptions, considered)
