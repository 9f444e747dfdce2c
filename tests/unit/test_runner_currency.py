"""The runner's check that it is still its job's current run (agent/ffrtmp_agent/runner/currency.py):
before it commits output, and on every job event it sees."""

from __future__ import annotations

import ffrtmp_api as api
import pytest
from ffrtmp_agent.runner import currency

PLAN = api.ExecutionPlan.model_construct(namespace="ns", job="j", jobUid="u1", attempt=2)


def job(phase: str | None = "Processing", *, attempts: int = 2, uid: str = "u1") -> dict:
    status = {"phase": phase, "attempts": attempts} if phase else {}
    return {"metadata": {"uid": uid}, "status": status}


@pytest.mark.parametrize(
    ("the_job", "current"),
    [
        (job("Processing"), True),
        (job("Assigned"), True),
        (job("Paused"), True),
        (job(None), True),  # no operator wrote it: a runner started by hand
        (job("Queued", attempts=2), False),  # the node was declared lost: requeued
        (job("Processing", attempts=3), False),  # a newer run took over
        (job("Processing", uid="u2"), False),  # deleted and created again
        (job("Canceled"), False),
    ],
)
def test_given_the_job_as_read_when_checking_then_only_its_current_run_may_commit(the_job, current):
    assert (currency.superseded(the_job, PLAN) is None) == current


class Jobs:
    def __init__(self, *answers):
        self.answers = list(answers)

    def get(self):
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_given_a_read_that_fails_then_succeeds_when_committing_then_it_retries_and_commits():
    jobs = Jobs(ConnectionResetError("reset"), job("Processing"))
    assert currency.still_current(jobs, PLAN, patience_seconds=5, sleep=lambda s: None)


def test_given_an_api_that_never_answers_when_committing_then_the_output_is_not_committed():
    jobs = Jobs(*[ConnectionResetError("reset")] * 50)
    assert not currency.still_current(jobs, PLAN, patience_seconds=0, sleep=lambda s: None)


def test_given_a_requeued_job_on_the_watch_then_the_runner_is_told_to_stop():
    stopped = []
    follow = currency.follower(PLAN, lambda: stopped.append(True))
    follow(job("Processing"))
    assert stopped == []
    follow(job("Queued"))
    assert stopped == [True]


class SilentJobs:
    """A job API that never answers the watch (the API server is not reachable yet)."""

    def watch_spec(self, on_spec, stop, on_object=None):
        stop.wait(5)

    def get(self):
        raise ConnectionRefusedError("no API")


def test_given_a_runner_stopped_before_it_read_its_job_then_it_reports_a_stop_never_a_success():
    from ffrtmp_agent.runner import supervise

    plan = api.ExecutionPlan.model_construct(
        namespace="ns",
        job="j",
        jobUid="u1",
        attempt=1,
        progressIntervalSeconds=2,
        inputDurationSeconds=None,
        ffmpegArgs=["ffmpeg", "out"],
        inputArgs=[],
        inputUrl=None,
        live=False,
    )
    runner = supervise.Runner(plan, SilentJobs(), settings=supervise.Settings(spec_wait_seconds=0.1))
    runner.control.terminate()  # SIGTERM: the pod was deleted before the runner could read its job
    assert runner.run().end is supervise.End.TERMINATED  # exit 143: the pod fails, the job never Completes
