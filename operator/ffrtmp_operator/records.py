"""Compact in-memory records of the objects the operator watches, parsed from raw API bodies.

Pure. A JobRecord keeps only what scheduling, reconciling and the scrape-time metrics read, plus the spec
and the lifecycle part of the status as compact JSON bytes (result and the rest of progress are dropped):
10,000 jobs fit in about 10 MB. A job whose stored data cannot be parsed gets `broken` set instead of
raising, so one bad object fails itself and never the operator. (About 420 lines: every record kind in one
place, since their parsers share those rules.)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import ffrtmp_api as api
from ffrtmp_api import Phase
from pydantic import ValidationError

from .lifecycle import parse_time
from .presets import effective_spec, resolved_identity

JobKey = tuple[str, str]  # (namespace, name)
_STATUS_DROPPED = ("progress", "result", "resolvedPreset")  # a preset copy: only its identity is kept
# Phases in which a job may hold a slot: only then is its progress a metric (ffrtmp_job_progress_ratio ...).
_PROGRESS_PHASES = frozenset({Phase.ASSIGNED, Phase.PROCESSING, Phase.PAUSED})


class Progress(NamedTuple):
    """The part of status.progress the metrics export (None where the runner has not said)."""

    percent: float | None
    fps: float | None
    speed: float | None


@dataclass(slots=True)
class JobRecord:
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int
    observed_generation: int | None
    created: str  # metadata.creationTimestamp (arrival order of jobs not yet queued)
    phase: Phase | None
    paused_from: Phase | None
    queue: str
    priority: str  # spec.priority (low | medium | high), the metrics' label
    priority_class: str
    queued_at: datetime | None
    retry_after: datetime | None
    started_at: datetime | None
    node: str | None
    pod: str | None
    attempts: int
    encoder: str | None
    failures: int
    """Failed runs counted against maxRetries (status.failures); disruptions are not among them."""
    disruptions: int
    failed_creates: int
    active_since: datetime | None
    active_seconds: float
    """With active_since: how long the current run has held a node (lifecycle.active_seconds)."""
    paused: bool
    canceled: bool
    max_retries: int
    timeout_seconds: int | None
    codec: str
    accelerator: str
    node_selector: tuple[tuple[str, str], ...]
    spec_json: bytes
    status_json: bytes
    broken: str | None = None
    """Why this object's data is unusable (the operator fails the job with this message)."""
    deleting: bool = False
    """metadata.deletionTimestamp is set (a finalizer holds it): never admitted, no new pod."""
    has_result: bool = False
    """status.result is set: the runner reported what it produced (a Completed job always has one)."""
    scheduled: tuple[str, str] | None = None
    """(reason, message) of the Scheduled condition while it is False: why a queued job waits."""
    progress: Progress | None = None
    preset: str | None = None
    """spec.preset: the TranscodePreset the job takes settings from (presets.py)."""
    resolved_preset: tuple[str, str, int] | None = None
    """(namespace, name, generation) of status.resolvedPreset; the spec fields above are the merged ones."""
    split: bool = False
    """spec.split: a parent that runs no pod; its child jobs do the work (split_control.py)."""
    part: Part | None = None
    """spec.part: which part of a split job this child job is."""
    """Kept only while the job may hold a slot; one shared None for the (many) others."""

    @property
    def key(self) -> JobKey:
        return (self.namespace, self.name)

    @property
    def arrival(self) -> tuple[str, int, str]:
        """Creation order: creationTimestamp has whole seconds only, so the resourceVersion (an etcd
        revision, increasing) breaks ties for jobs not yet written since their creation."""
        try:
            revision = int(self.resource_version)
        except ValueError:
            revision = 0
        return (self.created, revision, self.name)

    def same_state(self, other: JobRecord) -> bool:
        """Equal but for resourceVersion and progress: e.g. the runner only wrote progress or result, which
        the operator neither schedules nor reconciles on (it still needs the new version for its writes)."""
        return all(getattr(self, f) == getattr(other, f) for f in self.__slots__ if f not in _UNSTATEFUL)

    def status(self) -> dict[str, Any]:
        return json.loads(self.status_json)

    def spec(self) -> dict[str, Any]:
        return json.loads(self.spec_json)


_UNSTATEFUL = frozenset({"resource_version", "progress"})


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _phase(value: Any) -> Phase | None:
    return Phase(value) if value else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _progress(raw: Any, phase: Phase | None) -> Progress | None:
    if phase not in _PROGRESS_PHASES or not isinstance(raw, Mapping):
        return None
    return Progress(_number(raw.get("percent")), _number(raw.get("fps")), _number(raw.get("speed")))


class _SpecFields(NamedTuple):
    queue: str
    priority: str
    priority_class: str
    paused: bool
    canceled: bool
    max_retries: int
    timeout_seconds: int | None
    codec: str
    accelerator: str
    node_selector: tuple[tuple[str, str], ...]
    spec_json: bytes
    broken: str | None


def _spec_fields(raw_spec: Mapping[str, Any]) -> _SpecFields:
    try:
        spec = api.TranscodeJobSpec.model_validate(raw_spec)
    except ValidationError as exc:
        error = exc.errors()[0]
        broken = f"invalid spec: {'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg')}"
        return _SpecFields(
            "default", "medium", "", False, False, 0, None, "h264", "none", (), _compact(raw_spec), broken
        )
    return _SpecFields(
        queue=spec.queue,
        priority=sys.intern(spec.priority),  # one shared string, not one per job
        priority_class=spec.priorityClassName or api.PRIORITY_CLASSES[spec.priority],
        paused=spec.paused,
        canceled=spec.canceled,
        max_retries=spec.maxRetries,
        timeout_seconds=spec.timeoutSeconds,
        codec=spec.video.codec,
        accelerator=spec.hardware.accelerator,
        node_selector=tuple(sorted((spec.nodeSelector or {}).items())),
        spec_json=_compact(raw_spec),
        broken=None,
    )


def job_record(body: Mapping[str, Any], *, previous: JobRecord | None = None) -> JobRecord:
    """The record of a job as the API returned it. With `previous` (the cached record of the same
    object) the spec is parsed again only when metadata.generation moved: most events of a job are
    status writes, and validating the spec is the costly part."""
    meta = body.get("metadata") or {}
    raw_status = body.get("status") or {}
    if not isinstance(raw_status, Mapping):
        raw_status = {}
    status = {k: v for k, v in raw_status.items() if k not in _STATUS_DROPPED}
    generation = int(meta.get("generation") or 0)
    uid = meta.get("uid", "")
    resolved = raw_status.get("resolvedPreset")
    if (
        previous is not None
        and previous.uid == uid
        and previous.generation == generation
        and generation
        and previous.resolved_preset == resolved_identity(resolved)
    ):
        spec = _SpecFields(*(getattr(previous, f) for f in _SpecFields._fields))
        spec = spec._replace(broken=None if (previous.broken or "").startswith("invalid status") else previous.broken)
    else:
        spec = _spec_fields(effective_spec(body.get("spec") or {}, resolved))  # the preset's fields under the job's
    broken = spec.broken
    try:
        phase = _phase(status.get("phase"))
        paused_from = _phase(status.get("pausedFrom"))
        attempts = int(status.get("attempts") or 0)
        counts = tuple(int(status.get(k) or 0) for k in ("failures", "disruptions", "failedCreates"))
        active_seconds = float(status.get("activeSeconds") or 0.0)
    except (TypeError, ValueError) as exc:
        broken = broken or f"invalid status: {exc}"
        phase, paused_from, attempts, counts, active_seconds = Phase.PENDING, None, 0, (0, 0, 0), 0.0
    return JobRecord(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=uid,
        resource_version=meta.get("resourceVersion", ""),
        generation=generation,
        observed_generation=status.get("observedGeneration"),
        created=meta.get("creationTimestamp") or "",
        phase=phase,
        paused_from=paused_from,
        queue=spec.queue,
        priority=spec.priority,
        priority_class=spec.priority_class,
        queued_at=parse_time(status.get("queuedAt")),
        retry_after=parse_time(status.get("retryAfter")),
        started_at=parse_time(status.get("startedAt")),
        node=status.get("node") or None,
        pod=status.get("pod") or None,
        attempts=attempts,
        encoder=status.get("encoder") or None,
        failures=counts[0],
        disruptions=counts[1],
        failed_creates=counts[2],
        active_since=parse_time(status.get("activeSince")),
        active_seconds=active_seconds,
        paused=spec.paused,
        canceled=spec.canceled,
        max_retries=spec.max_retries,
        timeout_seconds=spec.timeout_seconds,
        codec=spec.codec,
        accelerator=spec.accelerator,
        node_selector=spec.node_selector,
        spec_json=spec.spec_json,
        status_json=_compact(status),
        broken=broken,
        progress=_progress(raw_status.get("progress"), phase),
        deleting=bool(meta.get("deletionTimestamp")),
        has_result=bool(raw_status.get("result")),
        scheduled=_waiting(status.get("conditions")),
        preset=(body.get("spec") or {}).get("preset") if isinstance(body.get("spec"), Mapping) else None,
        resolved_preset=resolved_identity(resolved),
        split=isinstance(body.get("spec"), Mapping) and bool(body["spec"].get("split")),
        part=_part(body.get("spec")),
    )


class Part(NamedTuple):
    parent: str
    role: str
    index: int  # type: ignore[assignment]  # shadows tuple.index(), which nothing here calls
    seconds: float


def _part(spec: Any) -> Part | None:
    part = spec.get("part") if isinstance(spec, Mapping) else None
    if not isinstance(part, Mapping):
        return None
    try:
        return Part(
            str(part.get("parent", "")),
            str(part.get("role", "")),
            int(part.get("index") or 0),
            float(part.get("seconds") or 0.0),
        )
    except (TypeError, ValueError):
        return None


def _waiting(conditions: Any) -> tuple[str, str] | None:
    for condition in conditions if isinstance(conditions, list) else ():
        if isinstance(condition, Mapping) and condition.get("type") == "Scheduled":
            if condition.get("status") == "True":
                return None
            return (str(condition.get("reason") or ""), str(condition.get("message") or ""))
    return None


@dataclass(slots=True, frozen=True)
class NodeRecord:
    name: str
    labels: Mapping[str, str]
    unschedulable: bool

    @property
    def encoders(self) -> frozenset[str]:
        prefix = api.LABEL_ENCODER_PREFIX
        return frozenset(k[len(prefix) :] for k, v in self.labels.items() if k.startswith(prefix) and v == "true")


def node_record(body: Mapping[str, Any]) -> NodeRecord:
    meta = body.get("metadata") or {}
    return NodeRecord(
        name=meta.get("name", ""),
        labels=dict(meta.get("labels") or {}),
        unschedulable=bool((body.get("spec") or {}).get("unschedulable")),
    )


@dataclass(slots=True, frozen=True)
class LeaseRecord:
    node: str
    renew_time: datetime | None
    duration_seconds: int
    slots: int | None
    # Orders versions of one Lease (cache): a late watch event must not undo a fresher direct read.
    resource_version: str = field(default="", compare=False)

    def alive(self, now: datetime) -> bool:
        """Alive while renewTime + leaseDurationSeconds > now (the agents' heartbeat contract)."""
        return self.renew_time is not None and (now - self.renew_time).total_seconds() < self.duration_seconds


def lease_record(body: Mapping[str, Any]) -> LeaseRecord | None:
    """None for Leases that are not agent heartbeats."""
    meta = body.get("metadata") or {}
    name = meta.get("name", "")
    if not name.startswith(api.LEASE_PREFIX):
        return None
    spec = body.get("spec") or {}
    try:
        slots = int((meta.get("annotations") or {})[api.ANNOTATION_SLOTS])
    except (KeyError, TypeError, ValueError):
        slots = None
    return LeaseRecord(
        node=spec.get("holderIdentity") or name[len(api.LEASE_PREFIX) :],
        renew_time=parse_time(spec.get("renewTime")),
        duration_seconds=int(spec.get("leaseDurationSeconds") or 15),
        slots=slots,
        resource_version=meta.get("resourceVersion", ""),
    )


@dataclass(slots=True, frozen=True)
class PodRecord:
    namespace: str
    name: str
    job: str
    job_uid: str
    attempt: int
    phase: str  # Pending | Running | Succeeded | Failed | Unknown
    exit_code: int | None
    termination_message: str | None
    deleting: bool
    # Orders versions of one pod (cache); not state: a new version with the same fields changes nothing.
    resource_version: str = field(default="", compare=False)
    node: str = ""
    """spec.nodeName: an unfinished pod holds a slot there until it is gone (scheduling.node_snapshot)."""
    reason: str = ""
    """status.reason of the pod (Evicted, NodeShutdown, NodeLost, Terminated, ...)."""
    message: str = ""
    disruption: str = ""
    """Reason of a DisruptionTarget condition that is True (EvictionByEvictionAPI, PreemptionByScheduler, ...)."""
    waiting: str = ""
    """Why the runner container has not started ("ImagePullBackOff: ..."), from its waiting state."""
    finished_at: datetime | None = None
    """When the runner container terminated."""

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def job_key(self) -> JobKey:
        return (self.namespace, self.job)


def pod_record(body: Mapping[str, Any]) -> PodRecord | None:
    """None for pods that are not ffrtmp job pods."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    if api.LABEL_JOB not in labels:
        return None
    status = body.get("status") or {}
    exit_code = message = finished_at = None
    waiting = ""
    for container in status.get("containerStatuses") or []:
        if container.get("name") != api.RUNNER_CONTAINER:
            continue
        state = container.get("state") or {}
        if terminated := state.get("terminated"):
            exit_code = terminated.get("exitCode")
            message = terminated.get("message")
            finished_at = parse_time(terminated.get("finishedAt"))
        elif (pending := state.get("waiting")) and pending.get("reason"):
            waiting = f"{pending['reason']}: {pending.get('message') or ''}".rstrip(": ")[:512]
    disruption = next(
        (
            str(c.get("reason") or "DisruptionTarget")
            for c in status.get("conditions") or []
            if isinstance(c, Mapping) and c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        ),
        "",
    )
    try:
        attempt = int(labels.get(api.LABEL_ATTEMPT, 0))
    except ValueError:
        attempt = 0
    return PodRecord(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        job=labels[api.LABEL_JOB],
        job_uid=labels.get(api.LABEL_JOB_UID, ""),
        attempt=attempt,
        phase=status.get("phase") or "Pending",
        exit_code=exit_code,
        termination_message=message,
        deleting=bool(meta.get("deletionTimestamp")),
        resource_version=meta.get("resourceVersion", ""),
        node=(body.get("spec") or {}).get("nodeName") or "",
        reason=str(status.get("reason") or ""),
        message=str(status.get("message") or "")[:512],
        disruption=disruption,
        waiting=waiting,
        finished_at=finished_at,
    )


def namespace_terminating(body: Mapping[str, Any]) -> bool:
    """Whether a Namespace is being deleted: nothing can be created in it any more (pods, Events), and
    its jobs are about to go (the namespace controller deletes them)."""
    meta = body.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) or (body.get("status") or {}).get("phase") == "Terminating"
