"""Preemption: carry out a cycle's decision that a queued job takes a running job's slot. The victim goes
back to Queued as a disruption (no retry used, no backoff; its message and a Warning Event say by whom),
then its pod is deleted; the preemptor is admitted by a later cycle, once that pod is gone (the snapshot
counts its slot until then). Which job is the victim is victims.py's (pure) choice.
"""

from __future__ import annotations

from ffrtmp_api import Reason

from . import lifecycle, scheduling
from .clock import Clock
from .kube import Kube
from .lifecycle_writer import LifecycleWriter


class Preemptor:
    def __init__(self, kube: Kube, writer: LifecycleWriter, *, clock: Clock) -> None:
        self.kube = kube
        self.writer = writer
        self.clock = clock

    async def preempt(self, preemption: scheduling.Preemption) -> bool:
        """Requeue the victim, then delete its pod; False when the victim changed meanwhile (conflict)."""
        victim, by = preemption.victim, preemption.for_job
        now = self.clock()
        failure = lifecycle.Failure(
            Reason.PREEMPTED, f"preempted on {preemption.node} by {by.queue} job {by.namespace}/{by.name}"
        )
        outcome = lifecycle.after_failure(
            failure,
            failures=victim.failures,
            disruptions=victim.disruptions,
            max_retries=victim.max_retries,
            now=now,
            base=0,
            cap=0,
        )
        done = await self.writer.transition(
            victim,
            outcome.phase,
            reason=outcome.reason,
            message=outcome.message,
            now=now,
            extra=outcome.status(),
            event_type="Warning",
        )
        if done and victim.pod:
            await self.kube.delete_pod(victim.namespace, victim.pod)
        return done
