"""The TranscodeJob state machine: allowed phase changes, the status patch a change writes (with the run's
deadline clock, which stops while paused), how a failed run is classified and retried, and how a
disruption is requeued without using up a retry; also the Scheduled condition a waiting job shows.

Pure: plain dicts in, plain dicts out, the clock injected as `now`. The operator merges the patch with
the placement fields it owns (node, pod, attempts, encoder) and writes it in one status PATCH.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import ffrtmp_api as api
from ffrtmp_api import RUNNING_PHASES, Phase, Reason, holds_slot, parse_time, stamp  # noqa: F401  (re-exported)

P = Phase
# DESIGN.md lifecycle. Queued is also re-entered from a run (retry, NodeLost, Preempted) and from
# Paused (resume); Failed is reachable from anywhere non-terminal because a broken spec can surface late.
ALLOWED: dict[Phase, frozenset[Phase]] = {
    P.PENDING: frozenset({P.QUEUED, P.PAUSED, P.CANCELED, P.FAILED}),
    P.QUEUED: frozenset({P.ASSIGNED, P.PAUSED, P.CANCELED, P.FAILED}),
    P.ASSIGNED: frozenset({P.PROCESSING, P.QUEUED, P.PAUSED, P.COMPLETED, P.FAILED, P.CANCELED}),
    P.PROCESSING: frozenset({P.COMPLETED, P.FAILED, P.QUEUED, P.PAUSED, P.CANCELED}),
    P.PAUSED: frozenset({P.QUEUED, P.ASSIGNED, P.PROCESSING, P.COMPLETED, P.FAILED, P.CANCELED}),
    P.COMPLETED: frozenset(),
    P.FAILED: frozenset(),
    P.CANCELED: frozenset(),
}


class InvalidTransition(ValueError):
    """A phase change the state machine does not allow (a bug or a stale cache; never written)."""


def can_transition(current: Phase | None, target: Phase) -> bool:
    return target in ALLOWED[current or P.PENDING]


def transition(
    status: Mapping[str, Any],
    target: Phase,
    *,
    reason: str,
    message: str = "",
    now: datetime,
    generation: int | None = None,
) -> dict[str, Any]:
    """The status merge patch that moves a job from `status` to `target` (None values delete fields).

    Stamps queuedAt (first time only: a retried or resumed job keeps its place in FIFO order),
    startedAt (each new run), completedAt (terminal), appends a bounded transitions entry and recomputes
    the standard conditions. Raises InvalidTransition for a change ALLOWED does not list.
    """
    current = Phase(status["phase"]) if status.get("phase") else P.PENDING
    if not can_transition(current, target):
        raise InvalidTransition(f"{current} -> {target}")
    at = stamp(now)
    patch: dict[str, Any] = {"phase": target.value, "reason": reason, "message": message}
    patch.update(_clock(status, current, target, now=now, at=at))
    if generation is not None:
        patch["observedGeneration"] = generation
    if target == P.QUEUED and not status.get("queuedAt"):
        patch["queuedAt"] = at
    if target == P.PROCESSING and current != P.PAUSED:
        patch["startedAt"] = at
    if target in api.TERMINAL_PHASES:
        patch["completedAt"] = at
        patch["retryAfter"] = None
    if target == P.PAUSED:
        # A job created paused has never been queued: it returns to Queued on resume.
        patch["pausedFrom"] = (P.QUEUED if current == P.PENDING else current).value
    elif status.get("pausedFrom"):
        patch["pausedFrom"] = None
    if target == P.QUEUED:
        # Back in the queue: the old placement no longer holds a slot, and the next run starts from zero.
        patch.update(node=None, pod=None, encoder=None, progress=None, result=None)
    if target == P.ASSIGNED:
        patch["retryAfter"] = None
        if not status.get("assignedAt"):
            patch["assignedAt"] = at
    if target == P.PROCESSING:
        patch["failedCreates"] = None  # the pod was created and runs: FailedCreate backoff starts over
    entry = {"phase": target.value, "at": at, "reason": reason[:64]}
    if message:
        entry["message"] = message[:1024]
    patch["transitions"] = [*status.get("transitions", []), entry][-api.MAX_TRANSITIONS :]
    paused_from = Phase(patch["pausedFrom"]) if patch.get("pausedFrom") else None
    patch["conditions"] = conditions(
        status.get("conditions", []),
        phase=target,
        paused_from=paused_from,
        reason=reason,
        message=message,
        at=at,
        generation=generation,
    )
    return patch


def _clock(status: Mapping[str, Any], current: Phase, target: Phase, *, now: datetime, at: str) -> dict[str, Any]:
    """The run's deadline clock (Kubernetes Jobs' activeDeadlineSeconds, minus time suspended): it runs
    while the job holds a node and is not paused (Assigned, Processing). Leaving those phases adds the
    stretch to activeSeconds; entering them starts a new stretch; back in the queue the next run starts
    at zero."""
    if target == P.QUEUED:
        return {"activeSince": None, "activeSeconds": None}
    running_before, running_after = current in RUNNING_PHASES, target in RUNNING_PHASES
    if running_before and not running_after:
        return {"activeSince": None, "activeSeconds": round(_active(status, now), 3)}
    if running_after and not running_before:
        return {"activeSince": at}
    return {}


def _active(status: Mapping[str, Any], now: datetime) -> float:
    try:
        held = float(status.get("activeSeconds") or 0.0)
    except (TypeError, ValueError):
        held = 0.0
    since = parse_time(status.get("activeSince"))
    return held + max(0.0, (now - since).total_seconds()) if since else held


def active_seconds(*, since: datetime | None, seconds: float, now: datetime) -> float:
    """How long the current run has held a node, time paused not counted (what spec.timeoutSeconds limits)."""
    return seconds + max(0.0, (now - since).total_seconds()) if since else seconds


def waiting(
    status: Mapping[str, Any], *, reason: str, message: str, now: datetime, generation: int | None = None
) -> dict[str, Any] | None:
    """The status patch that says why a queued job waits: the Scheduled condition (False) with `reason`
    and `message`, as kube-scheduler says it on a pod's PodScheduled condition; None when it says so already."""
    previous = [c for c in status.get("conditions", []) if isinstance(c, Mapping)]
    scheduled = next((c for c in previous if c.get("type") == "Scheduled"), None)
    reason, message = reason[:64], message[:1024]
    if scheduled is not None and (scheduled.get("reason"), scheduled.get("message")) == (reason, message):
        return None
    was_false = scheduled is not None and scheduled.get("status") == "False"
    since = scheduled.get("lastTransitionTime") if was_false and scheduled else None  # no flip: time stays
    entry = {
        "type": "Scheduled",
        "status": "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or stamp(now),
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    others = [dict(c) for c in previous if c.get("type") != "Scheduled"]
    order = {kind: i for i, kind in enumerate(api.CONDITION_TYPES)}
    return {"conditions": sorted([entry, *others], key=lambda c: order.get(c.get("type"), len(order)))}


def _condition_states(phase: Phase, paused_from: Phase | None) -> dict[str, bool]:
    placed = phase in (P.ASSIGNED, P.PROCESSING, P.COMPLETED) or (phase == P.PAUSED and paused_from in RUNNING_PHASES)
    return {
        "Scheduled": placed,
        "Running": phase == P.PROCESSING,
        "Paused": phase == P.PAUSED,
        "Complete": phase == P.COMPLETED,
        "Failed": phase == P.FAILED,
        "Canceled": phase == P.CANCELED,
    }


def conditions(
    previous: list[Mapping[str, Any]],
    *,
    phase: Phase,
    paused_from: Phase | None,
    reason: str,
    message: str,
    at: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """All api.CONDITION_TYPES for `phase`. lastTransitionTime moves only when a status flips (the
    Kubernetes convention `kubectl wait` and dashboards rely on); reason/message follow the change."""
    old = {c.get("type"): c for c in previous if isinstance(c, Mapping)}
    states = _condition_states(phase, paused_from)
    result = []
    for kind in api.CONDITION_TYPES:
        status = "True" if states[kind] else "False"
        before = old.get(kind)
        flipped = before is None or before.get("status") != status
        entry = {
            "type": kind,
            "status": status,
            "reason": reason[:64] if flipped or status == "True" else (before or {}).get("reason") or reason[:64],
            "message": (message if flipped or status == "True" else (before or {}).get("message", ""))[:1024],
            "lastTransitionTime": at if flipped else (before or {}).get("lastTransitionTime", at),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        result.append(entry)
    return result


# ------------------------------------------------------------------------------------------ failures


class Failure(NamedTuple):
    reason: Reason
    message: str


_REASON_BY_EXIT_CODE = {code: Reason(name) for name, code in api.RUNNER_EXIT_CODES.items()}
_REASONS = {r.value: r for r in Reason}


def classify_failure(*, exit_code: int | None, termination_message: str | None) -> Failure:
    """Why a job pod failed: the runner's JSON termination message {"reason", "message"} when it wrote
    one, else its exit code (api.RUNNER_EXIT_CODES), else PodError (killed, OOM, image trouble ...)."""
    reason = _REASON_BY_EXIT_CODE.get(exit_code) if exit_code is not None else None
    message = (termination_message or "").strip()
    try:
        parsed = json.loads(message) if message.startswith("{") else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        reason = _REASONS.get(str(parsed.get("reason")), reason)
        message = str(parsed.get("message") or "")
    if reason is None:
        reason = Reason.POD_ERROR
        if not message:
            message = f"runner exited with code {exit_code}" if exit_code is not None else "pod failed"
    return Failure(reason, message[:2048])


class Outcome(NamedTuple):
    """Where a failed or disrupted run goes: Queued (with a backoff for failures), or Failed."""

    phase: Phase
    reason: str
    message: str
    retry_after: datetime | None
    counters: dict[str, int] = {}
    """Status counters the change moves: failures (against maxRetries) or disruptions."""

    def status(self) -> dict[str, Any]:
        """The status fields beside the phase change: the counters and retryAfter."""
        extra: dict[str, Any] = dict(self.counters)
        if self.retry_after is not None:
            extra["retryAfter"] = stamp(self.retry_after)
        return extra


def backoff_seconds(failures: int, *, base: float, cap: float) -> float:
    """Exponential: base after the first failure, doubling per failure, at most cap."""
    return min(cap, base * 2 ** max(0, failures - 1))


def is_disruption(reason: str) -> bool:
    return reason in api.DISRUPTION_REASONS


def after_failure(
    failure: Failure,
    *,
    failures: int,
    disruptions: int = 0,
    max_retries: int,
    now: datetime,
    base: float,
    cap: float,
) -> Outcome:
    """Retry `failure` (failures = runs that failed and counted so far) or give up.

    A disruption (api.DISRUPTION_REASONS: the node, a preemption or an eviction ended the run, not the
    job) is queued again at once and counts only in status.disruptions, as a Kubernetes Job's pod
    failure policy Ignore does for DisruptionTarget. Final reasons (api.FINAL_FAILURE_REASONS) fail at
    once; others retry with backoff until failures == maxRetries, then the job fails with
    RetriesExhausted and the last reason in the message.
    """
    text = f"{failure.reason.value}: {failure.message}" if failure.message else failure.reason.value
    if is_disruption(failure.reason):
        return Outcome(
            P.QUEUED,
            failure.reason.value,
            f"{text}; queued again (a disruption: no retry used)",
            None,
            {"disruptions": disruptions + 1},
        )
    counted = {"failures": failures + 1}
    if failure.reason in api.FINAL_FAILURE_REASONS:
        return Outcome(P.FAILED, failure.reason.value, failure.message, None, counted)
    if failures >= max_retries:
        summary = f"{failures + 1} failed run(s), last: {text}"
        return Outcome(P.FAILED, Reason.RETRIES_EXHAUSTED.value, summary, None, counted)
    delay = backoff_seconds(failures + 1, base=base, cap=cap)
    return Outcome(
        P.QUEUED, failure.reason.value, f"{text}; retry in {delay:g}s", now + timedelta(seconds=delay), counted
    )
