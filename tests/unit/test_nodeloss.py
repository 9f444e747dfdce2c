"""Node loss is confirmed by a fresh Lease read before a job is requeued for it (a requeue deletes the
running pod): the cache's Lease comes from a watch that can lag far behind. Against a fake API whose
Lease differs from what the cache last saw."""

from __future__ import annotations

import asyncio
import logging

from tests.unit.shell_fakes import FakeKube, api_error, started

NS = "media"
LEASE = "ffrtmp-agent-n1"


def _running_on_stale_lease() -> FakeKube:
    """A Processing job on n1, whose Lease the cache will see 40 s old (expired)."""
    kube = FakeKube()
    kube.add_node("n1", renewed_ago=40)
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
    kube.pods[(NS, "a-1")] = {
        "metadata": {
            "name": "a-1",
            "namespace": NS,
            "resourceVersion": "5",
            "labels": {"ffrtmp.io/job": "a", "ffrtmp.io/job-uid": "uid-a", "ffrtmp.io/attempt": "1"},
        },
        "status": {"phase": "Running"},
    }
    return kube


def _pass(kube: FakeKube, *, in_the_api, passes: int = 1):
    async def run():
        driver, _ = await started(kube)
        assert not driver.nodeloss.node_alive("n1", driver.clock())  # as the cache sees it
        in_the_api()
        for _ in range(passes):
            await driver.run_pass(sweep=True)
        return driver

    return asyncio.run(run())


def test_given_a_lease_renewed_in_the_api_when_the_watch_is_behind_then_the_node_is_kept_and_its_job_runs_on():
    kube = _running_on_stale_lease()
    driver = _pass(kube, in_the_api=lambda: kube.renew("n1"))
    assert kube.lease_reads == [LEASE]
    assert kube.jobs[(NS, "a")]["status"]["phase"] == "Processing" and not kube.deleted_pods
    assert driver.nodeloss.node_alive("n1", driver.clock())  # the read refreshed the cache


def test_given_a_lease_expired_in_the_api_too_then_the_node_is_lost_and_its_job_requeued():
    kube = _running_on_stale_lease()
    _pass(kube, in_the_api=lambda: None)
    assert kube.lease_reads == [LEASE]
    status = kube.jobs[(NS, "a")]["status"]
    assert status["phase"] == "Queued" and status["reason"] == "NodeLost"
    assert kube.deleted_pods == [(NS, "a-1", 0)]  # no kubelet will confirm a pod on a lost node


def test_given_a_lease_that_cannot_be_read_then_the_job_stays_put_and_no_node_is_lost_until_the_api_answers(caplog):
    kube = _running_on_stale_lease()
    kube.fail["get_lease"] = api_error(503, "unavailable")
    with caplog.at_level(logging.WARNING, logger="ffrtmp"):
        driver = _pass(kube, in_the_api=lambda: None)
    assert kube.jobs[(NS, "a")]["status"]["phase"] == "Processing" and not kube.deleted_pods
    assert driver.reachability.since is None  # an outage: the agents' heartbeats could not arrive either
    assert driver.nodeloss.node_alive("n1", driver.clock())
    assert "lease not readable: node not declared lost" in caplog.text


def test_given_passes_within_one_tick_then_the_lease_is_read_once():
    kube = _running_on_stale_lease()
    kube.fail["get_lease"] = api_error(403, 'leases is forbidden: User "x" cannot get resource "leases"')
    _pass(kube, in_the_api=lambda: None, passes=3)
    assert kube.lease_reads == [LEASE]
    assert kube.jobs[(NS, "a")]["status"]["phase"] == "Processing"
