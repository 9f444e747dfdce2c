"""The lifecycle writer against a fake API: one status patch per change with the job's resourceVersion as
precondition, a conflict (409) re-reads the job and has it decided again, Events follow the write and a
lost Event never undoes it."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from ffrtmp_api import Phase
from ffrtmp_operator.lifecycle_writer import Step, event_step

from tests.unit.shell_fakes import FakeKube, api_error, rbac_error, started, terminating_error

NS = "media"


def _processing(kube: FakeKube) -> None:
    kube.add_node("n1")
    kube.add_job(
        "a",
        NS,
        status={
            "phase": "Processing",
            "node": "n1",
            "pod": "a-1",
            "attempts": 1,
            "encoder": "libx264",
            "startedAt": "2026-01-01T00:00:02.000Z",
        },
    )


def _complete(kube: FakeKube, *, before=None):
    async def run():
        driver, recorder = await started(kube)
        job = driver.cache.jobs[(NS, "a")]
        if before:
            before()
        done = await driver.writer.transition(
            job, Phase.COMPLETED, reason="Succeeded", message="pod a-1 succeeded", now=driver.clock()
        )
        return driver, recorder, job, done

    return asyncio.run(run())


def test_given_a_transition_then_one_patch_on_the_read_version_then_its_event_and_metrics():
    kube = FakeKube()
    _processing(kube)
    driver, recorder, job, done = _complete(kube)
    assert done
    ((_, precondition, patch),) = kube.patches
    assert precondition == job.resource_version and patch["phase"] == "Completed"
    assert driver.cache.jobs[(NS, "a")].phase == "Completed"  # the cache learns the write's answer at once
    assert kube.events == [{"job": (NS, "a"), "reason": "Succeeded", "message": "pod a-1 succeeded", "type": "Normal"}]
    assert recorder.calls == [("transition", "a", "Processing", "Completed", "Succeeded")]


def test_given_a_new_job_failed_in_the_same_write_when_its_event_is_made_then_one_warning_with_the_error_first():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    steps = [
        Step(Phase.QUEUED, "Created", "queued in batch", now),
        Step(Phase.FAILED, "InputError", "no such preset", now, "Warning"),
    ]
    assert event_step(steps) == Step(Phase.FAILED, "InputError", "no such preset; queued in batch", now, "Warning")


def test_given_changes_with_one_message_when_their_event_is_made_then_the_message_is_said_once():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    steps = [
        Step(Phase.ASSIGNED, "ChildStarted", "1/4 running", now),
        Step(Phase.PROCESSING, "ChildStarted", "1/4 running", now),
    ]
    assert event_step(steps) == steps[-1]


def test_given_a_conflict_when_writing_then_the_job_is_read_again_and_decided_again():
    kube = FakeKube()
    _processing(kube)

    def runner_writes_progress() -> None:  # after the writer read the job
        kube.change_job(NS, "a", {"progress": {"percent": 99}})

    driver, recorder, job, done = _complete(kube, before=runner_writes_progress)
    assert not done and not kube.events and not recorder.calls
    fresh = driver.cache.jobs[(NS, "a")]
    assert fresh.resource_version == kube.jobs[(NS, "a")]["metadata"]["resourceVersion"] != job.resource_version
    assert (NS, "a") in driver.cache.take_dirty()  # the next pass decides again on the newer version

    async def next_pass():  # which writes the change on the version read back
        return await driver.writer.transition(
            fresh, Phase.COMPLETED, reason="Succeeded", message="", now=driver.clock()
        )

    assert asyncio.run(next_pass())
    assert kube.jobs[(NS, "a")]["status"]["phase"] == "Completed"


def test_given_a_refused_transition_then_nothing_is_written(caplog):
    kube = FakeKube()
    kube.add_job("a", NS, status={"phase": "Completed"})

    async def run():
        driver, _ = await started(kube)
        job = driver.cache.jobs[(NS, "a")]
        return await driver.writer.transitions(job, [Step(Phase.PROCESSING, "Started", "", driver.clock())])

    with caplog.at_level(logging.WARNING, logger="ffrtmp"):
        assert asyncio.run(run()) is False
    assert not kube.patches and "transition refused" in caplog.text


def test_given_an_event_the_api_refuses_then_the_phase_stays_written_and_an_rbac_denial_is_flagged(caplog):
    kube = FakeKube()
    _processing(kube)
    kube.fail["post_event"] = rbac_error(NS)
    with caplog.at_level(logging.DEBUG, logger="ffrtmp"):
        _, _, _, done = _complete(kube)
    assert done and kube.jobs[(NS, "a")]["status"]["phase"] == "Completed"
    (record,) = [r for r in caplog.records if r.getMessage() == "event not posted"]
    assert record.levelno == logging.WARNING and record.status == 403 and record.rbac is True


def test_given_an_event_lost_to_a_server_error_then_a_warning_not_flagged_rbac(caplog):
    kube = FakeKube()
    _processing(kube)
    kube.fail["post_event"] = api_error(500, "etcd timeout")
    with caplog.at_level(logging.DEBUG, logger="ffrtmp"):
        _, _, _, done = _complete(kube)
    assert done
    (record,) = [r for r in caplog.records if r.getMessage() == "event not posted"]
    assert record.levelno == logging.WARNING and record.status == 500 and not hasattr(record, "rbac")


def test_given_a_namespace_being_terminated_when_its_event_is_refused_then_one_debug_line_and_no_more_events(caplog):
    kube = FakeKube()
    _processing(kube)
    kube.fail["post_event"] = terminating_error(NS)
    with caplog.at_level(logging.DEBUG, logger="ffrtmp"):
        driver, _, _, done = _complete(kube)
    assert done and NS in driver.cache.terminating
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("ffrtmp") and r.levelno == logging.DEBUG] == [
        "namespace terminating: its jobs are left alone"
    ]
