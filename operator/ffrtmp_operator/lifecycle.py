"""The TranscodeJob state machine: allowed phase changes, the status patch a change writes, and how a
failed run is classified and retried.

Pure: plain dicts in, plain dicts out, the clock injected as `now`. The operator merges the patch with
the placement fields it owns (node, pod, attempts, encoder) and writes it in one status PATCH.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
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
        # Back in the queue: the old placement no longer holds a slot.
        patch.update(node=None, pod=None, encoder=None)
    if target == P.ASSIGNED:
        patch["retryAfter"] = None
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
            "lastTransitionTime": at if flipped else before.get("lastTransitionTime", at),
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
    """Where a failed run goes: Queued with a backoff, or Failed."""

    phase: Phase
    reason: str
    message: str
    retry_after: datetime | None


def backoff_seconds(attempts: int, *, base: float, cap: float) -> float:
    """Exponential: base after the first run, doubling per run, at most cap."""
    return min(cap, base * 2 ** max(0, attempts - 1))


def after_failure(
    failure: Failure, *, attempts: int, max_retries: int, now: datetime, base: float, cap: float
) -> Outcome:
    """Retry `failure` (attempts = runs started so far) or give up.

    Final reasons (api.FINAL_FAILURE_REASONS) fail at once; others retry until attempts - 1 == maxRetries,
    then the job fails with RetriesExhausted and the last reason in the message.
    """
    if failure.reason in api.FINAL_FAILURE_REASONS:
        return Outcome(P.FAILED, failure.reason.value, failure.message, None)
    if attempts - 1 >= max_retries:
        text = f"{attempts} attempt(s), last: {failure.reason.value}"
        if failure.message:
            text += f": {failure.message}"
        return Outcome(P.FAILED, Reason.RETRIES_EXHAUSTED.value, text, None)
    delay = backoff_seconds(attempts, base=base, cap=cap)
    text = f"{failure.reason.value}: {failure.message}" if failure.message else failure.reason.value
    return Outcome(P.QUEUED, failure.reason.value, f"{text}; retry in {delay:g}s", now + timedelta(seconds=delay))
