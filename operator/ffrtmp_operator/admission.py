"""Admission (Kueue's scheduler.go side): carry out a cycle's placement of a queued job, then create its
pod. "Assume, then write": the cycle's snapshot already counts the slot as taken, the status write carries
the job's resourceVersion (a conflict forgets the placement), and only a written placement gets its pod,
under a deterministic name, so no job is ever placed twice. A pod the API refuses for good is no failed
run but a FailedCreate wait (retried with backoff); a namespace being terminated is no failure, its job
is left alone.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import ffrtmp_api as api
from ffrtmp_api import Phase, Reason
from kubernetes.client.exceptions import ApiException

from . import lifecycle, reconcile, scheduling
from .apierrors import is_rbac_denial, log_refusal
from .cache import Cache
from .clock import Clock
from .job_identity import JobIdentity
from .kube import Kube
from .lifecycle_writer import LifecycleWriter, Step
from .network_guard import JobNetworkPolicy
from .plan import PlanError
from .pods import build_pod
from .recorder import Recorder
from .records import JobRecord, pod_record
from .settings import Settings

log = logging.getLogger("ffrtmp.scheduler")


class Admission:
    def __init__(
        self,
        cache: Cache,
        kube: Kube,
        writer: LifecycleWriter,
        *,
        settings: Settings,
        clock: Clock,
        recorder: Recorder,
    ) -> None:
        self.cache = cache
        self.kube = kube
        self.writer = writer
        self.settings = settings
        self.clock = clock
        self.recorder = recorder
        self.identity = JobIdentity(kube, system_namespace=settings.system_namespace)
        self.network_policy = JobNetworkPolicy(kube, egress_allow=settings.pods.policy.egress_allow)

    def _manifest(self, job: JobRecord, *, attempt: int, node: str, encoder: str) -> dict[str, Any]:
        """The job pod of one attempt; raises PlanError or ValueError for a spec that cannot run."""
        spec = api.TranscodeJobSpec.model_validate(job.spec())
        return build_pod(
            api.TranscodeJob(metadata={"name": job.name, "namespace": job.namespace}, spec=spec),
            namespace=job.namespace,
            name=job.name,
            uid=job.uid,
            attempt=attempt,
            node=node,
            encoder=encoder,
            settings=self.settings.pods,
        )

    async def admit(
        self, assignment: scheduling.Assignment, *, queued: tuple[reconcile.Decision, datetime] | None = None
    ) -> bool:
        """Assume (the cycle already took the slot), write the placement, then create the pod. `queued`:
        the job is new: its Queued transition goes into the same status write, its message into the
        Admitted Event (no Queued Event of its own)."""
        job, node, encoder = assignment
        attempt = job.attempts + 1
        now = self.clock()
        try:
            manifest = self._manifest(job, attempt=attempt, node=node, encoder=encoder)
        except (PlanError, ValueError) as exc:  # an unrunnable spec fails its job, not the operator
            failed = Step(Phase.FAILED, Reason.INPUT_ERROR.value, str(exc)[:1024], now, "Warning")
            return await self.writer.transitions(job, [*_queued_steps(queued), failed])
        assigned = Step(Phase.ASSIGNED, Reason.ADMITTED.value, f"assigned to {node} (encoder {encoder})", now)
        placement = {"node": node, "pod": manifest["metadata"]["name"], "attempts": attempt, "encoder": encoder}
        placed = await self.writer.transitions(job, [*_queued_steps(queued), assigned], extra=placement)
        self.recorder.admission(job, placed=placed, encoder=encoder)
        if placed:
            await self._create(manifest)
        return placed

    async def create_pod(self, job: JobRecord) -> None:
        """The pod of an Assigned job that has none (the operator stopped between status and pod)."""
        if not job.node or not job.encoder or not job.attempts:
            return
        try:
            manifest = self._manifest(job, attempt=job.attempts, node=job.node, encoder=job.encoder)
        except (PlanError, ValueError) as exc:
            await self.writer.transition(
                job,
                Phase.FAILED,
                reason=Reason.INPUT_ERROR.value,
                message=str(exc)[:1024],
                now=self.clock(),
                event_type="Warning",
            )
            return
        if manifest["metadata"]["name"] != job.pod:
            log.warning("pod name mismatch", extra={"job": f"{job.namespace}/{job.name}", "pod": job.pod})
        await self._create(manifest)

    async def _create(self, manifest: dict[str, Any]) -> None:
        meta = manifest["metadata"]
        try:
            await self.network_policy.ensure(meta["namespace"])  # before any job pod of the namespace
            await self.identity.prepare(manifest)  # the job's own ServiceAccount and Role; the signature
            body = await self.kube.create_pod(manifest)
        except ApiException as exc:
            if self.writer.refused_in(meta["namespace"], exc):
                return  # being deleted: no pod, no retry; the job goes with its namespace
            if exc.status not in (400, 403, 422):
                raise  # transient (5xx, 429, network): the next pass creates it again
            if is_rbac_denial(exc):  # a broken install, not the job's fault: say so in the operator's log too
                log_refusal(log, "pod not created", exc, job=f"{meta['namespace']}/{meta['labels'][api.LABEL_JOB]}")
            # Refused for good (Pod Security, quota, invalid): a failed attempt, retried with backoff.
            await self.pod_refused(meta["namespace"], meta["labels"][api.LABEL_JOB], exc)
            return
        record = pod_record(body or manifest)
        if record is not None:  # known at once, so the next pass does not create it again
            self.cache.upsert_pod(record)

    async def pod_refused(self, namespace: str, name: str, exc: ApiException) -> None:
        """The API refused the job's pod (ResourceQuota, Pod Security, a webhook, a missing PriorityClass):
        not a failed run (no pod ever ran, so status.attempts goes back), but a wait, as a ReplicaSet's or
        Job's FailedCreate: the job is queued again with the reason on its Scheduled condition and a
        FailedCreate Warning Event, and tried again after a backoff that grows with each refusal."""
        job = self.cache.jobs.get((namespace, name))
        if job is None:
            return
        detail = str(exc.body or exc.reason or "")[:800]
        refusals = job.failed_creates + 1
        scheduling = self.settings.scheduling
        delay = lifecycle.backoff_seconds(
            refusals, base=scheduling.backoff_base_seconds, cap=scheduling.backoff_cap_seconds
        )
        now = self.clock()
        extra = {
            "attempts": max(0, job.attempts - 1),
            "failedCreates": refusals,
            "retryAfter": lifecycle.stamp(now + timedelta(seconds=delay)),
        }
        message = f"pod {job.pod} refused by the API server ({exc.status}): {detail}; retry in {delay:g}s"
        await self.writer.transition(
            job,
            Phase.QUEUED,
            reason=Reason.FAILED_CREATE.value,
            message=message,
            now=now,
            extra=extra,
            event_type="Warning",
        )


def _queued_steps(queued: tuple[reconcile.Decision, datetime] | None) -> list[Step]:
    if queued is None:
        return []
    decision, at = queued
    return [Step(Phase.QUEUED, decision.reason, decision.message, at)]
