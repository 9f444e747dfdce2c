"""Preemption against a fake API: the victim goes back to Queued with a Warning saying by whom, then its pod
is deleted; a victim that changed meanwhile keeps its pod. Through a whole pass, a live job that fits
nowhere takes a batch job's slot."""

from __future__ import annotations

import asyncio

from ffrtmp_operator import scheduling

from tests.unit.shell_fakes import FakeKube, started

NS = "media"
RUNNING = {
    "phase": "Processing",
    "node": "n1",
    "pod": "batch-1",
    "attempts": 1,
    "encoder": "libx264",
    "startedAt": "2026-01-01T00:00:02.000Z",
    "queuedAt": "2026-01-01T00:00:01.000Z",
}


def _cluster() -> FakeKube:
    kube = FakeKube()
    kube.add_node("n1", slots=1)
    kube.add_job("batch", NS, status=RUNNING, queue="batch")
    kube.pods[(NS, "batch-1")] = {
        "metadata": {
            "name": "batch-1",
            "namespace": NS,
            "resourceVersion": "5",
            "labels": {"ffrtmp.io/job": "batch", "ffrtmp.io/job-uid": "uid-batch", "ffrtmp.io/attempt": "1"},
        },
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"},
    }
    kube.add_job("live", NS, status={"phase": "Queued", "queuedAt": "2026-01-01T00:00:03.000Z"}, queue="live")
    return kube


def test_given_a_preemption_then_the_victim_is_requeued_with_a_warning_then_its_pod_deleted():
    kube = _cluster()

    async def run():
        driver, _ = await started(kube)
        victim, live = driver.cache.jobs[(NS, "batch")], driver.cache.jobs[(NS, "live")]
        return await driver.preemptor.preempt(scheduling.Preemption(victim, "n1", live))

    assert asyncio.run(run())
    status = kube.jobs[(NS, "batch")]["status"]
    assert status["phase"] == "Queued" and status["reason"] == "Preempted"
    ((_, _, patch),) = kube.patches
    assert patch["phase"] == "Queued"
    assert kube.deleted_pods == [(NS, "batch-1", None)]
    (event,) = kube.events
    assert event["type"] == "Warning" and f"by live job {NS}/live" in event["message"]


def test_given_a_victim_that_changed_since_the_cycle_then_its_pod_is_kept():
    kube = _cluster()

    async def run():
        driver, _ = await started(kube)
        victim, live = driver.cache.jobs[(NS, "batch")], driver.cache.jobs[(NS, "live")]
        kube.change_job(NS, "batch", {"progress": {"percent": 50}})
        return await driver.preemptor.preempt(scheduling.Preemption(victim, "n1", live))

    assert asyncio.run(run()) is False
    assert not kube.deleted_pods and kube.jobs[(NS, "batch")]["status"]["phase"] == "Processing"


def test_given_a_live_job_and_a_full_node_when_passes_run_then_it_is_admitted_only_after_the_victims_pod_is_gone():
    kube = _cluster()

    async def run():
        driver, recorder = await started(kube)
        await driver.run_pass(sweep=True)
        victim = kube.jobs[(NS, "batch")]["status"]
        assert (victim["phase"], victim["reason"], victim["disruptions"]) == ("Queued", "Preempted", 1)
        assert kube.deleted_pods == [(NS, "batch-1", None)]
        # The victim's encoder may still be stopping: the live job waits and says why; nobody else is preempted.
        live = kube.jobs[(NS, "live")]["status"]
        scheduled = next(c for c in live["conditions"] if c["type"] == "Scheduled")
        assert live["phase"] == "Queued" and scheduled["reason"] == "Preempting"
        assert "preempted media/batch on n1" in scheduled["message"]
        await driver.run_pass(sweep=True)
        assert kube.jobs[(NS, "live")]["status"]["phase"] == "Queued"
        assert recorder.calls[-1] == ("pass", 0, 0, 1)  # no second victim for the same job
        driver.cache.delete_pod(NS, "batch-1")  # the kubelet confirms: the pod is gone, its slot free
        await driver.run_pass(sweep=True)
        return recorder

    recorder = asyncio.run(run())
    assert kube.jobs[(NS, "live")]["status"]["phase"] == "Assigned"
    assert recorder.calls[-1] == ("pass", 1, 0, 1)
