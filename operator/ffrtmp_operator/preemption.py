"""Preemption: carry out a cycle's decision that a live job takes a running batch job's slot. The victim
goes back to Queued (a Warning Event says by whom), then its pod is deleted; which job is the victim is
scheduling.py's (pure) choice.
"""

from __future__ import annotations

from ffrtmp_api import Phase, Reason
from . import scheduling
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
        victim = preemption.victim
        message = f"preempted on {preemption.node} by live job {preemption.for_job.namespace}/{preemption.for_job.name}"
        done = await self.writer.transition(
            victim, Phase.QUEUED, reason=Reason.PREEMPTED.value, message=message, now=self.clock(),
            event_type="Warning",
        )  # fmt: skip
        if done and victim.pod:
            await self.kube.delete_pod(victim.namespace, victim.pod)
        return done
