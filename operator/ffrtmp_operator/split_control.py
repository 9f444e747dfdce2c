"""The split job's controller: what a parent with spec.split does given its child jobs (pure `decide`), and
`SplitCoordinator`, which carries it out in each scheduling pass (driver.run_pass) before the ordinary
reconcile, which never sees a parent: a parent runs no pod and holds no slot, its children do the work.

A parent goes Pending -> Queued when its split child is made, Processing (through Assigned, in one write)
once a child holds a node, and ends Completed when its stitch child completes (its result copied), Failed when a
child fails for good (the child's reason) or when the whole job runs past spec.timeoutSeconds (Timeout, as a
Kubernetes Job's activeDeadlineSeconds), or Canceled. Pause, resume and cancel are carried to every running
child (spec.paused, spec.canceled); a failed, timed-out or canceled parent cancels its running children and
gets a cleanup child.
status.segments counts the slices and names their nodes; progress is the share of media time encoded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import ffrtmp_api as api
from ffrtmp_api import Phase, Reason

from . import split_children as build
from .lifecycle import active_seconds
from .lifecycle_writer import Step
from .records import JobRecord, job_record

if TYPE_CHECKING:
    from .cache import Cache
    from .clock import Clock
    from .kube import Kube
    from .lifecycle_writer import LifecycleWriter
    from .records import JobKey

log = logging.getLogger("ffrtmp.split")
P = Phase
_WORKERS = ("slice", "split", "stitch")  # children whose failure fails the parent (cleanup never does)


@dataclass(frozen=True)
class SplitDecision:
    steps: list[Step] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    create: list[dict[str, Any]] = field(default_factory=list)
    patch: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(child name, spec merge patch): paused or canceled following the parent."""


class Children(NamedTuple):
    split: JobRecord | None
    slices: dict[int, JobRecord]
    stitch: JobRecord | None
    cleanup: JobRecord | None

    @property
    def all(self) -> list[JobRecord]:
        return [c for c in (self.split, *self.slices.values(), self.stitch, self.cleanup) if c is not None]


def children_of(parent: JobRecord, jobs: Iterable[JobRecord]) -> Children:
    split = stitch = cleanup = None
    slices: dict[int, JobRecord] = {}
    for job in jobs:
        part = job.part
        if part is None or job.namespace != parent.namespace or part.parent != parent.name:
            continue
        if part.role == "slice":
            slices[part.index] = job
        elif part.role == "split":
            split = job
        elif part.role == "stitch":
            stitch = job
        elif part.role == "cleanup":
            cleanup = job
    return Children(split, slices, stitch, cleanup)


def _done(job: JobRecord | None) -> bool:
    return job is not None and job.phase == P.COMPLETED


def _over(job: JobRecord) -> bool:
    return job.phase in api.TERMINAL_PHASES


def _parent(job: JobRecord) -> build.Parent:
    return build.Parent(job.namespace, job.name, job.uid, job.spec())


def _follow(children: Children, *, paused: bool | None = None, canceled: bool = False) -> list[tuple[str, dict]]:
    """Spec patches making every running worker child follow the parent's pause or cancel."""
    patches = []
    for child in children.all:
        if _over(child) or (child.part and child.part.role == "cleanup"):
            continue
        if canceled and not child.canceled:
            patches.append((child.name, {"canceled": True}))
        elif paused is not None and child.paused != paused and not canceled:
            patches.append((child.name, {"paused": paused}))
    return patches


def _end(parent: JobRecord, children: Children, step: Step) -> SplitDecision:
    """Failed or Canceled: stop the children, and tidy the work folder once the split child has run."""
    cleanup = [build.cleanup_child(_parent(parent))] if children.split is not None and children.cleanup is None else []
    return SplitDecision([step], {}, cleanup, _follow(children, canceled=True))


def _start(parent: JobRecord, children: Children, now: datetime) -> SplitDecision:
    """Queued (new, or resumed after being created paused), with the split child made."""
    seconds = int((parent.spec().get("split") or {}).get("segmentSeconds") or 60)
    message = f"split into segments of {seconds} s: its split child cuts the input at keyframes"
    reason = Reason.CREATED.value if (parent.phase or P.PENDING) == P.PENDING else Reason.RESUMED.value
    create = [] if children.split is not None else [build.split_child(_parent(parent), segment_seconds=seconds)]
    return SplitDecision([Step(P.QUEUED, reason, message, now)], {}, create, _follow(children, paused=False))


def _started(children: Children) -> JobRecord | None:
    """The first child that holds (or held) a node: from then on the parent is Processing."""
    for child in children.all:
        if (
            child.part
            and child.part.role in _WORKERS
            and (
                child.phase in (P.ASSIGNED, P.PROCESSING, P.COMPLETED)
                or (child.phase == P.PAUSED and child.paused_from in (P.ASSIGNED, P.PROCESSING))
            )
        ):
            return child
    return None


def segments_status(children: Children, total: int | None) -> dict[str, Any]:
    nodes = sorted({c.node for c in children.slices.values() if c.node})
    done = sum(1 for c in children.slices.values() if _done(c))
    return {"total": total, "completed": done, "nodes": nodes}


def progress_percent(children: Children) -> float:
    """The share of the input's media time encoded: finished slices whole, running ones by their percent."""
    total = sum(c.part.seconds for c in children.slices.values() if c.part)
    if not total:
        return 0.0
    encoded = 0.0
    for child in children.slices.values():
        seconds = child.part.seconds if child.part else 0.0
        if _done(child):
            encoded += seconds
        elif child.progress is not None and child.progress.percent:
            encoded += seconds * min(100.0, child.progress.percent) / 100
    return round(100.0 * encoded / total, 1)


def decide(
    parent: JobRecord,
    children: Children,
    *,
    now: datetime,
    split_result: Mapping[str, Any] | None = None,
    stitch_result: Mapping[str, Any] | None = None,
) -> SplitDecision:
    """What the parent does next. `split_result`: status.result.split of the completed split child (read by
    the caller when this says it needs it: `needs_split_result`); `stitch_result`: the stitch child's result."""
    phase = parent.phase or P.PENDING
    if phase in api.TERMINAL_PHASES:
        follow = _follow(children, canceled=True)
        missing = phase != P.COMPLETED and children.split is not None and children.cleanup is None
        return SplitDecision([], {}, [build.cleanup_child(_parent(parent))] if missing else [], follow)
    if parent.broken:
        return _end(parent, children, Step(P.FAILED, Reason.INPUT_ERROR.value, parent.broken, now, "Warning"))
    if parent.canceled:
        return _end(parent, children, Step(P.CANCELED, Reason.CANCELED.value, "canceled by the user", now))
    if (timeout := _timed_out(parent, now)) is not None:
        return _end(parent, children, timeout)
    for child in children.all:
        if child.part and child.part.role in _WORKERS and child.phase in (P.FAILED, P.CANCELED):
            status = child.status()
            reason = status.get("reason") or Reason.POD_ERROR.value
            what = "was canceled" if child.phase == P.CANCELED else f"failed: {status.get('message') or reason}"
            message = f"{child.part.role} job {child.name} {what}"
            return _end(parent, children, Step(P.FAILED, reason, message[:1024], now, "Warning"))
    if phase == P.PENDING or (phase == P.PAUSED and parent.paused_from == P.QUEUED):
        if parent.paused:
            return (
                SplitDecision([Step(P.PAUSED, Reason.PAUSED.value, "created paused", now)])
                if phase == P.PENDING
                else SplitDecision()
            )
        return _start(parent, children, now)
    if phase == P.PAUSED:
        if parent.paused:
            return SplitDecision(patch=_follow(children, paused=True))
        return SplitDecision(
            [Step(P.PROCESSING, Reason.RESUMED.value, "resumed", now)], {}, [], _follow(children, paused=False)
        )
    # Queued (until a child holds a node) or Processing.
    if parent.paused:
        return SplitDecision(
            [Step(P.PAUSED, Reason.PAUSED.value, "paused: its running child jobs are paused", now)],
            {},
            [],
            _follow(children, paused=True),
        )
    create: list[dict[str, Any]] = []
    steps: list[Step] = []
    if phase == P.QUEUED and (first := _started(children)) is not None:
        message = f"its child {first.name} runs" + (f" on {first.node}" if first.node else "")
        steps = [Step(P.ASSIGNED, "ChildStarted", message, now), Step(P.PROCESSING, "ChildStarted", message, now)]
    total = (parent.status().get("segments") or {}).get("total")
    if children.split is None:
        create.append(build.split_child(_parent(parent), segment_seconds=int(parent.spec()["split"]["segmentSeconds"])))
    elif _done(children.split) and not children.slices and split_result is not None:
        seconds = [float(s) for s in split_result.get("segments") or []]
        total = len(seconds)
        starts = [sum(seconds[:i]) for i in range(total)]  # a ladder's slices offset their timestamps by these
        create += [
            build.slice_child(_parent(parent), index=i, seconds=s, start=starts[i]) for i, s in enumerate(seconds)
        ]
    if total and len(children.slices) == total and all(_done(c) for c in children.slices.values()):
        if children.stitch is None:
            audio = bool((split_result or {}).get("audio")) if split_result is not None else _audio(children)
            seconds_total = sum(c.part.seconds for c in children.slices.values() if c.part)
            create.append(build.stitch_child(_parent(parent), segments=total, audio=audio, seconds=seconds_total))
        elif _done(children.stitch) and stitch_result is not None:
            status = {
                "segments": segments_status(children, total),
                "result": dict(stitch_result),
                "progress": {"percent": 100.0},
            }
            done = Step(P.COMPLETED, Reason.SUCCEEDED.value, f"{total} segments stitched into the output", now)
            return SplitDecision([*steps, done], status)
    status = {"segments": segments_status(children, total), "progress": {"percent": progress_percent(children)}}
    return SplitDecision(steps, status, create, _follow(children, paused=False))


def _timed_out(parent: JobRecord, now: datetime) -> Step | None:
    """spec.timeoutSeconds bounds the whole split job, as activeDeadlineSeconds bounds a Kubernetes Job: the
    parent's clock runs from its first child holding a node to the stitch's end (time paused not counted),
    whatever each child's own clock says. Each child inheriting the timeout does not bound the sum."""
    limit = parent.timeout_seconds
    if not limit or (parent.phase or P.PENDING) not in api.RUNNING_PHASES:
        return None
    if active_seconds(since=parent.active_since, seconds=parent.active_seconds, now=now) <= limit:
        return None
    message = f"the split job ran longer than spec.timeoutSeconds={limit} (time paused not counted)"
    return Step(P.FAILED, Reason.TIMEOUT.value, message, now, "Warning")


def _audio(children: Children) -> bool:
    """Whether the split child wrote an audio track, when its result was not read this time: its spec asked."""
    split = children.split
    return split is not None and ((split.spec().get("audio") or {}).get("codec") or "aac") != "none"


def needs_split_result(parent: JobRecord, children: Children) -> bool:
    phase = parent.phase or P.PENDING
    if phase in api.TERMINAL_PHASES or parent.paused or parent.canceled:
        return False
    slices_done = bool(children.slices) and all(_done(c) for c in children.slices.values())
    return _done(children.split) and (not children.slices or (slices_done and children.stitch is None))


def needs_stitch_result(parent: JobRecord, children: Children) -> bool:
    return (parent.phase or P.PENDING) not in api.TERMINAL_PHASES and _done(children.stitch)


# --------------------------------------------------------------------------------------- the shell


class SplitCoordinator:
    """Runs `decide` for the split parents a pass looks at (and the parents of changed children), through the
    lifecycle writer; creates and patches children. Returns the keys the ordinary reconcile should take."""

    def __init__(self, cache: Cache, kube: Kube, writer: LifecycleWriter, *, clock: Clock) -> None:
        self.cache = cache
        self.kube = kube
        self.writer = writer
        self.clock = clock

    async def coordinate(self, keys: list[JobKey]) -> list[JobKey]:
        parents: dict[JobKey, None] = {}
        rest = []
        for key in keys:
            job = self.cache.jobs.get(key)
            if job is not None and job.split:
                parents[key] = None
                continue
            rest.append(key)
            if job is not None and job.part is not None:
                parents[(job.namespace, job.part.parent)] = None  # a child changed: its parent looks again
        for key in parents:
            parent = self.cache.jobs.get(key)
            if parent is None or not parent.split or key[0] in self.cache.terminating:
                continue
            if parent.preset and parent.resolved_preset is None:
                continue  # its settings are not known yet (presets.py resolves first)
            try:
                await self._one(parent)
            except Exception:  # one parent's trouble must not stop the pass
                log.exception("split job not coordinated", extra={"job": f"{key[0]}/{key[1]}"})
        return rest

    async def _one(self, parent: JobRecord) -> None:
        children = children_of(parent, self.cache.jobs.values())
        split_result = stitch_result = None
        if needs_split_result(parent, children) and children.split is not None:
            split_result = ((await self._result(children.split)) or {}).get("split") or {}
        if needs_stitch_result(parent, children) and children.stitch is not None:
            stitch_result = await self._result(children.stitch)
        decision = decide(parent, children, now=self.clock(), split_result=split_result, stitch_result=stitch_result)
        for manifest in decision.create:
            body = await self.kube.create_job(manifest)
            if body is not None:  # known at once, so the next pass does not create it again
                self.cache.upsert_job(job_record(body))
            log.info(
                "split child created",
                extra={"job": f"{parent.namespace}/{parent.name}", "child": manifest["metadata"]["name"]},
            )
        for name, patch in decision.patch:
            await self.kube.patch_job_spec(parent.namespace, name, patch)
        status = {k: v for k, v in decision.status.items() if not _unchanged(parent, k, v)}
        if decision.steps:
            await self.writer.transitions(parent, decision.steps, extra=status)
        elif status:
            await self.writer.write_status(parent, status)

    async def _result(self, child: JobRecord) -> dict[str, Any] | None:
        body = await self.kube.get_job(child.namespace, child.name)
        return ((body or {}).get("status") or {}).get("result")


def _unchanged(parent: JobRecord, key: str, value: Any) -> bool:
    """Whether a status field already says `value` (no write for it): progress by its rounded percent."""
    if key == "progress":
        return parent.progress is not None and parent.progress.percent == value.get("percent")
    if key == "segments":
        return parent.status().get("segments") == value
    return False
