"""Scheduling policy: queue order, node eligibility, least-loaded placement, queue caps and pauses, and
preemption by each queue's policy (victims.py picks the job).

Pure: records and a per-cycle NodeSnapshot in, assignments out, the clock injected as `now`. One cycle
walks the queued jobs in order (fairshare.arrange) and admits each against the snapshot, taking the slot
out of it so later jobs see it as used; a job that fits nowhere is skipped (Kueue's BestEffortFIFO),
never blocking, and the cycle says why it waits. A slot still held by a pod that is going away (a
preempted or canceled job's) is used until the pod is gone: a preemptor is admitted only after that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache, partial
from typing import Any, NamedTuple

import ffrtmp_api as api
from ffrtmp_api import Phase

from . import victims
from .lifecycle import holds_slot
from .plan import required_encoder
from .presets import needs_resolution
from .queues import BUILTIN, MISSING_ORDER, QueueRecord
from .records import JobRecord, LeaseRecord, NodeRecord, PodRecord

OrderKey = tuple[int, str, int, datetime, str, str]
_NEVER = datetime.max.replace(tzinfo=None)


def priority_value(job: JobRecord, priority_values: Mapping[str, int]) -> int:
    """The PriorityClass value (admins may add classes); a class not (yet) seen counts as 0."""
    return priority_values.get(job.priority_class, api.PRIORITY_CLASS_VALUES.get(job.priority_class, 0))


def order_key(
    job: JobRecord, priority_values: Mapping[str, int], queues: Mapping[str, QueueRecord] = BUILTIN
) -> OrderKey:
    """The queue's order (the built-in live > default > batch), then PriorityClass value (high first),
    then FIFO by queuedAt, then name: a total order, so every replica and every cycle agree. (A queue
    with fair sharing or aging reorders its own jobs in the cycle: fairshare.arrange.)"""
    queued = job.queued_at.replace(tzinfo=None) if job.queued_at else _NEVER
    queue = queues.get(job.queue)
    rank = queue.order if queue is not None else MISSING_ORDER
    return (rank, job.queue, -priority_value(job, priority_values), queued, job.namespace, job.name)


def schedulable(job: JobRecord, now: datetime) -> bool:
    """Queued, not paused/canceled/broken/being deleted, past its retry backoff, its preset (if any) resolved."""
    return (
        job.phase == Phase.QUEUED
        and not (job.paused or job.canceled or job.broken or job.deleting)
        and (job.retry_after is None or job.retry_after <= now)
        and not needs_resolution(job)
        and not job.split  # a split job runs no pod: its child jobs are placed (split_control.py)
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
    releasing: int = 0
    """Slots used by pods going away whose job no longer holds them (preempted, canceled, requeued)."""
    claimed: int = 0
    """Of those, how many a preemptor of this cycle waits for."""

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
    pods: Iterable[PodRecord] = (),
) -> NodeSnapshot:
    """The nodes a job may go to: worker label, fresh heartbeat Lease, not cordoned; with their slots
    used by jobs that hold one (Assigned, Processing, or paused from those), and by any other running
    pod on them (`pods`): a preempted or requeued job's encoder may still be stopping, and two encoders
    on one slot is what preemption must never cause."""
    snapshot: NodeSnapshot = {}
    for node in nodes:
        lease = leases.get(node.name)
        if node.labels.get(api.LABEL_WORKER) != "true" or node.unschedulable or lease is None or not lease.alive(now):
            continue
        slots = lease.slots if lease.slots is not None else default_slots
        snapshot[node.name] = NodeState(node.name, node.labels, node.encoders, max(0, slots))
    holders: set[tuple[str, str]] = set()
    for job in jobs:
        state = snapshot.get(job.node or "")
        if state is not None and holds_slot(job.phase, job.paused_from):
            state.used += 1
            state.running.append(job)
            holders.add((job.namespace, job.pod or ""))
    for pod in pods:
        state = snapshot.get(pod.node)
        # Pending: nothing of it runs yet (a pod that never started must not hold a slot it has not used).
        if state is not None and pod.phase in ("Running", "Unknown") and (pod.namespace, pod.name) not in holders:
            state.used += 1
            state.releasing += 1
    return snapshot


@lru_cache(maxsize=4096)
def _encoder(codec: str, accelerator: str, encoders: frozenset[str]) -> str | None:
    # plan.required_encoder reads only video.codec and hardware.accelerator; a constructed (unvalidated)
    # spec keeps this call cheap, and the cache makes it once per (job kind, node kind).
    # (mypy: model_construct with only the fields read here, the codec/accelerator as stored strings, and
    # model_construct typed as returning the model base)
    spec = api.TranscodeJobSpec.model_construct(  # type: ignore[call-arg]
        video=api.VideoSpec.model_construct(codec=codec),  # type: ignore[arg-type, call-arg]
        hardware=api.HardwareSpec.model_construct(accelerator=accelerator),  # type: ignore[arg-type, call-arg]
    )
    return required_encoder(spec, encoders)  # type: ignore[arg-type]


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


class Waiting(NamedTuple):
    """Why a job the cycle looked at stays queued (an api.Reason value and a message for users)."""

    job: JobRecord
    reason: str
    message: str


class Cycle(NamedTuple):
    assignments: list[Assignment]
    preemptions: list[Preemption]
    considered: int
    truncated: bool = False
    """Stopped at `limit` admissions: jobs after the last one were not looked at."""
    waiting: Sequence[Waiting] = ()
    """Jobs looked at and left queued, with the reason; bounded (WAITING_NOTES after the slots ran out)."""


# Once every slot is taken the cycle stops; it still names the reason for this many more jobs, so the
# heads of the queue say why they wait without a cycle reading (and the operator writing) every job.
WAITING_NOTES = 32


def _needs(job: JobRecord) -> str:
    """What a node must offer `job`, in words (for NoMatchingNode)."""
    codecs = api.ENCODERS.get(job.codec, {})
    if job.codec == "copy":
        need = "a worker"
    elif job.accelerator in ("none", "auto"):
        need = f"the {codecs.get('none', job.codec)} encoder"
    else:
        need = f"a proven {codecs.get(job.accelerator, job.accelerator + ' ' + job.codec)} encoder"
    if job.node_selector:
        need += " and the labels " + ",".join(f"{k}={v}" for k, v in job.node_selector)
    return need


def no_room(job: JobRecord, snapshot: NodeSnapshot) -> tuple[str, str]:
    """Why `job` found no open node: every node that could run it is full, or none could."""
    fitting = [n for n in snapshot.values() if encoder_on(job, n) is not None]
    if fitting:
        slots = sum(n.slots for n in fitting)
        return (
            api.Reason.NO_FREE_SLOT.value,
            f"all {slots} slot(s) of the {len(fitting)} node(s) that can run it are in use",
        )
    return (api.Reason.NO_MATCHING_NODE.value, f"no ready, uncordoned worker node has {_needs(job)}")


def _least_loaded(candidates: list[tuple[NodeState, str]]) -> tuple[NodeState, str]:
    return min(candidates, key=lambda c: (c[0].used / max(1, c[0].slots), -c[0].free, c[0].name))


def schedule(
    ordered: Iterable[JobRecord],
    snapshot: NodeSnapshot,
    *,
    now: datetime,
    priority_values: Mapping[str, int],
    queues: Mapping[str, QueueRecord] = BUILTIN,
    held: Counter[tuple[str, str]] | None = None,
    preemption: bool = True,
    limit: int | None = None,
) -> Cycle:
    """Admit jobs (in admission order: order_key, then fairshare.arrange) against `snapshot`, which this
    mutates, as it does `held` (slots held per (queue, namespace), for caps and fair sharing; by default
    counted from the snapshot).

    A job is not admitted while its queue does not exist, is paused or at its maxRunning, or while its
    PriorityClass does not exist (it is not silently ranked 0). A job that fits nowhere may preempt a
    running job as its queue's policy allows (victims.py); it is not admitted in this cycle but once the
    victim's pod is gone (the snapshot counts that slot as used until then), and meanwhile it claims that
    slot, so later cycles do not preempt again for it. Stops once no slot is left and no later job could
    preempt (after naming why a few more jobs wait), or after `limit` admissions (so one pass does not
    hold back everything that arrives while its writes are in flight).
    """
    if held is None:
        held = Counter((j.queue, j.namespace) for n in snapshot.values() for j in n.running)
    admitted: Counter[str] = Counter()
    for (queue_name, _), count in held.items():
        admitted[queue_name] += count
    priority_of = partial(priority_value, priority_values=priority_values)
    assignments: list[Assignment] = []
    preemptions: list[Preemption] = []
    waiting: list[Waiting] = []
    open_nodes = [n for n in snapshot.values() if n.free > 0]
    running = any(n.running or n.releasing for n in snapshot.values())
    last_preemptor = max((q.order for q in queues.values() if q.preempts), default=-1) if preemption and running else -1
    taken: set[tuple[str, str]] = set()  # victims of this cycle
    # Shapes (encoder need + nodeSelector) that found no open node this cycle, with the reason: nodes only
    # fill up during a cycle, so every later job of that shape would fail too (Kueue keeps the same memo).
    unfit: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[str, str]] = {}
    hopeless: set[tuple[str, int, tuple[str, str, tuple[tuple[str, str], ...]]]] = set()
    considered = 0
    notes_left = WAITING_NOTES
    for job in ordered:
        if limit is not None and len(assignments) >= limit:
            return Cycle(assignments, preemptions, considered, truncated=True, waiting=waiting)
        queue = queues.get(job.queue)
        full = not open_nodes
        if full and notes_left <= 0 and (queue.order if queue else MISSING_ORDER) > last_preemptor:
            break  # in queue order: nothing after this could preempt either
        if not schedulable(job, now):
            continue
        blocked = _blocked(job, queue, priority_values, admitted)
        if full and not (blocked is None and preemption and queue is not None and queue.preempts):
            if blocked is not None or notes_left > 0:  # queue-wide reasons are always told (changes only are written)
                notes_left -= blocked is None
                waiting.append(Waiting(job, *(blocked or _no_room(job, snapshot, unfit))))
            continue
        considered += 1
        if blocked is not None:
            waiting.append(Waiting(job, *blocked))
            continue
        shape = (job.codec, job.accelerator, job.node_selector)
        candidates = [] if shape in unfit else [(n, e) for n in open_nodes if (e := encoder_on(job, n)) is not None]
        if candidates:
            node, encoder = _least_loaded(candidates)
            node.used += 1
            node.running.append(job)
            if node.free <= 0:
                open_nodes.remove(node)
            held[(job.queue, job.namespace)] += 1
            admitted[job.queue] += 1
            assignments.append(Assignment(job, node.name, encoder))
            continue
        reason = _no_room(job, snapshot, unfit)
        kind = (job.queue, priority_of(job), shape)
        if preemption and queue is not None and queue.preempts and kind not in hopeless:
            preempting = _preempt(job, snapshot, queues, priority_of, taken, preemptions)
            if preempting is None:
                hopeless.add(kind)  # victims only get fewer: a later job of this kind finds none either
            reason = preempting or reason
        waiting.append(Waiting(job, *reason))
    return Cycle(assignments, preemptions, considered, waiting=waiting)


def _preempt(
    job: JobRecord,
    snapshot: NodeSnapshot,
    queues: Mapping[str, QueueRecord],
    priority_of: Any,
    taken: set[tuple[str, str]],
    preemptions: list[Preemption],
) -> tuple[str, str] | None:
    """Preempt for `job` (fits nowhere) or wait for a slot being released; the reason it waits, or None
    when its queue's policy allows no victim on a node it could use."""
    nodes = [n for n in snapshot.values() if encoder_on(job, n) is not None]
    for node in nodes:
        if node.releasing > node.claimed:  # a stopping pod's slot comes free soon: wait for it, preempt nobody
            node.claimed += 1
            return (
                api.Reason.PREEMPTING.value,
                f"waits for a slot on {node.name} that a stopping job's pod still holds",
            )
    found = victims.pick(
        job,
        ((v, n.name) for n in nodes for v in n.running if v.key not in taken),
        queues=queues,
        priority_of=priority_of,
    )
    if found is None:
        return None
    victim, name = found
    node = snapshot[name]
    taken.add(victim.key)
    node.running.remove(victim)
    node.releasing += 1
    node.claimed += 1
    preemptions.append(Preemption(victim, name, job))
    return (
        api.Reason.PREEMPTING.value,
        f"preempted {victim.namespace}/{victim.name} on {name}; admitted once its slot is released",
    )


def _blocked(
    job: JobRecord, queue: QueueRecord | None, priority_values: Mapping[str, int], admitted: Counter[str]
) -> tuple[str, str] | None:
    """Why `job` may not be admitted whatever the nodes offer: its queue or its PriorityClass."""
    if queue is None:
        return (
            api.Reason.QUEUE_NOT_FOUND.value,
            f"TranscodeQueue {job.queue} does not exist; the job waits until it does",
        )
    if queue.broken:
        return (api.Reason.QUEUE_PAUSED.value, f"TranscodeQueue {job.queue} admits nothing: {queue.broken}")
    if queue.paused:
        return (
            api.Reason.QUEUE_PAUSED.value,
            f"TranscodeQueue {job.queue} is paused: nothing new is admitted until it is resumed",
        )
    if queue.max_running is not None and admitted[job.queue] >= queue.max_running:
        return (
            api.Reason.QUEUE_AT_CAPACITY.value,
            f"TranscodeQueue {job.queue} has {queue.max_running} job(s) holding a node, its maxRunning",
        )
    if job.priority_class not in priority_values:
        return (
            api.Reason.PRIORITY_CLASS_NOT_FOUND.value,
            f"PriorityClass {job.priority_class} does not exist; the job waits until it does",
        )
    return None


def _no_room(job: JobRecord, snapshot: NodeSnapshot, unfit: dict) -> tuple[str, str]:
    shape = (job.codec, job.accelerator, job.node_selector)
    if shape not in unfit:
        unfit[shape] = no_room(job, snapshot)
    return unfit[shape]
