"""The job state machine: allowed transitions, the status patch of a change, failure classification
and retry with backoff. Pure, no cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ffrtmp_api as api
import pytest
from ffrtmp_api import Phase, Reason
from ffrtmp_operator.lifecycle import (
    Failure,
    InvalidTransition,
    after_failure,
    backoff_seconds,
    can_transition,
    classify_failure,
    holds_slot,
    transition,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
P = Phase


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (None, P.QUEUED, True),
        (P.PENDING, P.QUEUED, True),
        (P.QUEUED, P.ASSIGNED, True),
        (P.ASSIGNED, P.PROCESSING, True),
        (P.PROCESSING, P.COMPLETED, True),
        (P.PROCESSING, P.FAILED, True),
        (P.QUEUED, P.PAUSED, True),
        (P.PROCESSING, P.PAUSED, True),
        (P.ASSIGNED, P.PAUSED, True),
        (P.PAUSED, P.PROCESSING, True),
        (P.PROCESSING, P.QUEUED, True),  # retry
        (P.PENDING, P.CANCELED, True),
        (P.QUEUED, P.CANCELED, True),
        (P.PAUSED, P.CANCELED, True),
        (P.PROCESSING, P.CANCELED, True),
        (P.QUEUED, P.PROCESSING, False),  # must be placed first
        (P.QUEUED, P.COMPLETED, False),
        (P.PENDING, P.ASSIGNED, False),
        (P.COMPLETED, P.QUEUED, False),
        (P.FAILED, P.QUEUED, False),
        (P.CANCELED, P.QUEUED, False),
        (P.COMPLETED, P.CANCELED, False),
    ],
)
def test_given_phase_when_moving_then_only_design_transitions_are_allowed(current, target, allowed):
    assert can_transition(current, target) is allowed


def test_given_a_new_job_when_queued_then_patch_stamps_queued_at_transition_and_conditions():
    patch = transition({}, P.QUEUED, reason="Created", message="queued in default", now=NOW, generation=1)
    assert patch["phase"] == "Queued"
    assert patch["queuedAt"] == "2026-01-02T03:04:05.678Z"
    assert patch["observedGeneration"] == 1
    assert patch["transitions"] == [
        {"phase": "Queued", "at": "2026-01-02T03:04:05.678Z", "reason": "Created", "message": "queued in default"}
    ]
    assert [c["type"] for c in patch["conditions"]] == list(api.CONDITION_TYPES)
    assert all(c["status"] == "False" for c in patch["conditions"])


def test_given_a_terminal_job_when_moving_then_the_transition_is_refused():
    with pytest.raises(InvalidTransition):
        transition({"phase": "Completed"}, P.QUEUED, reason="x", now=NOW)


def test_given_a_retried_job_when_queued_again_then_queued_at_keeps_its_place_and_placement_is_cleared():
    status = {
        "phase": "Processing",
        "queuedAt": "2026-01-01T00:00:00.000Z",
        "node": "n1",
        "pod": "j-1",
        "encoder": "libx264",
    }
    patch = transition(status, P.QUEUED, reason="EncoderError", now=NOW)
    assert "queuedAt" not in patch
    assert patch["node"] is None and patch["pod"] is None and patch["encoder"] is None


@pytest.mark.parametrize(
    ("target", "stamp_field"),
    [(P.PROCESSING, "startedAt"), (P.COMPLETED, "completedAt"), (P.FAILED, "completedAt"), (P.CANCELED, "completedAt")],
)
def test_given_a_running_job_when_it_starts_or_ends_then_the_matching_timestamp_is_set(target, stamp_field):
    patch = transition({"phase": "Assigned"}, target, reason="r", now=NOW)
    assert patch[stamp_field] == "2026-01-02T03:04:05.678Z"


def test_given_a_paused_processing_job_when_resumed_then_started_at_is_kept():
    patch = transition({"phase": "Paused", "pausedFrom": "Processing"}, P.PROCESSING, reason="ResumedByUser", now=NOW)
    assert "startedAt" not in patch
    assert patch["pausedFrom"] is None


@pytest.mark.parametrize(
    ("current", "paused_from"), [(P.PENDING, "Queued"), (P.QUEUED, "Queued"), (P.PROCESSING, "Processing")]
)
def test_given_a_job_when_paused_then_paused_from_says_where_it_returns(current, paused_from):
    patch = transition({"phase": current.value}, P.PAUSED, reason="PausedByUser", now=NOW)
    assert patch["pausedFrom"] == paused_from
    assert {c["type"]: c["status"] for c in patch["conditions"]}["Paused"] == "True"


def test_given_many_changes_when_transitions_grow_then_only_the_newest_max_are_kept():
    status = {
        "phase": "Queued",
        "transitions": [{"phase": "Queued", "at": f"t{i}"} for i in range(api.MAX_TRANSITIONS)],
    }
    patch = transition(status, P.PAUSED, reason="PausedByUser", now=NOW)
    assert len(patch["transitions"]) == api.MAX_TRANSITIONS
    assert patch["transitions"][0]["at"] == "t1"
    assert patch["transitions"][-1]["phase"] == "Paused"


def test_given_conditions_when_a_status_does_not_flip_then_last_transition_time_stays():
    first = transition({}, P.QUEUED, reason="Created", now=NOW)
    later = NOW + timedelta(minutes=5)
    second = transition(
        {"phase": "Queued", "conditions": first["conditions"]}, P.ASSIGNED, reason="Admitted", now=later
    )
    by_type = {c["type"]: c for c in second["conditions"]}
    assert by_type["Scheduled"]["status"] == "True"
    assert by_type["Scheduled"]["lastTransitionTime"] == "2026-01-02T03:09:05.678Z"
    assert by_type["Complete"]["lastTransitionTime"] == "2026-01-02T03:04:05.678Z"


@pytest.mark.parametrize(
    ("phase", "expected_true"),
    [
        (P.ASSIGNED, {"Scheduled"}),
        (P.PROCESSING, {"Scheduled", "Running"}),
        (P.COMPLETED, {"Scheduled", "Complete"}),
        (P.FAILED, {"Failed"}),
        (P.CANCELED, {"Canceled"}),
    ],
)
def test_given_a_phase_when_conditions_are_computed_then_the_standard_ones_are_true(phase, expected_true):
    before = {P.ASSIGNED: "Queued", P.PROCESSING: "Assigned"}.get(phase, "Processing")
    patch = transition({"phase": before}, phase, reason="r", now=NOW)
    assert {c["type"] for c in patch["conditions"] if c["status"] == "True"} == expected_true


@pytest.mark.parametrize(
    ("phase", "paused_from", "holds"),
    [
        (P.ASSIGNED, None, True),
        (P.PROCESSING, None, True),
        (P.PAUSED, P.PROCESSING, True),
        (P.PAUSED, P.QUEUED, False),
        (P.QUEUED, None, False),
        (P.COMPLETED, None, False),
    ],
)
def test_given_a_phase_when_counting_slots_then_running_and_sigstopped_jobs_hold_one(phase, paused_from, holds):
    assert holds_slot(phase, paused_from) is holds


@pytest.mark.parametrize(
    ("exit_code", "message", "reason", "text"),
    [
        (10, None, Reason.INPUT_ERROR, ""),
        (11, None, Reason.ENCODER_ERROR, ""),
        (12, "", Reason.OUTPUT_ERROR, ""),
        (13, None, Reason.TIMEOUT, ""),
        (1, '{"reason": "EncoderError", "message": "nvenc: no device"}', Reason.ENCODER_ERROR, "nvenc: no device"),
        (11, '{"reason": "Nonsense", "message": "m"}', Reason.ENCODER_ERROR, "m"),
        (137, None, Reason.POD_ERROR, "runner exited with code 137"),
        (None, None, Reason.POD_ERROR, "pod failed"),
        (2, "Traceback: boom", Reason.POD_ERROR, "Traceback: boom"),
    ],
)
def test_given_a_failed_pod_when_classified_then_message_json_wins_over_exit_code(exit_code, message, reason, text):
    assert classify_failure(exit_code=exit_code, termination_message=message) == Failure(reason, text)


@pytest.mark.parametrize(("failures", "seconds"), [(1, 10), (2, 20), (3, 40), (6, 300), (20, 300)])
def test_given_failures_when_backing_off_then_delay_doubles_up_to_the_cap(failures, seconds):
    assert backoff_seconds(failures, base=10, cap=300) == seconds


@pytest.mark.parametrize(
    ("reason", "failures", "max_retries", "phase", "outcome_reason"),
    [
        (Reason.ENCODER_ERROR, 0, 3, P.QUEUED, "EncoderError"),
        (Reason.ENCODER_ERROR, 2, 3, P.QUEUED, "EncoderError"),
        (Reason.ENCODER_ERROR, 3, 3, P.FAILED, "RetriesExhausted"),
        (Reason.POD_ERROR, 0, 0, P.FAILED, "RetriesExhausted"),
        (Reason.INPUT_ERROR, 0, 3, P.FAILED, "InputError"),
        (Reason.TIMEOUT, 0, 3, P.FAILED, "Timeout"),
    ],
)
def test_given_a_failure_when_deciding_then_retry_until_max_retries_unless_final(
    reason, failures, max_retries, phase, outcome_reason
):
    outcome = after_failure(Failure(reason, "msg"), failures=failures, max_retries=max_retries, now=NOW, base=1, cap=8)
    assert (outcome.phase, outcome.reason) == (phase, outcome_reason)
    assert (outcome.retry_after is not None) == (phase == P.QUEUED)
    assert outcome.counters == {"failures": failures + 1}


@pytest.mark.parametrize("reason", [Reason.NODE_LOST, Reason.PREEMPTED, Reason.EVICTED, Reason.NODE_SHUTDOWN])
def test_given_a_disruption_with_no_retries_left_when_deciding_then_it_is_queued_at_once_without_using_one(reason):
    outcome = after_failure(
        Failure(reason, "node gone"), failures=5, disruptions=2, max_retries=0, now=NOW, base=1, cap=8
    )
    assert (outcome.phase, outcome.reason, outcome.retry_after) == (P.QUEUED, reason.value, None)
    assert outcome.counters == {"disruptions": 3}  # status.failures and the backoff are left alone
    assert outcome.status() == {"disruptions": 3}


def test_given_retries_exhausted_when_failing_then_the_message_names_the_last_reason():
    outcome = after_failure(
        Failure(Reason.ENCODER_ERROR, "x264 crashed"), failures=2, max_retries=2, now=NOW, base=1, cap=8
    )
    assert outcome.message == "3 failed run(s), last: EncoderError: x264 crashed"


def test_given_a_retry_when_scheduled_then_retry_after_is_now_plus_backoff():
    outcome = after_failure(Failure(Reason.ENCODER_ERROR, ""), failures=1, max_retries=5, now=NOW, base=1, cap=8)
    assert outcome.retry_after == NOW + timedelta(seconds=2)
    assert outcome.status()["retryAfter"] == "2026-01-02T03:04:07.678Z"


def test_given_many_stamps_within_one_millisecond_when_clocked_then_each_stamp_is_distinct_and_ordered():
    from ffrtmp_operator.clock import Clock
    from ffrtmp_operator.lifecycle import stamp

    clock = Clock(lambda: NOW)
    stamps = [stamp(clock()) for _ in range(3)]
    assert stamps == ["2026-01-02T03:04:05.678Z", "2026-01-02T03:04:05.679Z", "2026-01-02T03:04:05.680Z"]


def _walk(*steps: tuple[Phase, float]) -> dict:
    """Apply transitions at NOW + seconds, returning the status as the API would hold it."""
    status: dict = {}
    for target, at in steps:
        patch = transition(status, target, reason="r", now=NOW + timedelta(seconds=at))
        status = {k: v for k, v in {**status, **patch}.items() if v is not None}
    return status


def test_given_a_run_paused_for_an_hour_when_the_clock_is_read_then_only_time_on_the_node_counts():
    status = _walk((P.QUEUED, 0), (P.ASSIGNED, 10), (P.PROCESSING, 12), (P.PAUSED, 40))
    assert status["activeSeconds"] == 30 and "activeSince" not in status  # Assigned 10 s .. paused 40 s
    status = _walk((P.QUEUED, 0), (P.ASSIGNED, 10), (P.PROCESSING, 12), (P.PAUSED, 40), (P.PROCESSING, 3640))
    assert status["activeSeconds"] == 30 and status["activeSince"] == stamp_at(3640)  # a fresh stretch
    status = _walk(
        (P.QUEUED, 0), (P.ASSIGNED, 10), (P.PROCESSING, 12), (P.PAUSED, 40), (P.PROCESSING, 3640), (P.COMPLETED, 3650)
    )
    assert status["activeSeconds"] == 40


def test_given_a_run_that_ends_when_queued_again_then_the_next_run_starts_at_zero_with_no_progress():
    status = _walk((P.QUEUED, 0), (P.ASSIGNED, 10), (P.PROCESSING, 12))
    patch = transition({**status, "progress": {"percent": 40}}, P.QUEUED, reason="NodeLost", now=NOW)
    assert patch["progress"] is None and patch["result"] is None
    assert patch["activeSeconds"] is None and patch["activeSince"] is None
    assert status["assignedAt"] == stamp_at(10)  # stays: input/output/queue are fixed from then on


def stamp_at(seconds: float) -> str:
    from ffrtmp_operator.lifecycle import stamp

    return stamp(NOW + timedelta(seconds=seconds))


def test_given_a_queued_job_when_it_waits_then_scheduled_says_why_once_and_keeps_its_transition_time():
    from ffrtmp_operator.lifecycle import waiting

    status = _walk((P.QUEUED, 0))
    patch = waiting(status, reason="QueuePaused", message="queue batch is paused", now=NOW + timedelta(seconds=5))
    scheduled = {c["type"]: c for c in patch["conditions"]}["Scheduled"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "QueuePaused")
    assert scheduled["lastTransitionTime"] == stamp_at(0)  # still False since it was queued: no flip
    assert [c["type"] for c in patch["conditions"]] == list(api.CONDITION_TYPES)
    status = {**status, **patch}
    assert waiting(status, reason="QueuePaused", message="queue batch is paused", now=NOW) is None  # no news
