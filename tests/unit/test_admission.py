"""Admission against a fake API: the placement is written with the job's resourceVersion as precondition
and only then is the pod created; a conflict creates no pod; a pod the API refuses is a failed attempt,
unless the refusal says the namespace is being terminated (then the job is left alone, quietly)."""

from __future__ import annotations

import asyncio
import logging

from ffrtmp_operator import scheduling
from ffrtmp_operator.reconcile import Decision

from tests.unit.shell_fakes import FakeKube, api_error, rbac_error, started, terminating_error

NS = "media"


def _queued(kube: FakeKube, name: str = "a", namespace: str = NS) -> None:
    kube.add_job(name, namespace, status={"phase": "Queued", "queuedAt": "2026-01-01T00:00:01.000Z"})


def _admit(kube: FakeKube, name: str = "a", namespace: str = NS, *, queued: Decision | None = None):
    async def run():
        driver, recorder = await started(kube)
        job = driver.cache.jobs[(namespace, name)]
        arrival = (queued, driver.clock()) if queued else None
        placed = await driver.admission.admit(scheduling.Assignment(job, "n1", "libx264"), queued=arrival)
        return driver, recorder, job, placed

    return asyncio.run(run())


def test_given_a_queued_job_when_admitted_then_the_placement_is_written_on_its_version_and_then_the_pod_created():
    kube = FakeKube()
    kube.add_node("n1")
    _queued(kube)
    driver, recorder, job, placed = _admit(kube)
    assert placed
    ((key, precondition, patch),) = kube.patches
    assert key == (NS, "a") and precondition == job.resource_version
    assert patch["phase"] == "Assigned" and patch["node"] == "n1" and patch["attempts"] == 1
    assert list(kube.pods) == [(NS, patch["pod"])]
    pod = kube.pods[(NS, patch["pod"])]
    assert pod["spec"]["nodeName"] == "n1"
    assert (NS, patch["pod"]) in driver.cache.pods  # known at once: the next pass does not create it again
    assert driver.cache.jobs[(NS, "a")].phase == "Assigned"
    assert [e["reason"] for e in kube.events] == ["Admitted"]
    assert ("admission", "a", True, "libx264") in recorder.calls
    assert ("transition", "a", "Queued", "Assigned", "Admitted") in recorder.calls


def test_given_a_new_job_when_admitted_then_queued_and_assigned_go_in_one_status_write_and_one_event():
    kube = FakeKube()
    kube.add_node("n1")
    kube.add_job("a", NS)
    _, recorder, job, placed = _admit(kube, queued=Decision("Queued", "Created", "queued in batch"))
    assert placed and len(kube.patches) == 1
    ((_, precondition, patch),) = kube.patches
    assert precondition == job.resource_version
    assert (patch["phase"], patch["reason"]) == ("Assigned", "Admitted")
    assert patch["queuedAt"] and patch["assignedAt"] and patch["node"] == "n1"
    assert [t["phase"] for t in patch["transitions"]] == ["Queued", "Assigned"]
    # One Event, as a pod gets one Scheduled Event: the queue it went through is in its message.
    assert kube.events == [
        {
            "job": (NS, "a"),
            "reason": "Admitted",
            "message": "assigned to n1 (encoder libx264); queued in batch",
            "type": "Normal",
        }
    ]
    assert [c[2:4] for c in recorder.calls if c[0] == "transition"] == [("Pending", "Queued"), ("Queued", "Assigned")]


def test_given_a_new_job_whose_write_conflicts_when_admitted_then_nothing_is_written_and_no_pod():
    kube = FakeKube()
    kube.add_node("n1")
    kube.add_job("a", NS)

    async def run():
        driver, _ = await started(kube)
        job = driver.cache.jobs[(NS, "a")]
        kube.change_job(NS, "a", {"progress": {"percent": 1}})  # the user's or a webhook's write, not yet seen
        arrival = (Decision("Queued", "Created", "queued in batch"), driver.clock())
        placed = await driver.admission.admit(scheduling.Assignment(job, "n1", "libx264"), queued=arrival)
        return driver, job, placed

    driver, job, placed = asyncio.run(run())
    assert not placed and not kube.pods and not kube.events
    assert kube.patches[0][1] == job.resource_version  # the precondition that failed
    assert kube.jobs[(NS, "a")]["status"].get("phase") in (None, "Pending")
    assert (NS, "a") in driver.cache.dirty  # decided again on the fresh version


def test_given_a_job_changed_since_the_cycle_read_it_when_admitted_then_no_pod_and_it_is_decided_again():
    kube = FakeKube()
    kube.add_node("n1")
    _queued(kube)

    async def run():
        driver, recorder = await started(kube)
        job = driver.cache.jobs[(NS, "a")]
        kube.change_job(NS, "a", {"progress": {"percent": 1}})  # the watch has not brought this yet
        placed = await driver.admission.admit(scheduling.Assignment(job, "n1", "libx264"))
        return driver, recorder, job, placed

    driver, recorder, job, placed = asyncio.run(run())
    assert not placed and not kube.pods and not kube.events
    assert kube.patches[0][1] == job.resource_version  # the precondition that failed
    # Re-read rather than wait for the watch; looked at again in the next pass.
    assert driver.cache.jobs[(NS, "a")].resource_version == kube.jobs[(NS, "a")]["metadata"]["resourceVersion"]
    assert (NS, "a") in driver.cache.dirty
    assert ("admission", "a", False, "libx264") in recorder.calls


def test_given_a_pod_the_api_refuses_when_admitted_then_it_waits_as_failed_create_without_a_failed_run():
    kube = FakeKube()
    kube.add_node("n1")
    _queued(kube)
    kube.fail["create_pod"] = api_error(403, 'pods "a-1" is forbidden: exceeded quota: pods')
    driver, recorder, _, placed = _admit(kube)
    assert placed and not kube.pods
    status = kube.jobs[(NS, "a")]["status"]
    assert (status["phase"], status["reason"]) == ("Queued", "FailedCreate") and status["retryAfter"]
    # No pod ran: attempts goes back to 0, nothing counts against maxRetries; the refusals set the backoff.
    assert (status["attempts"], status.get("failures", 0), status["failedCreates"]) == (0, 0, 1)
    assert "refused by the API server (403)" in status["transitions"][-1]["message"]
    scheduled = next(c for c in status["conditions"] if c["type"] == "Scheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "FailedCreate")
    assert [(e["reason"], e["type"]) for e in kube.events] == [("Admitted", "Normal"), ("FailedCreate", "Warning")]


def test_given_an_rbac_denial_on_the_pod_when_admitted_then_a_warning_flagged_rbac(caplog):
    kube = FakeKube()
    kube.add_node("n1")
    _queued(kube)
    kube.fail["create_objects"] = rbac_error(NS, "serviceaccounts")
    with caplog.at_level(logging.DEBUG, logger="ffrtmp"):
        _admit(kube)
    denied = [r for r in caplog.records if getattr(r, "rbac", False)]
    assert [r.getMessage() for r in denied] == ["pod not created"] and denied[0].levelno == logging.WARNING


def test_given_a_namespace_being_terminated_when_the_pod_is_refused_then_no_retry_no_warning(caplog):
    kube = FakeKube()
    kube.add_node("n1")
    _queued(kube, namespace="dying")
    kube.fail["create_objects"] = terminating_error("dying", kind="serviceaccounts")
    kube.fail["post_event"] = terminating_error("dying")
    with caplog.at_level(logging.DEBUG, logger="ffrtmp"):
        driver, _, _, placed = _admit(kube, namespace="dying")
    assert placed and not kube.pods
    assert kube.jobs[("dying", "a")]["status"]["phase"] == "Assigned"  # no failed attempt, no backoff
    assert len(kube.patches) == 1
    assert "dying" in driver.cache.terminating
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and r.name.startswith("ffrtmp")] == [
        "namespace terminating: its jobs are left alone"
    ]


def test_given_an_assigned_job_without_its_pod_when_created_again_then_the_same_pod_name_is_used():
    kube = FakeKube()
    kube.add_node("n1")
    kube.add_job("a", NS, status={"phase": "Assigned", "node": "n1", "encoder": "libx264", "attempts": 2, "pod": "a-2"})

    async def run():
        driver, _ = await started(kube)
        await driver.admission.create_pod(driver.cache.jobs[(NS, "a")])
        await driver.admission.create_pod(driver.cache.jobs[(NS, "a")])  # exists already: no error

    asyncio.run(run())
    assert list(kube.pods) == [(NS, "a-2")]
