"""Whether this runner is still its job's current run. The operator may give a run up while its runner
goes on (the node was declared lost in a network partition, the job was preempted or requeued); that
runner must neither keep encoding nor rename its output over the newer run's. So the runner follows its
job's status on the watch it already holds and stops once another run took over, and reads the job once
more right before it commits its output, treating a lost run as a stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import ffrtmp_api as api

log = logging.getLogger("ffrtmp.runner")
# Phases in which a run may hold its job: its own Assigned/Processing, or paused from them.
_HOLDING = frozenset({api.Phase.ASSIGNED, api.Phase.PROCESSING, api.Phase.PAUSED})


class _Jobs(Protocol):
    def get(self) -> dict[str, Any]: ...


def superseded(job: Mapping[str, Any], plan: api.ExecutionPlan) -> str | None:
    """Why the run of `plan` is no longer `job`'s current run; None while it is."""
    meta, status = job.get("metadata") or {}, job.get("status") or {}
    if meta.get("uid") and meta["uid"] != plan.jobUid:
        return "the job was deleted and created again"
    if not status.get("phase"):
        return None  # no operator ever wrote it (a runner started by hand): nothing else can run it
    if status.get("phase") not in _HOLDING:
        return f"the job is {status.get('phase') or 'new'} now"
    if status.get("attempts") != plan.attempt:
        return f"the job is on run {status.get('attempts')} now, this is run {plan.attempt}"
    return None


def follower(plan: api.ExecutionPlan, stop: Callable[[], None]) -> Callable[[Mapping[str, Any]], None]:
    """A watch callback that calls `stop` once the job shows that another run took over."""

    def follow(job: Mapping[str, Any]) -> None:
        why = superseded(job, plan)
        if why is not None:
            log.warning("this run is no longer the job's current one (%s): stopping", why)
            stop()

    return follow


def still_current(
    jobs: _Jobs, plan: api.ExecutionPlan, *, patience_seconds: float = 60.0, sleep: Callable[[float], None] = time.sleep
) -> bool:
    """Read the job before committing output: True only when this run is still its current one. An API
    that does not answer within `patience_seconds` counts as lost: the operator may have moved on meanwhile,
    and a retried run is better than two runs' output over each other."""
    deadline = time.monotonic() + patience_seconds
    delay = 0.5
    while True:
        try:
            job = jobs.get()
        except Exception as exc:  # noqa: BLE001 - 404 (deleted), 5xx, a reset connection: try again, then give up
            if getattr(exc, "status", None) == 404 or time.monotonic() + delay > deadline:
                log.warning("cannot confirm this run is current (%s): output not committed", exc)
                return False
            sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        why = superseded(job, plan)
        if why is not None:
            log.warning("this run is no longer the job's current one (%s): output not committed", why)
        return why is None
