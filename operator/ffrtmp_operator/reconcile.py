"""What the operator does about one job, given its record, its pods and its node's heartbeat: follow its
pod, end a run that failed, timed out, never started or was disrupted (node lost, evicted, shut down).

Pure: `decide` returns a Decision (a phase change, pods to delete, a pod to create); the scheduler
loop carries it out. Placement itself (Queued -> Assigned) is scheduling.py's job, not this one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypedDict

import ffrtmp_api as api
from ffrtmp_api import Phase, Reason

from .lifecycle import RUNNING_PHASES, Failure, active_seconds, after_failure, classify_failure
from .records import JobRecord, PodRecord

P = Phase
GRACE_NOW = 0  # no kubelet will ever confirm a pod on a lost node
# How long a pod that succeeded may wait for its job's result to arrive (the runner writes it before it
# exits, but the job's watch event can trail the pod's); then the run counts as failed (PodError).
RESULT_GRACE_SECONDS = 30.0


class Decision(NamedTuple):
    target: Phase | None = None
    reason: str = ""
    message: str = ""
    extra: dict[str, Any] = {}
    """Status fields beside the lifecycle patch (retryAfter)."""
    delete_pods: tuple[tuple[str, int | None], ...] = ()
    """(pod name, grace seconds or None for the pod's own)."""
    create_pod: bool = False
    """The job is Assigned but its pod is missing (the operator stopped between the two writes)."""
    event_type: str = "Normal"


NOTHING = Decision()


def _live(pods: Iterable[PodRecord]) -> list[PodRecord]:
    return [p for p in pods if not p.deleting]


def _delete(
    pods: Iterable[PodRecord], *, grace: int | None = None, finished_too: bool = True
) -> tuple[tuple[str, int | None], ...]:
    return tuple((p.name, grace) for p in _live(pods) if finished_too or p.phase not in ("Succeeded", "Failed"))


class _Retry(TypedDict):
    """The backoff arguments every _failed call passes on (`**retry`)."""

    now: datetime
    base: float
    cap: float


def _failed(
    job: JobRecord,
    failure: Failure,
    *,
    now: datetime,
    base: float,
    cap: float,
    pods: Iterable[PodRecord],
    grace: int | None = None,
) -> Decision:
    outcome = after_failure(
        failure,
        failures=job.failures,
        disruptions=job.disruptions,
        max_retries=job.max_retries,
        now=now,
        base=base,
        cap=cap,
    )
    # A retry deletes the old pod (its slot and name are done with); a final failure keeps a finished
    # pod for `kubectl logs`.
    retry = outcome.phase == P.QUEUED
    return Decision(
        outcome.phase,
        outcome.reason,
        outcome.message,
        outcome.status(),
        _delete(pods, grace=grace, finished_too=retry),
        event_type="Warning",
    )


# Pod status reasons that say the node, not the job, ended the pod: kubelet node-pressure eviction
# (Evicted), graceful node shutdown (Terminated/Shutdown), the standalone agent stopping (NodeShutdown)
# or restarting without its processes (NodeLost).
_DISRUPTED_POD_REASONS = {
    "Evicted": Reason.EVICTED,
    "Preempting": Reason.EVICTED,
    "Terminated": Reason.NODE_SHUTDOWN,
    "Shutdown": Reason.NODE_SHUTDOWN,
    "NodeShutdown": Reason.NODE_SHUTDOWN,
    "NodeLost": Reason.NODE_LOST,
}


def disruption(pod: PodRecord) -> Failure | None:
    """Whether the job's current pod ended by a disruption rather than a failure of its own: a
    DisruptionTarget condition (eviction API, drain, taint manager, pod GC), a disrupting pod reason, or
    a deletion the operator did not make (it only deletes pods of runs it has already ended)."""
    detail = f": {pod.message}" if pod.message else ""
    if pod.disruption:
        return Failure(Reason.EVICTED, f"pod {pod.name} was disrupted ({pod.disruption}){detail}")
    if pod.reason in _DISRUPTED_POD_REASONS:
        return Failure(_DISRUPTED_POD_REASONS[pod.reason], f"pod {pod.name}: {pod.reason}{detail}")
    if pod.deleting:
        return Failure(Reason.EVICTED, f"pod {pod.name} was deleted before it finished")
    return None


def needs_live_node(job: JobRecord) -> bool:
    """Whether `decide` fails `job` as NodeLost when its node is not alive (the job holds a slot on
    job.node): only then is a Lease worth confirming before acting on it. Mirrors decide's order."""
    phase = job.phase or P.PENDING
    if phase in api.TERMINAL_PHASES or job.broken or job.canceled or phase in (P.PENDING, P.QUEUED):
        return False
    return not (phase == P.PAUSED and job.paused_from == P.QUEUED)


def decide(
    job: JobRecord,
    pods: Iterable[PodRecord],
    *,
    node_alive: bool,
    now: datetime,
    backoff_base: float,
    backoff_cap: float,
    start_timeout: float | None = None,
    result_grace: float = RESULT_GRACE_SECONDS,
) -> Decision:
    """The next step for `job`. `pods` are its pods (any attempt); `node_alive`: status.node has a
    fresh heartbeat Lease; `start_timeout`: how long an Assigned job's pod may take to start (None: no
    limit), like Kueue's waitForPodsReady."""
    orphans = [p for p in pods if p.job_uid and p.job_uid != job.uid]
    if _delete(orphans):
        # A deleted job's pods under the reused name (no garbage collector runs on the local stack):
        # they hold the deterministic pod name, so they go first.
        return Decision(delete_pods=_delete(orphans))
    pods = [p for p in pods if not p.job_uid or p.job_uid == job.uid]
    phase = job.phase or P.PENDING
    current = [p for p in pods if p.name == job.pod] if job.pod else []
    stale = [p for p in pods if p.name != job.pod]
    pod = current[0] if current else None
    retry = _Retry(now=now, base=backoff_base, cap=backoff_cap)

    if phase in api.TERMINAL_PHASES:
        # Completed keeps its finished pod; anything still running after the end is stopped.
        return Decision(delete_pods=_delete(pods, finished_too=False)) if _delete(pods, finished_too=False) else NOTHING
    if job.broken:
        return Decision(P.FAILED, Reason.INPUT_ERROR.value, job.broken, delete_pods=_delete(pods), event_type="Warning")
    if job.canceled:
        return Decision(
            P.CANCELED, Reason.CANCELED.value, "canceled by the user", delete_pods=_delete(pods, finished_too=False)
        )
    if phase == P.PENDING:
        if job.paused:
            return Decision(P.PAUSED, Reason.PAUSED.value, "created paused")
        return Decision(P.QUEUED, Reason.CREATED.value, f"queued in {job.queue}")
    if phase == P.QUEUED:
        if job.paused:
            return Decision(P.PAUSED, Reason.PAUSED.value, "paused while queued")
        return Decision(delete_pods=_delete(stale)) if _delete(stale) else NOTHING

    running_from = job.paused_from if phase == P.PAUSED else phase
    if running_from == P.QUEUED:  # Paused while queued: no pod, no node
        if not job.paused:
            return Decision(P.QUEUED, Reason.RESUMED.value, "resumed")
        return NOTHING
    # From here the job holds a slot on job.node (Assigned, Processing, or paused from those).
    if not node_alive:
        failure = Failure(Reason.NODE_LOST, f"node {job.node} stopped renewing its heartbeat Lease")
        return _failed(job, failure, pods=pods, grace=GRACE_NOW, **retry)
    if pod is not None and pod.phase == "Succeeded":
        if job.has_result:
            return Decision(
                P.COMPLETED, Reason.SUCCEEDED.value, f"pod {pod.name} succeeded", delete_pods=_delete(stale)
            )
        # The runner reports its result before it exits, but the job's watch event may trail the pod's.
        if pod.finished_at is None or now - pod.finished_at <= timedelta(seconds=result_grace):
            return NOTHING
        failure = Failure(Reason.POD_ERROR, f"pod {pod.name} succeeded but its runner reported no result")
        return _failed(job, failure, pods=pods, **retry)
    if pod is not None and pod.phase == "Failed":
        failure = disruption(pod) or classify_failure(
            exit_code=pod.exit_code, termination_message=pod.termination_message
        )
        return _failed(job, failure, pods=pods, **retry)
    active = active_seconds(since=job.active_since, seconds=job.active_seconds, now=now)
    if job.timeout_seconds and phase in RUNNING_PHASES and active > job.timeout_seconds:
        failure = Failure(
            Reason.TIMEOUT,
            f"held a node longer than spec.timeoutSeconds={job.timeout_seconds} (time paused not counted)",
        )
        return _failed(job, failure, pods=pods, **retry)
    if pod is not None and pod.deleting:  # someone else deletes the running pod: a drain, an eviction
        return _failed(job, disruption(pod) or Failure(Reason.EVICTED, f"pod {pod.name} deleted"), pods=pods, **retry)
    if pod is None and running_from == P.PROCESSING:
        failure = Failure(Reason.EVICTED, f"pod {job.pod} was deleted before it finished")
        return _failed(job, failure, pods=pods, **retry)
    started = pod is not None and pod.phase == "Running"  # the Processing write may not have happened yet
    if start_timeout is not None and phase == P.ASSIGNED and not started and active > start_timeout:
        why = f" ({pod.waiting})" if pod is not None and pod.waiting else ""
        failure = Failure(Reason.START_TIMEOUT, f"pod {job.pod} did not start within {start_timeout:g}s{why}")
        return _failed(job, failure, pods=pods, **retry)
    if phase == P.PAUSED:
        if job.paused:
            create = pod is None and running_from == P.ASSIGNED and not job.deleting
            return Decision(create_pod=True) if create else NOTHING
        target = P.PROCESSING if pod is not None and pod.phase == "Running" else running_from
        return Decision(target, Reason.RESUMED.value, "resumed", create_pod=pod is None)
    if job.paused:
        return Decision(P.PAUSED, Reason.PAUSED.value, f"paused while {phase.value.lower()}")
    if phase == P.ASSIGNED and pod is not None and pod.phase == "Running":
        return Decision(P.PROCESSING, Reason.STARTED.value, f"pod {pod.name} running on {job.node}")
    if pod is None and phase == P.ASSIGNED:
        if job.deleting:
            return NOTHING  # being deleted: no new pod
        return Decision(create_pod=True, delete_pods=_delete(stale))
    return Decision(delete_pods=_delete(stale)) if _delete(stale) else NOTHING
