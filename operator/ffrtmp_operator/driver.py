"""The scheduler's driver: resync, then pass after pass while this replica is the active one. What the
handlers' daemon runs; the one place that writes job status and creates or deletes job pods (through
the parts it wires together: lifecycle_writer, admission, preemption, nodeloss, reachability).

Each pass has named, timed phases: reconcile (the jobs that changed, plus once per tick the slot holders
that can expire), snapshot, nominate, admit (new jobs placed at once get their Queued and Assigned
transitions in one status write and one Admitted Event), note (why the jobs looked at and left queued
wait). Jobs in a namespace being terminated are left alone.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import ffrtmp_api as api
from ffrtmp_api import Phase, holds_slot
from kubernetes.client.exceptions import ApiException

from . import fairshare, reconcile, scheduling
from .admission import Admission
from .apierrors import log_refusal
from .cache import Cache
from .clock import Clock
from .kube import Kube
from .lifecycle_writer import LifecycleWriter
from .nodeloss import NodeLoss
from .preemption import Preemptor
from .presets import PresetResolver
from .queue_status import QueueStatusWriter
from .queues import queue_record
from .reachability import Reachability
from .recorder import NoRecorder, Recorder
from .records import JobKey, JobRecord, job_record, lease_record, namespace_terminating, node_record, pod_record
from .settings import Settings
from .split_control import SplitCoordinator
from .waiting import WaitingNotes

log = logging.getLogger("ffrtmp.scheduler")
ACTIVE_PHASES = (Phase.ASSIGNED, Phase.PROCESSING, Phase.PAUSED)
WRITE_CONCURRENCY = 16  # parallel API writes per phase; the apiserver's default inflight limit is 400
# Admissions per pass: a pass awaits its writes (status, Event, identity, pod), so a cap keeps passes
# around a second and new arrivals (and pod/phase events) are looked at between them instead of behind a
# long convoy.
ADMISSIONS_PER_PASS = 128

Arrival = tuple[JobRecord, reconcile.Decision, datetime]
"""A new job (Pending -> Queued) whose write waits for the admission cycle: its decision and queuedAt."""


class Driver:
    def __init__(
        self,
        cache: Cache,
        kube: Kube,
        settings: Settings,
        *,
        recorder: Recorder | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.cache = cache
        self.kube = kube
        self.settings = settings
        self.recorder = recorder or NoRecorder()
        self.clock = clock or Clock()
        self._limit = asyncio.Semaphore(WRITE_CONCURRENCY)
        self._retry: set[JobKey] = set()
        system_namespace = settings.system_namespace
        self.reachability = Reachability(kube, system_namespace=system_namespace, clock=self.clock)
        self.nodeloss = NodeLoss(
            cache,
            kube,
            reachability=self.reachability,
            system_namespace=system_namespace,
            tick_seconds=settings.scheduling.tick_seconds,
            clock=self.clock,
            limit=self._limit,
        )
        self.writer = LifecycleWriter(cache, kube, recorder=self.recorder)
        self.presets = PresetResolver(cache, kube, self.writer, system_namespace=system_namespace, clock=self.clock)
        self.splits = SplitCoordinator(cache, kube, self.writer, clock=self.clock)
        self.admission = Admission(
            cache, kube, self.writer, settings=settings, clock=self.clock, recorder=self.recorder
        )
        self.preemptor = Preemptor(kube, self.writer, clock=self.clock)
        self.queue_status = QueueStatusWriter(cache, kube, clock=self.clock)
        self._held: Counter[tuple[str, str]] = Counter()  # the cycle's slots per (queue, namespace)
        self.waiting = WaitingNotes(cache, self.writer, clock=self.clock)

    # ------------------------------------------------------------------------------- the driver

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
        self.reachability.reached()
        await self.cover_running_pods()
        tick = self.settings.scheduling.tick_seconds
        next_sweep = 0.0
        while not (stopped is not None and stopped):
            sweep = time.monotonic() >= next_sweep
            if sweep:
                next_sweep = time.monotonic() + tick
                if await self.reachability.observe():
                    await self.resync()
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

    async def resync(self) -> None:
        started = time.monotonic()
        self.cache.begin_resync()
        try:
            kept = await self.kube.list_all(system_namespace=self.settings.system_namespace, keep=self._keep)
        except BaseException:
            self.cache.abandon_resync()
            raise
        self.cache.replace_all(
            jobs=kept["jobs"],
            pods=kept["pods"],
            nodes=kept["nodes"],
            leases=kept["leases"],
            priority_values=dict(kept["priorityclasses"]),
            terminating=kept.get("namespaces", ()),
            queue_objects=kept.get("queues", ()),
        )
        log.info(
            "resync done",
            extra={
                "jobs": len(kept["jobs"]),
                "pods": len(kept["pods"]),
                "nodes": len(kept["nodes"]),
                "terminating_namespaces": len(self.cache.terminating),
                "seconds": round(time.monotonic() - started, 3),
            },
        )

    def _keep(self, kind: str, obj: dict[str, Any]) -> Any:
        """What the cache keeps of one listed object (None: nothing), made as each page arrives."""
        manages = self.settings.manages
        if kind == "jobs":
            job = job_record(obj)
            return job if manages(job.namespace) else None
        if kind == "pods":
            pod = pod_record(obj)
            return pod if pod is not None and manages(pod.namespace) else None
        if kind == "nodes":
            return node_record(obj)
        if kind == "leases":
            return lease_record(obj)
        if kind == "priorityclasses":
            return (obj["metadata"]["name"], int(obj.get("value", 0)))
        if kind == "namespaces":  # only those being deleted
            name = obj["metadata"]["name"]
            return name if manages(name) and namespace_terminating(obj) else None
        if kind == "queues":
            return queue_record(obj)
        raise ValueError(f"unknown kind {kind}")

    async def cover_running_pods(self) -> None:
        """The job NetworkPolicy in every namespace with unfinished job pods, once at start: pods started
        before an upgrade (or whose policy was deleted meanwhile) would otherwise wait for the next job
        pod of their namespace. A failure is logged; admission checks again before every new pod."""
        namespaces = {
            pod.namespace
            for pod in self.cache.pods.values()
            if pod.phase not in ("Succeeded", "Failed") and pod.namespace not in self.cache.terminating
        }
        for namespace in sorted(namespaces):
            try:
                await self.admission.network_policy.ensure(namespace)
            except Exception as exc:  # noqa: BLE001 -- the next pod's admission retries
                log.warning(
                    "cannot make the job NetworkPolicy", extra={"namespace": namespace, "error": str(exc)[:200]}
                )

    async def run_pass(self, *, sweep: bool) -> None:
        timings: dict[str, float] = {}
        t = time.monotonic()
        keys = self.cache.take_dirty()
        nodes_changed, self.cache.nodes_changed = self.cache.nodes_changed, False
        if sweep or nodes_changed:
            seen = set(keys)
            retry, self._retry = self._retry, set()
            keys += [k for k in [*retry, *self.sweep_keys(self.clock())] if k not in seen and not seen.add(k)]
        await self.presets.resolve(keys)  # before they are decided on: the preset's fields are part of the spec
        keys = await self.splits.coordinate(keys)  # split jobs run no pod: their children do (split_control.py)
        changed, arrivals = await self.reconcile_jobs(keys)
        timings["reconcile"] = time.monotonic() - t
        await self.queue_status.write_due()

        if not len(self.cache.queue) and not arrivals:  # nothing to place: no snapshot of every job
            if changed:
                log.info(
                    "scheduling pass",
                    extra={
                        "reconciled": len(keys),
                        "transitions": changed,
                        "queued": 0,
                        "reconcile_ms": round(timings["reconcile"] * 1000, 2),
                    },
                )
            return
        t = time.monotonic()
        now = self.clock()
        snapshot = scheduling.node_snapshot(
            self.cache.nodes.values(),
            self.cache.leases,
            self.cache.jobs.values(),
            now=now,
            default_slots=self.settings.scheduling.default_slots,
            pods=self.cache.pods.values(),
        )
        timings["snapshot"] = time.monotonic() - t

        t = time.monotonic()
        cycle = scheduling.schedule(
            self._admission_order(arrivals, now=now),
            snapshot,
            now=now,
            priority_values=self.cache.priority_values,
            queues=self.cache.queues,
            held=self._held,
            preemption=self.settings.scheduling.preemption,
            limit=ADMISSIONS_PER_PASS,
        )
        timings["nominate"] = time.monotonic() - t

        t = time.monotonic()
        arriving = {job.key: (decision, at) for job, decision, at in arrivals}
        placed = {a.job.key for a in cycle.assignments}
        await self._each(self.preemptor.preempt(p) for p in cycle.preemptions)
        admitted = await self._each(
            self._guard(a.job.key, self.admission.admit(a, queued=arriving.get(a.job.key))) for a in cycle.assignments
        )
        for assignment, done in zip(cycle.assignments, admitted, strict=True):
            queue = self.cache.queues.get(assignment.job.queue)
            if done and queue is not None and queue.fair_sharing:
                self.cache.usage.admitted(
                    queue.name, assignment.job.namespace, now=now, half_life=queue.half_life_seconds
                )
        waiting = [(job, d, at) for job, d, at in arrivals if job.key not in placed]
        if cycle.truncated:  # not looked at yet: they stay Pending and come first in the next pass
            self.cache.dirty = {**{job.key: None for job, _, _ in waiting}, **self.cache.dirty}
            waiting = []
        changed += sum(await self._each(self._guard(job.key, self.carry_out(job, d, at)) for job, d, at in waiting))
        timings["admit"] = time.monotonic() - t

        t = time.monotonic()
        noted = sum(await self._each(self.waiting.note(n) for n in self.waiting.due(cycle.waiting)))
        timings["note"] = time.monotonic() - t
        self.recorder.scheduling_pass(cycle, seconds=sum(timings.values()))
        if changed or cycle.assignments or cycle.preemptions or noted:
            log.info(
                "scheduling pass",
                extra={
                    "reconciled": len(keys),
                    "transitions": changed,
                    "queued": len(self.cache.queue),
                    "considered": cycle.considered,
                    "assigned": sum(admitted),
                    "preempted": len(cycle.preemptions),
                    "waiting_noted": noted,
                    "nodes": len(snapshot),
                    "free_slots": sum(max(0, n.free) for n in snapshot.values()),
                    **{f"{k}_ms": round(v * 1000, 2) for k, v in timings.items()},
                },
            )

    def _admission_order(self, arrivals: list[Arrival], *, now: datetime) -> Iterator[JobRecord]:
        """Queued jobs in the order a cycle admits them: the heap's order_key order, with the new arrivals
        merged in (in memory only: placed now, one status write carries both their Queued and Assigned
        transitions; the rest get their Queued write after the cycle), then each fair-sharing or aging
        queue's jobs rearranged (fairshare.arrange; `self._held` grows as the cycle admits)."""
        values, queues = self.cache.priority_values, self.cache.queues

        def key(job: JobRecord) -> scheduling.OrderKey:
            return scheduling.order_key(job, values, queues)

        provisional = sorted((replace(job, phase=Phase.QUEUED, queued_at=at) for job, _, at in arrivals), key=key)
        ordered = heapq.merge((self.cache.jobs[k] for k in self.cache.queue.ordered()), provisional, key=key)
        self._held = fairshare.held(self.cache.jobs.values(), lambda j: holds_slot(j.phase, j.paused_from))
        usage = self.cache.usage

        def share(queue: str, namespace: str) -> float:
            half_life = queues[queue].half_life_seconds
            return self._held[(queue, namespace)] + usage.of(queue, namespace, now=now, half_life=half_life)

        return fairshare.arrange(
            ordered, queues=queues, priority_of=lambda j: scheduling.priority_value(j, values), share=share, now=now
        )

    async def _guard(self, key: JobKey, coro: Any) -> Any:
        """A job whose write failed (5xx, timeout) is looked at again on the next tick, not at once;
        one whose namespace is being terminated is not looked at again."""
        try:
            return await coro
        except ApiException as exc:
            if not self.writer.refused_in(key[0], exc):
                self._retry.add(key)
            raise

    async def _each(self, coros: Iterable[Any]) -> list[Any]:
        async def limited(coro: Any) -> Any:
            async with self._limit:
                try:
                    return await coro
                except ApiException as exc:
                    log_refusal(log, "API write failed", exc, error=str(exc.reason))
                    return False

        return await asyncio.gather(*(limited(c) for c in coros))

    # ------------------------------------------------------------------------------ reconciling

    def sweep_keys(self, now: datetime) -> list[JobKey]:
        """Slot holders, which something may have happened to without an event of their own: their node's
        Lease expired, a timeout or the pod start timeout passed, an Assigned job has no pod (after a
        crash), or a finished pod waits for its job's result. As many as the cluster has slots."""
        return [k for k, j in self.cache.jobs.items() if j.phase in ACTIVE_PHASES]

    async def reconcile_jobs(self, keys: list[JobKey]) -> tuple[int, list[Arrival]]:
        """Carry out what `reconcile.decide` says for `keys`; returns the phase changes written and the
        new jobs (Pending -> Queued), whose write waits for the admission cycle."""
        decisions = []
        arrivals = []
        # kopf hands events of different objects over in no fixed order: stamp new jobs' queuedAt
        # in creation order, so FIFO means first created, first served.
        keys = sorted(keys, key=lambda k: j.arrival if (j := self.cache.jobs.get(k)) else ("", 0, ""))
        terminating = self.cache.terminating
        jobs = [job for key in keys if (job := self.cache.jobs.get(key)) is not None and key[0] not in terminating]
        now = self.clock()
        # Nodes the cache calls lost under a job that would be requeued for it: confirmed by a fresh read.
        # A job that changes during the reads is decided on its older record: its write then conflicts (409).
        nodeloss = self.nodeloss
        suspects = {
            j.node for j in jobs if j.node and reconcile.needs_live_node(j) and not nodeloss.node_alive(j.node, now)
        }
        held = await nodeloss.confirm_lost(suspects) if suspects else set()
        for job in jobs:
            now = self.clock()
            decision = reconcile.decide(
                job,
                self.cache.pods_of(job.key),
                node_alive=job.node in held or nodeloss.node_alive(job.node, now),
                now=now,
                backoff_base=self.settings.scheduling.backoff_base_seconds,
                backoff_cap=self.settings.scheduling.backoff_cap_seconds,
                start_timeout=self.settings.scheduling.pod_start_timeout_seconds or None,
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
        """Carry out one reconcile decision: the phase change (if any) through the lifecycle writer, then
        pod deletes, then a missing pod through admission. True when the phase changed."""
        changed = False
        if decision.target is not None:
            changed = await self.writer.transition(
                job,
                decision.target,
                reason=decision.reason,
                message=decision.message,
                now=now,
                extra=decision.extra,
                event_type=decision.event_type,
            )
            if not changed:
                return False  # stale: the newer object comes back through the watch
        elif job.phase and job.generation != job.observed_generation:
            await self.writer.write_status(job, {"observedGeneration": job.generation})
        for name, grace in decision.delete_pods:
            await self.kube.delete_pod(job.namespace, name, grace=grace)
        if decision.create_pod:
            await self.admission.create_pod(self.cache.jobs.get(job.key, job))
        return changed
