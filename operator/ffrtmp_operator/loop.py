"""The scheduler loop: the one place that writes job status, creates and deletes job pods.

Runs only on the active replica. Each pass has named, timed phases: resync (at start), reconcile (the
jobs that changed, plus once per tick the slot holders that can expire), snapshot, nominate, admit (new
jobs placed at once get their Queued and Assigned transitions in one status write). Admission is
"assume, then write": the cycle's snapshot counts the slot as taken, the status patch carries the
job's resourceVersion (a 409 means the job changed under us: forget and let the watch bring it back),
and only then is the pod created under its deterministic name, so no job is ever placed twice.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from kubernetes.client.exceptions import ApiException

import ffrtmp_api as api
from . import lifecycle, reconcile, scheduling
from ffrtmp_api import Phase, Reason
from .cache import Cache
from .kube import Kube, is_outage
from .lifecycle import InvalidTransition
from .metrics import OperatorMetrics
from .plan import PlanError
from .pods import build_pod
from .records import JobKey, JobRecord, job_record, lease_record, node_record, pod_record
from .settings import Settings

log = logging.getLogger("ffrtmp.scheduler")
ACTIVE_PHASES = (Phase.ASSIGNED, Phase.PROCESSING, Phase.PAUSED)
WRITE_CONCURRENCY = 16  # parallel API writes per phase; the apiserver's default inflight limit is 400
# Admissions per pass: a pass awaits its writes (4 per job), so a cap keeps passes around a second and
# new arrivals (and pod/phase events) are looked at between them instead of behind a long convoy.
ADMISSIONS_PER_PASS = 128


class Step(NamedTuple):
    """One phase change of a status write."""

    target: Phase
    reason: str
    message: str
    now: datetime
    event_type: str = "Normal"


class Clock:
    """Wall clock with strictly increasing milliseconds (the precision of status stamps), so queuedAt
    keeps the arrival order of jobs handled in one pass."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self._last = datetime.min.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        now = self._now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last:
            now = self._last + timedelta(milliseconds=1)
        self._last = now
        return now


class Scheduler:
    def __init__(self, cache: Cache, kube: Kube, settings: Settings, metrics: OperatorMetrics | None = None) -> None:
        self.cache = cache
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.clock = Clock()
        self._limit = asyncio.Semaphore(WRITE_CONCURRENCY)
        self._retry: set[JobKey] = set()
        # Since when the API server has answered without a break (None: it does not answer now). A Lease
        # that expired while heartbeats could not reach the API says nothing about the node: agents get
        # one full lease period of reachability to renew before their jobs count as NodeLost.
        self.reachable_since: datetime | None = None
        # Direct Lease reads that confirm an expiry: node -> (monotonic time, whether the read answered).
        self._lease_reads: dict[str, tuple[float, bool]] = {}

    # ------------------------------------------------------------------------------------ driver

    async def run(self, stopped: Any = None) -> None:
        """Resync, then pass after pass until `stopped` (kopf's daemon flag) is set or cancelled."""
        while True:
            try:
                await self.resync()
                break
            except Exception:  # the API is not answering yet: nothing is decided on a partial view
                log.exception("resync failed, retrying")
                if stopped is not None and stopped:
                    return
                await asyncio.sleep(2)
        self.reachable_since = self.clock()
        tick = self.settings.scheduling.tick_seconds
        next_sweep = 0.0
        while not (stopped is not None and stopped):
            sweep = time.monotonic() >= next_sweep
            if sweep:
                next_sweep = time.monotonic() + tick
                await self.observe_api()
            try:
                await self.run_pass(sweep=sweep)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad pass must not end scheduling; the next one retries
                log.exception("scheduling pass failed")
                await asyncio.sleep(1)
            await self._wait(stopped, timeout=max(0.05, next_sweep - time.monotonic()))

    async def _wait(self, stopped: Any, *, timeout: float) -> None:
        """Until a change, the next tick, or kopf stopping the daemon (peering pause, shutdown)."""

        async def changed() -> None:
            async with self.cache.changed:
                await self.cache.changed.wait_for(lambda: bool(self.cache.dirty) or self.cache.nodes_changed)

        waits = [asyncio.ensure_future(changed())]
        if stopped is not None:
            waits.append(asyncio.ensure_future(stopped.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def observe_api(self) -> None:
        if not await self.kube.reachable(system_namespace=self.settings.system_namespace):
            if self.reachable_since is not None:
                log.warning("API server unreachable: no node is declared lost until it answers again")
            self.reachable_since = None
        elif self.reachable_since is None:
            self.reachable_since = self.clock()
            # The watches reconnect on their own, but may resume late: relist so the cache is current.
            log.info("API server reachable again: resync")
            await self.resync()

    def heartbeats_could_arrive(self, now: datetime, lease_seconds: int) -> bool:
        """True once the API has answered for a whole lease period, so an expired Lease means the node."""
        since = self.reachable_since
        return since is not None and (now - since).total_seconds() >= lease_seconds

    async def resync(self) -> None:
        started = time.monotonic()
        self.cache.begin_resync()
        try:
            raw = await self.kube.list_all(system_namespace=self.settings.system_namespace)
        except BaseException:
            self.cache.abandon_resync()
            raise
        manages = self.settings.manages
        self.cache.replace_all(
            jobs=[job for o in raw["jobs"] if manages((job := job_record(o)).namespace)],
            pods=[p for o in raw["pods"] if (p := pod_record(o)) is not None and manages(p.namespace)],
            nodes=[node_record(o) for o in raw["nodes"]],
            leases=[lease for o in raw["leases"] if (lease := lease_record(o)) is not None],
            priority_values={o["metadata"]["name"]: int(o.get("value", 0)) for o in raw["priorityclasses"]},
        )
        log.info(
            "resync done",
            extra={"jobs": len(raw["jobs"]), "pods": len(raw["pods"]), "nodes": len(raw["nodes"]),
                   "seconds": round(time.monotonic() - started, 3)},
        )  # fmt: skip

    async def run_pass(self, *, sweep: bool) -> None:
        timings: dict[str, float] = {}
        t = time.monotonic()
        keys = self.cache.take_dirty()
        nodes_changed, self.cache.nodes_changed = self.cache.nodes_changed, False
        if sweep or nodes_changed:
            seen = set(keys)
            retry, self._retry = self._retry, set()
            keys += [k for k in [*retry, *self.sweep_keys(self.clock())] if k not in seen and not seen.add(k)]
        changed, arrivals = await self.reconcile(keys)
        timings["reconcile"] = time.monotonic() - t

        if not len(self.cache.queue) and not arrivals:  # nothing to place: no snapshot of every job
            if changed:
                log.info("scheduling pass", extra={"reconciled": len(keys), "transitions": changed, "queued": 0,
                                                   "reconcile_ms": round(timings["reconcile"] * 1000, 2)})  # fmt: skip
            return
        t = time.monotonic()
        now = self.clock()
        snapshot = scheduling.node_snapshot(
            self.cache.nodes.values(), self.cache.leases, self.cache.jobs.values(),
            now=now, default_slots=self.settings.scheduling.default_slots,
        )  # fmt: skip
        timings["snapshot"] = time.monotonic() - t

        t = time.monotonic()
        values = self.cache.priority_values
        # New arrivals join the queue in memory only: placed now, one status write carries both their
        # Queued and Assigned transitions; the rest get their Queued write after this cycle.
        provisional = sorted(
            (replace(job, phase=Phase.QUEUED, queued_at=at) for job, _, at in arrivals),
            key=lambda j: scheduling.order_key(j, values),
        )
        ordered = heapq.merge(
            (self.cache.jobs[k] for k in self.cache.queue.ordered()),
            provisional,
            key=lambda j: scheduling.order_key(j, values),
        )
        cycle = scheduling.schedule(
            ordered, snapshot, now=now, priority_values=self.cache.priority_values,
            preemption=self.settings.scheduling.preemption, limit=ADMISSIONS_PER_PASS,
        )  # fmt: skip
        timings["nominate"] = time.monotonic() - t

        t = time.monotonic()
        arriving = {job.key: (decision, at) for job, decision, at in arrivals}
        placed = {a.job.key for a in cycle.assignments}
        await self._each(self.preempt(p) for p in cycle.preemptions)
        admitted = await self._each(
            self._guard(a.job.key, self.admit(a, queued=arriving.get(a.job.key))) for a in cycle.assignments
        )
        waiting = [(job, d, at) for job, d, at in arrivals if job.key not in placed]
        if cycle.truncated:  # not looked at yet: they stay Pending and come first in the next pass
            self.cache.dirty = {**{job.key: None for job, _, _ in waiting}, **self.cache.dirty}
            waiting = []
        changed += sum(await self._each(self._guard(job.key, self.carry_out(job, d, at)) for job, d, at in waiting))
        timings["admit"] = time.monotonic() - t
        if self.metrics is not None:
            self.metrics.record_cycle(sum(timings.values()))
            self.metrics.record_scheduling_attempt("scheduled", len(cycle.assignments))
            self.metrics.record_scheduling_attempt("preempting", len(cycle.preemptions))
            self.metrics.record_scheduling_attempt("unschedulable", cycle.considered - len(cycle.assignments))
        if changed or cycle.assignments or cycle.preemptions:
            log.info(
                "scheduling pass",
                extra={
                    "reconciled": len(keys), "transitions": changed, "queued": len(self.cache.queue),
                    "considered": cycle.considered, "assigned": sum(admitted), "preempted": len(cycle.preemptions),
                    "nodes": len(snapshot), "free_slots": sum(max(0, n.free) for n in snapshot.values()),
                    **{f"{k}_ms": round(v * 1000, 2) for k, v in timings.items()},
                },
            )  # fmt: skip

    async def _guard(self, key: JobKey, coro: Any) -> Any:
        """A job whose write failed (5xx, timeout) is looked at again on the next tick, not at once."""
        try:
            return await coro
        except ApiException:
            self._retry.add(key)
            raise

    async def _each(self, coros: Iterable[Any]) -> list[Any]:
        async def limited(coro: Any) -> Any:
            async with self._limit:
                try:
                    return await coro
                except ApiException as exc:
                    log.warning("API write failed", extra={"status": exc.status, "error": str(exc.reason)})
                    return False

        return await asyncio.gather(*(limited(c) for c in coros))

    # --------------------------------------------------------------------------------- reconcile

    def sweep_keys(self, now: datetime) -> list[JobKey]:
        """Slot holders something may have happened to without an event of its own: their node's
        Lease expired, a timeout may have passed, or an Assigned job has no pod (after a crash)."""
        alive = {n for n, lease in self.cache.leases.items() if lease.alive(now) and n in self.cache.nodes}
        return [
            k
            for k, j in self.cache.jobs.items()
            if j.phase in ACTIVE_PHASES
            and (
                (j.node is not None and j.node not in alive)
                or j.timeout_seconds is not None
                or (j.phase == Phase.ASSIGNED and not self.cache.pods_by_job.get(k))
            )
        ]

    def node_alive(self, node: str | None, now: datetime) -> bool:
        """As the cache sees it: a worker Node whose Lease is live (or expired while heartbeats could
        not reach the API)."""
        lease = self.cache.leases.get(node or "")
        return (
            lease is not None
            and node in self.cache.nodes
            and (lease.alive(now) or not self.heartbeats_could_arrive(now, lease.duration_seconds))
        )

    async def confirm_lost(self, nodes: set[str]) -> set[str]:
        """Read the Lease of each node the cache thinks lost from the API before any of its jobs is
        requeued: the watch feeding the cache can lag far behind under load (the benchmark saw > 45 s),
        and a requeue deletes running pods. Refreshes the cache with what the reads return; returns
        the nodes whose Lease could not be read, whose jobs stay put this time. One read per node per
        tick: in between, a node read fine is judged on the refreshed cache, one not read stays held."""
        tick = self.settings.scheduling.tick_seconds
        started = time.monotonic()
        self._lease_reads = {n: r for n, r in self._lease_reads.items() if started - r[0] < tick}
        due = [n for n in nodes if n not in self._lease_reads]
        answered = await asyncio.gather(*(self._read_lease(n) for n in due))
        self._lease_reads.update({n: (started, ok) for n, ok in zip(due, answered, strict=True)})
        return {n for n in nodes if not self._lease_reads[n][1]}

    async def _read_lease(self, node: str) -> bool:
        cached = self.cache.leases.get(node)
        try:
            async with self._limit:
                body = await self.kube.get_lease(self.settings.system_namespace, api.LEASE_PREFIX + node)
        except Exception as exc:  # noqa: BLE001 -- any failure: the API, not the node, failed to answer
            log.warning("lease not readable: node not declared lost", extra={"node": node, "error": str(exc)[:200]})
            if is_outage(exc) and self.reachable_since is not None:
                log.warning("API server unreachable: no node is declared lost until it answers again")
                self.reachable_since = None
            return False
        fresh = lease_record(body) if body is not None else None
        self.cache.set_lease(node, fresh)
        if fresh is not None and fresh.alive(self.clock()):
            behind = (fresh.renew_time - cached.renew_time).total_seconds() if cached and cached.renew_time else None
            log.info("lease renewed in the API, the watch is behind: node kept",
                     extra={"node": node, "behind_s": behind})  # fmt: skip
        return True

    async def reconcile(self, keys: list[JobKey]) -> tuple[int, list[tuple[JobRecord, reconcile.Decision, datetime]]]:
        """Carry out what `decide` says for `keys`; returns the phase changes written and the new jobs
        (Pending -> Queued), whose write waits for the admission cycle."""
        decisions = []
        arrivals = []
        # kopf hands events of different objects over in no fixed order: stamp new jobs' queuedAt
        # in creation order, so FIFO means first created, first served.
        keys = sorted(keys, key=lambda k: j.arrival if (j := self.cache.jobs.get(k)) else ("", 0, ""))
        jobs = [job for key in keys if (job := self.cache.jobs.get(key)) is not None]
        now = self.clock()
        # Nodes the cache calls lost under a job that would be requeued for it: confirmed by a fresh read.
        # A job that changes during the reads is decided on its older record: its write then conflicts (409).
        suspects = {
            j.node for j in jobs if j.node and reconcile.needs_live_node(j) and not self.node_alive(j.node, now)
        }
        held = await self.confirm_lost(suspects) if suspects else set()
        for job in jobs:
            now = self.clock()
            decision = reconcile.decide(
                job,
                self.cache.pods_of(job.key),
                node_alive=job.node in held or self.node_alive(job.node, now),
                now=now,
                backoff_base=self.settings.scheduling.backoff_base_seconds,
                backoff_cap=self.settings.scheduling.backoff_cap_seconds,
            )
            stale_generation = (
                job.phase not in api.TERMINAL_PHASES and job.generation and job.generation != job.observed_generation
            )
            if decision.target == Phase.QUEUED and (job.phase or Phase.PENDING) == Phase.PENDING:
                arrivals.append((job, decision, now))
            elif decision != reconcile.NOTHING or stale_generation:
                decisions.append((job, decision, now))
        results = await self._each(self._guard(job.key, self.carry_out(job, d, now)) for job, d, now in decisions)
        return sum(1 for r in results if r), arrivals

    async def carry_out(self, job: JobRecord, decision: reconcile.Decision, now: datetime) -> bool:
        """Write the phase change (if any), then delete and create pods. True when the phase changed."""
        changed = False
        if decision.target is not None:
            changed = await self.transition(
                job, decision.target, reason=decision.reason, message=decision.message, now=now,
                extra=decision.extra, event_type=decision.event_type,
            )  # fmt: skip
            if not changed:
                return False  # stale: the newer object comes back through the watch
        elif job.phase and job.generation != job.observed_generation:
            await self.write_status(job, {"observedGeneration": job.generation})
        for name, grace in decision.delete_pods:
            await self.kube.delete_pod(job.namespace, name, grace=grace)
        if decision.create_pod:
            await self.create_pod(self.cache.jobs.get(job.key, job))
        return changed

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
        """Write one or more phase changes in one status patch, then one Event per change."""
        status = job.status()
        patch: dict[str, Any] = {}
        try:
            for step in steps:
                change = lifecycle.transition(
                    status, step.target, reason=step.reason, message=step.message, now=step.now,
                    generation=job.generation or None,
                )  # fmt: skip
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
            self._record(job, old, step, body=body)
            log.info(
                "job phase",
                extra={"job": f"{job.namespace}/{job.name}", "from": old.value, "to": step.target.value,
                       "reason": step.reason},
            )  # fmt: skip
            old = step.target
            try:
                await self.kube.post_event(
                    job, reason=step.reason, message=step.message or step.target.value, type_=step.event_type
                )
            except ApiException as exc:  # the phase is written; a lost Event must not undo it
                log.warning("event not posted", extra={"job": f"{job.namespace}/{job.name}", "status": exc.status})
        return True

    def _record(self, job: JobRecord, old: Phase, step: Step, *, body: dict[str, Any]) -> None:
        if self.metrics is None:
            return
        target, now = step.target, step.now
        ends_run = step.event_type == "Warning" and target in (Phase.QUEUED, Phase.FAILED)
        queued_at = job.queued_at or (now if old == Phase.QUEUED else None)
        self.metrics.record_transition(
            old=old.value, new=target.value, queue=job.queue, reason=step.reason,
            failure=step.reason if ends_run and step.reason != Reason.RETRIES_EXHAUSTED else None,
            waited_s=(now - queued_at).total_seconds() if queued_at and target == Phase.ASSIGNED else None,
            ran_s=(now - job.started_at).total_seconds() if job.started_at else None,
        )  # fmt: skip
        if target == Phase.COMPLETED:
            self.metrics.record_result((body.get("status") or {}).get("result"), encoder=job.encoder)

    # ------------------------------------------------------------------------------------- admit

    async def admit(
        self, assignment: scheduling.Assignment, *, queued: tuple[reconcile.Decision, datetime] | None = None
    ) -> bool:
        """Assume (the cycle already took the slot), write the placement, then create the pod. `queued`:
        the job is new, and its Queued transition goes into the same status write."""
        job, node, encoder = assignment
        attempt = job.attempts + 1
        now = self.clock()
        try:
            spec = api.TranscodeJobSpec.model_validate(job.spec())
            manifest = build_pod(
                api.TranscodeJob(metadata={"name": job.name, "namespace": job.namespace}, spec=spec),
                namespace=job.namespace, name=job.name, uid=job.uid, attempt=attempt, node=node, encoder=encoder,
                settings=self.settings.pods,
            )  # fmt: skip
        except (PlanError, ValueError) as exc:  # an unrunnable spec fails its job, not the operator
            failed = Step(Phase.FAILED, Reason.INPUT_ERROR.value, str(exc)[:1024], now, "Warning")
            return await self.transitions(job, [*self._queued_steps(queued), failed])
        assigned = Step(Phase.ASSIGNED, Reason.ADMITTED.value, f"assigned to {node} (encoder {encoder})", now)
        placement = {"node": node, "pod": manifest["metadata"]["name"], "attempts": attempt, "encoder": encoder}
        placed = await self.transitions(job, [*self._queued_steps(queued), assigned], extra=placement)
        if self.metrics is not None:
            self.metrics.record_admission("admitted" if placed else "conflict", queue=job.queue, encoder=encoder)
        if placed:
            await self._create(manifest)
        return placed

    @staticmethod
    def _queued_steps(queued: tuple[reconcile.Decision, datetime] | None) -> list[Step]:
        if queued is None:
            return []
        decision, at = queued
        return [Step(Phase.QUEUED, decision.reason, decision.message, at)]

    async def create_pod(self, job: JobRecord) -> None:
        """The pod of an Assigned job that has none (the operator stopped between status and pod)."""
        if not job.node or not job.encoder or not job.attempts:
            return
        try:
            spec = api.TranscodeJobSpec.model_validate(job.spec())
            manifest = build_pod(
                api.TranscodeJob(metadata={"name": job.name, "namespace": job.namespace}, spec=spec),
                namespace=job.namespace, name=job.name, uid=job.uid, attempt=job.attempts, node=job.node,
                encoder=job.encoder, settings=self.settings.pods,
            )  # fmt: skip
        except (PlanError, ValueError) as exc:
            await self.transition(
                job, Phase.FAILED, reason=Reason.INPUT_ERROR.value, message=str(exc)[:1024], now=self.clock(),
                event_type="Warning",
            )  # fmt: skip
            return
        if manifest["metadata"]["name"] != job.pod:
            log.warning("pod name mismatch", extra={"job": f"{job.namespace}/{job.name}", "pod": job.pod})
        await self._create(manifest)

    async def _create(self, manifest: dict[str, Any]) -> None:
        meta = manifest["metadata"]
        try:
            await self.kube.ensure_runner_rbac(meta["namespace"])
            body = await self.kube.create_pod(manifest)
        except ApiException as exc:
            if exc.status not in (400, 403, 422):
                raise  # transient (5xx, 429, network): the next pass creates it again
            # Refused for good (Pod Security, quota, invalid): a failed attempt, retried with backoff.
            await self.pod_refused(meta["namespace"], meta["labels"][api.LABEL_JOB], exc)
            return
        record = pod_record(body or manifest)
        if record is not None:  # known at once, so the next pass does not create it again
            self.cache.upsert_pod(record)

    async def pod_refused(self, namespace: str, name: str, exc: ApiException) -> None:
        job = self.cache.jobs.get((namespace, name))
        if job is None:
            return
        detail = str(exc.body or exc.reason or "")[:800]
        failure = lifecycle.Failure(
            Reason.POD_ERROR, f"pod {job.pod} refused by the API server ({exc.status}): {detail}"
        )
        now = self.clock()
        outcome = lifecycle.after_failure(
            failure, attempts=job.attempts, max_retries=job.max_retries, now=now,
            base=self.settings.scheduling.backoff_base_seconds, cap=self.settings.scheduling.backoff_cap_seconds,
        )  # fmt: skip
        extra = {"retryAfter": lifecycle.stamp(outcome.retry_after)} if outcome.retry_after else {}
        await self.transition(
            job, outcome.phase, reason=outcome.reason, message=outcome.message, now=now, extra=extra,
            event_type="Warning",
        )  # fmt: skip

    async def preempt(self, preemption: scheduling.Preemption) -> bool:
        victim = preemption.victim
        message = f"preempted on {preemption.node} by live job {preemption.for_job.namespace}/{preemption.for_job.name}"
        done = await self.transition(
            victim, Phase.QUEUED, reason=Reason.PREEMPTED.value, message=message, now=self.clock(),
            event_type="Warning",
        )  # fmt: skip
        if done and victim.pod:
            await self.kube.delete_pod(victim.namespace, victim.pod)
        return done
