"""The driver's passes against a fake API: new jobs are queued and placed in one status write, then get
their pods; a failed write is retried on the next tick, not at once; jobs in a namespace being terminated
are left alone (not queued, not placed, no Events); `run` resyncs, passes until stopped."""

from __future__ import annotations

import asyncio

import ffrtmp_api as api
from ffrtmp_operator.cache import Cache
from ffrtmp_operator.driver import Driver
from ffrtmp_operator.records import job_record, lease_record, node_record

from tests.unit.shell_fakes import FakeKube, ListRecorder, api_error, settings, started

NS = "media"


def _passes(kube: FakeKube, *sweeps: bool) -> tuple[Driver, ListRecorder]:
    async def run():
        driver, recorder = await started(kube)
        for sweep in sweeps:
            await driver.run_pass(sweep=sweep)
        return driver, recorder

    return asyncio.run(run())


def test_given_new_jobs_and_a_free_node_when_a_pass_runs_then_each_is_queued_and_placed_in_one_write():
    kube = FakeKube()
    kube.add_node("n1", slots=2)
    kube.add_job("a", NS)
    kube.add_job("b", NS)
    _, recorder = _passes(kube, True)
    assert [(key, [t["phase"] for t in patch["transitions"]]) for key, _, patch in kube.patches] == [
        ((NS, "a"), ["Queued", "Assigned"]),
        ((NS, "b"), ["Queued", "Assigned"]),
    ]
    assert sorted(kube.pods) == [(NS, "a-1"), (NS, "b-1")]
    # One Event each: Admitted, naming the queue it went through (no separate Queued Event).
    assert [(e["job"][1], e["reason"]) for e in kube.events] == [("a", "Admitted"), ("b", "Admitted")]
    assert all(e["message"].endswith("; queued in default") for e in kube.events)
    assert recorder.calls[-1] == ("pass", 2, 0, 2)


def test_given_no_free_slot_when_a_pass_runs_then_the_new_job_is_written_queued_and_waits():
    kube = FakeKube()
    kube.add_node("n1", slots=1)
    kube.add_job("a", NS)
    kube.add_job("b", NS)
    driver, _ = _passes(kube, True)
    assert kube.jobs[(NS, "a")]["status"]["phase"] == "Assigned"
    assert kube.jobs[(NS, "b")]["status"]["phase"] == "Queued"
    assert (NS, "b") in driver.cache.queue
    # The job that waits gets its own Queued write and Created Event, then the note of why it waits.
    assert [p.get("phase") for key, _, p in kube.patches if key == (NS, "b")] == ["Queued", None]
    assert kube.jobs[(NS, "b")]["status"]["reason"] == "Created" and kube.jobs[(NS, "b")]["status"]["queuedAt"]
    assert [e["reason"] for e in kube.events if e["job"] == (NS, "b")][0] == "Created"


def test_given_a_write_the_api_fails_then_the_job_is_retried_on_the_next_tick_not_at_once():
    kube = FakeKube()
    kube.add_job("a", NS)
    kube.fail["patch_job_status"] = api_error(500, "etcdserver: request timed out")

    async def run():
        driver, _ = await started(kube)
        await driver.run_pass(sweep=True)
        kube.fail.clear()
        await driver.run_pass(sweep=False)
        assert len(kube.patches) == 1  # a pass between ticks does not retry it
        await driver.run_pass(sweep=True)

    asyncio.run(run())
    assert [p.get("phase") for _, _, p in kube.patches] == ["Queued", "Queued", None]
    assert kube.jobs[(NS, "a")]["status"]["phase"] == "Queued"
    # The last write says why it waits (no node at all here).
    assert kube.patches[-1][2]["conditions"][0]["reason"] == "NoMatchingNode"


def test_given_a_namespace_being_terminated_then_its_jobs_are_not_queued_placed_or_written():
    kube = FakeKube()
    kube.add_node("n1", slots=2)
    kube.terminate_namespace("dying")
    kube.add_job("new", "dying")
    kube.add_job("queued", "dying", status={"phase": "Queued", "queuedAt": "2026-01-01T00:00:01.000Z"})
    kube.add_job(
        "assigned",
        "dying",
        status={"phase": "Assigned", "node": "n1", "pod": "assigned-1", "attempts": 1, "encoder": "libx264"},
    )
    kube.add_job("a", NS)
    driver, _ = _passes(kube, True, True)
    assert driver.cache.terminating == {"dying"}
    assert [key for key, _, _ in kube.patches] == [(NS, "a")]
    assert list(kube.pods) == [(NS, "a-1")]
    assert {e["job"] for e in kube.events} == {(NS, "a")}
    assert ("dying", "queued") not in driver.cache.queue


def test_given_a_queued_job_when_its_namespace_turns_terminating_then_it_leaves_the_queue_and_comes_back_if_not():
    kube = FakeKube()
    kube.add_job("queued", NS, status={"phase": "Queued", "queuedAt": "2026-01-01T00:00:01.000Z"})

    async def run():
        driver, _ = await started(kube)
        assert (NS, "queued") in driver.cache.queue
        assert driver.cache.set_namespace_terminating(NS, True)
        assert (NS, "queued") not in driver.cache.queue
        assert not driver.cache.set_namespace_terminating(NS, True)  # no news
        kube.add_node("n1")  # a node appears, as the watch handlers would tell it
        driver.cache.set_node("n1", node_record(kube.nodes["n1"]))
        driver.cache.set_lease("n1", lease_record(kube.leases["ffrtmp-agent-n1"]))
        await driver.run_pass(sweep=True)
        assert not kube.patches
        driver.cache.set_namespace_terminating(NS, False)  # deleted and created anew meanwhile
        await driver.run_pass(sweep=True)

    asyncio.run(run())
    assert kube.jobs[(NS, "queued")]["status"]["phase"] == "Assigned"


class Stopped:
    """kopf's DaemonStopped as the driver uses it: truthy once set, awaitable."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self) -> None:
        await self.event.wait()


def test_given_run_then_it_resyncs_places_a_job_that_arrives_and_returns_when_stopped():
    kube = FakeKube()
    kube.add_node("n1")

    async def main():
        cache = Cache()
        driver = Driver(cache, kube, settings())
        stopped = Stopped()
        task = asyncio.create_task(driver.run(stopped))
        for _ in range(100):  # the resync
            if cache.live:
                break
            await asyncio.sleep(0.01)
        cache.upsert_job(job_record(kube.add_job("a", NS)))  # what the watch handler does
        await cache.notify()
        for _ in range(200):
            if kube.pods:
                break
            await asyncio.sleep(0.01)
        stopped.event.set()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())
    assert list(kube.pods) == [(NS, "a-1")]


def test_given_job_pods_running_at_start_then_their_namespaces_get_the_network_policy_before_any_new_pod():
    kube = FakeKube()

    def pod(namespace: str, name: str, phase: str) -> None:
        kube.pods[(namespace, name)] = {
            "metadata": {"name": name, "namespace": namespace, "labels": {api.LABEL_JOB: name, api.LABEL_ATTEMPT: "1"}},
            "status": {"phase": phase},
        }

    pod("tenant-a", "a-1", "Running")  # started by an operator release that had no per-namespace policy
    pod("tenant-b", "b-1", "Succeeded")  # finished: nothing to cover

    async def run() -> None:
        driver, _ = await started(kube)
        await driver.cover_running_pods()

    asyncio.run(run())
    assert sorted(kube.network_policies) == ["tenant-a"]
    assert kube.network_policies["tenant-a"]["spec"]["policyTypes"] == ["Ingress", "Egress"]
