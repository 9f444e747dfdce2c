"""The pure parts of confirming a node loss before acting on it: which jobs' fate rests on their node's
Lease (only their nodes are worth a direct Lease read), and a cache that keeps such a fresh read over
the late watch events behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ffrtmp_operator.cache import Cache
from ffrtmp_operator.lifecycle import stamp
from ffrtmp_operator.reconcile import decide, needs_live_node
from ffrtmp_operator.records import PodRecord, job_record, lease_record

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
PHASES = (None, "Pending", "Queued", "Assigned", "Processing", "Paused", "Completed", "Failed", "Canceled")
SPEC = {"input": {"testSource": {"durationSeconds": 5}}, "output": {"url": "rtmp://sink/live/x"}, "maxRetries": 2}


def _job(phase, *, paused_from=None, canceled=False, paused=False):
    status = {"attempts": 1, "node": "n1", "pod": "a-1"}
    if phase:
        status["phase"] = phase
    if paused_from:
        status["pausedFrom"] = paused_from
    spec = {**SPEC, "canceled": canceled, "paused": paused}
    return job_record({"metadata": {"name": "a", "namespace": "ns", "uid": "u1"}, "spec": spec, "status": status})


def _lease(renewed_ago: float, rv: int) -> dict:
    return {
        "metadata": {"name": "ffrtmp-agent-n1", "resourceVersion": str(rv)},
        "spec": {
            "holderIdentity": "n1",
            "leaseDurationSeconds": 15,
            "renewTime": stamp(NOW - timedelta(seconds=renewed_ago)),
        },
    }


CASES = [
    (phase, paused_from, canceled, paused, pods)
    for phase in PHASES
    for paused_from in ((None, "Queued", "Assigned", "Processing") if phase == "Paused" else (None,))
    for canceled in (False, True)
    for paused in (False, True)
    for pods in ((), ("Running",), ("Succeeded",), ("Failed",))
]


@pytest.mark.parametrize(("phase", "paused_from", "canceled", "paused", "pods"), CASES)
def test_given_any_job_then_its_lease_needs_confirming_exactly_when_the_node_alone_changes_the_decision(
    phase, paused_from, canceled, paused, pods
):
    job = _job(phase, paused_from=paused_from, canceled=canceled, paused=paused)
    records = [PodRecord("ns", "a-1", "a", "u1", 1, p, 0 if p != "Running" else None, None, False) for p in pods]

    def run(alive: bool):
        return decide(job, records, node_alive=alive, now=NOW, backoff_base=1, backoff_cap=8)

    assert needs_live_node(job) == (run(False) != run(True))


def test_given_a_fresh_direct_read_when_a_late_watch_event_brings_an_older_lease_then_the_cache_keeps_the_read():
    cache = Cache()
    cache.set_lease("n1", lease_record(_lease(40, rv=100)))  # the watch's last word: expired
    assert not cache.leases["n1"].alive(NOW)
    cache.set_lease("n1", lease_record(_lease(2, rv=180)))  # the scheduler's GET
    assert cache.set_lease("n1", lease_record(_lease(30, rv=120))) is False  # the lagging watch catches up
    assert cache.leases["n1"].alive(NOW)
    cache.set_lease("n1", lease_record(_lease(1, rv=190)))  # a newer renewal from the watch still counts
    assert cache.leases["n1"].resource_version == "190"
