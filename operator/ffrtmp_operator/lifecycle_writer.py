"""Writing a job's lifecycle to the API (Kueue's workload controller side): phase changes as one status
patch with the job's resourceVersion as precondition, a re-read on conflict so the job is decided again on
fresh data, then one Event per write. The only writer of job status; what to write comes from the pure
lifecycle, reconcile and scheduling modules.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, NamedTuple

from ffrtmp_api import Phase
from kubernetes.client.exceptions import ApiException

from . import lifecycle
from .apierrors import is_namespace_terminating, log_refusal
from .cache import Cache
from .kube import Kube
from .lifecycle import InvalidTransition
from .recorder import Recorder
from .records import JobRecord, job_record

log = logging.getLogger("ffrtmp.scheduler")


class Step(NamedTuple):
    """One phase change of a status write."""

    target: Phase
    reason: str
    message: str
    now: datetime
    event_type: str = "Normal"


class LifecycleWriter:
    def __init__(self, cache: Cache, kube: Kube, *, recorder: Recorder) -> None:
        self.cache = cache
        self.kube = kube
        self.recorder = recorder

    async def write_status(self, job: JobRecord, status: dict[str, Any]) -> dict[str, Any] | None:
        """The patched object, or None on a conflict (the job is left out of the queue until the watch
        delivers its newer version)."""
        body = await self.kube.patch_job_status(job, status)
        if body is None:
            log.info("status write conflicted, requeued", extra={"job": f"{job.namespace}/{job.name}"})
            cached = self.cache.jobs.get(job.key)
            if cached is not None and cached.resource_version == job.resource_version:
                self.cache.queue.remove(job.key)  # the watch has not delivered the newer version yet
                # Read the newer version now rather than wait for the watch, which can lag far behind (after
                # an API server restart it resumed minutes later): the next pass decides on fresh data.
                fresh = await self.kube.get_job(job.namespace, job.name)
                if fresh is not None:
                    self.cache.upsert_job(job_record(fresh))
            # Decide again on the newer version even if it changes nothing the cache compares (a runner's
            # progress write): no further event may come (its pod already finished), so waiting for the
            # watch left a finished job Processing forever after an API server restart.
            self.cache.recheck(job.key)
            return None
        self.cache.upsert_job(job_record(body, previous=job))
        return body

    async def transition(
        self,
        job: JobRecord,
        target: Phase,
        *,
        reason: str,
        message: str,
        now: datetime,
        extra: dict[str, Any] | None = None,
        event_type: str = "Normal",
    ) -> bool:
        return await self.transitions(job, [Step(target, reason, message, now, event_type)], extra=extra)

    async def transitions(self, job: JobRecord, steps: list[Step], *, extra: dict[str, Any] | None = None) -> bool:
        """Write one or more phase changes in one status patch, then one Event for them (`event_step`)."""
        status = job.status()
        patch: dict[str, Any] = {}
        try:
            for step in steps:
                change = lifecycle.transition(
                    status,
                    step.target,
                    reason=step.reason,
                    message=step.message,
                    now=step.now,
                    generation=job.generation or None,
                )
                patch.update(change)
                status = {**status, **change}
        except InvalidTransition as exc:
            log.warning("transition refused", extra={"job": f"{job.namespace}/{job.name}", "error": str(exc)})
            return False
        patch.update(extra or {})
        body = await self.write_status(job, patch)
        if body is None:
            return False
        old = Phase(job.status().get("phase") or Phase.PENDING)
        for step in steps:
            self.recorder.transition(job, old=old, step=step, body=body)
            log.info(
                "job phase",
                extra={
                    "job": f"{job.namespace}/{job.name}",
                    "from": old.value,
                    "to": step.target.value,
                    "reason": step.reason,
                },
            )
            old = step.target
        await self._post_event(job, event_step(steps))
        return True

    async def _post_event(self, job: JobRecord, step: Step) -> None:
        await self.post_event(job, reason=step.reason, message=step.message or step.target.value, type_=step.event_type)

    async def post_event(self, job: JobRecord, *, reason: str, message: str, type_: str = "Normal") -> None:
        """One Event on the job; a lost Event is logged, never raised (what it reports is written)."""
        if job.namespace in self.cache.terminating:
            return  # no Event can be created there any more
        try:
            await self.kube.post_event(job, reason=reason, message=message, type_=type_)
        except ApiException as exc:  # the phase is written; a lost Event must not undo it
            if not self.refused_in(job.namespace, exc):
                log_refusal(log, "event not posted", exc, job=f"{job.namespace}/{job.name}")

    def refused_in(self, namespace: str, exc: ApiException) -> bool:
        """Learn from a refused create that `namespace` is being terminated (the watch may not have told
        yet), so its jobs are left alone from now on. True when that is what the refusal said."""
        if not is_namespace_terminating(exc):
            return False
        if self.cache.set_namespace_terminating(namespace, True):
            log.debug("namespace terminating: its jobs are left alone", extra={"namespace": namespace})
        return True


def event_step(steps: list[Step]) -> Step:
    """The one Event of a write: its last change, with the earlier changes' messages after its own. A new job
    admitted at once (Queued and Assigned in one write) gets one Admitted Event, "assigned to n1 (encoder
    libx264); queued in batch", as a pod gets one Scheduled Event and no Event for entering the scheduling
    queue; status.transitions still lists both changes. Warning when any change is one."""
    last = steps[-1]
    earlier = [s.message for s in steps[:-1] if s.message and s.message != last.message]
    message = "; ".join(dict.fromkeys([last.message or last.target.value, *earlier]))
    warning = any(s.event_type == "Warning" for s in steps)
    return last._replace(message=message, event_type="Warning" if warning else last.event_type)
