"""The operator's shell with TranscodeQueue objects, against a fake API: a paused queue's job waits and
says so once, the queue's status is written back with its counts, and a queue that appears lets its job
start."""

from __future__ import annotations

import asyncio

from ffrtmp_operator.queues import queue_record

from tests.unit.shell_fakes import FakeKube, started

NS = "media"


def scheduled(kube: FakeKube, name: str) -> dict:
    return next(c for c in kube.jobs[(NS, name)]["status"]["conditions"] if c["type"] == "Scheduled")


def test_given_a_paused_queue_when_passes_run_then_its_job_waits_says_why_once_and_the_queue_shows_it():
    kube = FakeKube()
    kube.add_node("n1", slots=1)
    kube.add_queue("ingest", paused=True)
    kube.add_job("a", NS, queue="ingest")

    async def run():
        driver, _ = await started(kube)
        for _ in range(5):
            await driver.run_pass(sweep=True)
            driver.queue_status._next = 0  # no 5 s wait between rounds here
        return driver

    driver = asyncio.run(run())
    assert kube.jobs[(NS, "a")]["status"]["phase"] == "Queued"
    assert scheduled(kube, "a")["reason"] == "QueuePaused"
    assert [e["reason"] for e in kube.events].count("QueuePaused") == 1  # said once, not each pass
    name, status = kube.queue_status_patches[-1]
    assert name == "ingest" and (status["pending"], status["admitted"]) == (1, 0)
    assert status["conditions"][0]["reason"] == "Paused"
    # Written when the counts changed (the new job was Pending at first), not again every round.
    assert [p["pending"] for _, p in kube.queue_status_patches] == [0, 1]

    async def resume():
        kube.queues["ingest"]["spec"]["paused"] = False
        kube.queues["ingest"]["metadata"]["resourceVersion"] = "999"
        driver.cache.set_queue("ingest", queue_record(kube.queues["ingest"]))
        await driver.run_pass(sweep=True)

    asyncio.run(resume())
    assert kube.jobs[(NS, "a")]["status"]["phase"] == "Assigned"


def test_given_a_job_naming_a_missing_queue_when_it_appears_then_the_job_starts():
    kube = FakeKube()
    kube.add_node("n1", slots=1)
    kube.add_job("a", NS, queue="nightly")

    async def run():
        driver, _ = await started(kube)
        await driver.run_pass(sweep=True)
        await driver.run_pass(sweep=True)
        assert scheduled(kube, "a")["reason"] == "QueueNotFound"
        driver.cache.set_queue("nightly", queue_record(kube.add_queue("nightly")))
        await driver.run_pass(sweep=True)

    asyncio.run(run())
    assert kube.jobs[(NS, "a")]["status"]["phase"] == "Assigned"
