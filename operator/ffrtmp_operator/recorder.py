"""What the scheduler's shell reports to its metrics: one listener with three calls (a scheduling pass, an
admission, a phase change). `NoRecorder` ignores them (tests, metrics off); `MetricsRecorder` turns them
into OperatorMetrics observations, which is where the label and histogram rules live.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ffrtmp_api import Phase, Reason

from .metrics import OperatorMetrics
from .records import JobRecord
from .scheduling import Cycle

if TYPE_CHECKING:
    from .lifecycle_writer import Step


class Recorder(Protocol):
    def scheduling_pass(self, cycle: Cycle, *, seconds: float) -> None:
        """A pass that ran a scheduling cycle, `seconds` long in all."""

    def admission(self, job: JobRecord, *, placed: bool, encoder: str) -> None:
        """An admission's status write: placed, or lost to a conflict."""

    def transition(self, job: JobRecord, *, old: Phase, step: Step, body: Mapping[str, Any]) -> None:
        """A phase change written; `body` is the job as the API answered the write."""


class NoRecorder:
    def scheduling_pass(self, cycle: Cycle, *, seconds: float) -> None:
        pass

    def admission(self, job: JobRecord, *, placed: bool, encoder: str) -> None:
        pass

    def transition(self, job: JobRecord, *, old: Phase, step: Step, body: Mapping[str, Any]) -> None:
        pass


class MetricsRecorder:
    def __init__(self, metrics: OperatorMetrics) -> None:
        self.metrics = metrics

    def scheduling_pass(self, cycle: Cycle, *, seconds: float) -> None:
        self.metrics.record_cycle(seconds)
        self.metrics.record_scheduling_attempt("scheduled", len(cycle.assignments))
        self.metrics.record_scheduling_attempt("preempting", len(cycle.preemptions))
        self.metrics.record_scheduling_attempt("unschedulable", cycle.considered - len(cycle.assignments))

    def admission(self, job: JobRecord, *, placed: bool, encoder: str) -> None:
        self.metrics.record_admission("admitted" if placed else "conflict", queue=job.queue, encoder=encoder)

    def transition(self, job: JobRecord, *, old: Phase, step: Step, body: Mapping[str, Any]) -> None:
        target, now = step.target, step.now
        # A Warning back to Queued or to Failed ends a run in failure; RetriesExhausted only sums up
        # failures already counted.
        ends_run = step.event_type == "Warning" and target in (Phase.QUEUED, Phase.FAILED)
        # A job admitted in the pass that queued it leaves Pending for a node at once: no wait.
        queued_at = job.queued_at or (now if old in (Phase.QUEUED, Phase.PENDING) else None)
        self.metrics.record_transition(
            old=old.value,
            new=target.value,
            queue=job.queue,
            reason=step.reason,
            failure=step.reason if ends_run and step.reason != Reason.RETRIES_EXHAUSTED else None,
            waited_s=(now - queued_at).total_seconds() if queued_at and target == Phase.ASSIGNED else None,
            ran_s=(now - job.started_at).total_seconds() if job.started_at else None,
        )
        if target == Phase.COMPLETED:
            self.metrics.record_result((body.get("status") or {}).get("result"), encoder=job.encoder)
