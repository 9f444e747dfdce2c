"""Scheduling policy: queue order, node eligibility, least-loaded placement, best-effort FIFO,
backoff and live preemption. Pure: records in, assignments out, no cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import ffrtmp_api as api
import pytest
from ffrtmp_operator.cache import JobHeap
from ffrtmp_operator.lifecycle import stamp
from ffrtmp_operator.records import JobRecord, LeaseRecord, NodeRecord, job_record
from ffrtmp_operator.scheduling import node_snapshot, order_key, schedule

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
VALUES = dict(api.PRIORITY_CLASS_VALUES)


def job(
    name: str,
    *,
    queue: str = "default",
    priority: str = "medium",
    queued: float = 0,
    phase: str = "Queued",
    codec: str = "h264",
    accelerator: str = "none",
    node: str | None = None,
    node_selector: dict[str, str] | None = None,
    retry_after: float | None = None,
    paused: bool = False,
    priority_class: str | None = None,
    paused_from: str | None = None,
) -> JobRecord:
    spec: dict[str, Any] = {
        "queue": queue,
        "priority": priority,
        "input": {"testSource": {"durationSeconds": 1}},
        "output": {"url": "rtmp://sink/live/x"},
        "video": {"codec": codec},
        "hardware": {"accelerator": accelerator},
        "paused": paused,
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    if priority_class:
        spec["priorityClassName"] = priority_class
    status: dict[str, Any] = {"phase": phase, "queuedAt": stamp(NOW + timedelta(seconds=queued))}
    if node:
        status["node"] = node
    if paused_from:
        status["pausedFrom"] = paused_from
    if retry_after is not None:
        status["retryAfter"] = stamp(NOW + timedelta(seconds=retry_after))
    return job_record({"metadata": {"name": name, "namespace": "ns", "uid": name}, "spec": spec, "status": status})


def node(
    name: str, *, encoders: tuple[str, ...] = ("libx264",), worker: bool = True, cordoned: bool = False, **labels: str
) -> NodeRecord:
    all_labels = {api.LABEL_WORKER: "true" if worker else "false", **labels}
    all_labels.update({api.LABEL_ENCODER_PREFIX + e: "true" for e in encoders})
    return NodeRecord(name, all_labels, cordoned)


def lease(name: str, *, slots: int | None = 1, age: float = 1, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(name, NOW - timedelta(seconds=age), duration, slots)


def run(
    jobs: list[JobRecord],
    nodes: list[NodeRecord],
    leases: list[LeaseRecord],
    *,
    now: datetime = NOW,
    preemption: bool = True,
):
    snapshot = node_snapshot(nodes, {lease.node: lease for lease in leases}, jobs, now=now, default_slots=2)
    queued = sorted((j for j in jobs if j.phase == api.Phase.QUEUED), key=lambda j: order_key(j, VALUES))
    return schedule(queued, snapshot, now=now, priority_values=VALUES, preemption=preemption)


def placed(cycle) -> list[tuple[str, str]]:
    return [(a.job.name, a.node) for a in cycle.assignments]


def test_given_mixed_queues_priorities_and_arrivals_when_ordering_then_queue_then_class_value_then_fifo():
    jobs = [
        job("batch-high", queue="batch", priority="high", queued=0),
        job("default-low-early", queue="default", priority="low", queued=1),
        job("default-high-late", queue="default", priority="high", queued=9),
        job("default-high-early", queue="default", priority="high", queued=2),
        job("live-low", queue="live", priority="low", queued=8),
        job("default-medium", queue="default", priority="medium", queued=0),
    ]
    ordered = [j.name for j in sorted(jobs, key=lambda j: order_key(j, VALUES))]
    assert ordered == [
        "live-low",
        "default-high-early",
        "default-high-late",
        "default-medium",
        "default-low-early",
        "batch-high",
    ]


def test_given_a_custom_priority_class_when_ordering_then_its_value_counts():
    urgent = job("urgent", priority="low", priority_class="urgent", queued=5)
    high = job("high", priority="high", queued=0)
    assert order_key(urgent, {**VALUES, "urgent": 5000}) < order_key(high, {**VALUES, "urgent": 5000})


def test_given_same_key_when_ordering_then_name_breaks_the_tie():
    assert order_key(job("a"), VALUES) < order_key(job("b"), VALUES)


@pytest.mark.parametrize(
    ("the_node", "the_lease", "eligible"),
    [
        (node("n"), lease("n"), True),
        (node("n", worker=False), lease("n"), False),
        (node("n", cordoned=True), lease("n"), False),
        (node("n"), lease("n", age=20), False),  # heartbeat expired
        (node("n"), None, False),  # no agent
        (node("n"), lease("n", slots=0), False),
    ],
)
def test_given_a_node_when_snapshotting_then_only_live_uncordoned_workers_with_slots_take_jobs(
    the_node, the_lease, eligible
):
    cycle = run([job("j")], [the_node], [the_lease] if the_lease else [])
    assert placed(cycle) == ([("j", "n")] if eligible else [])


def test_given_a_lease_without_slots_annotation_when_snapshotting_then_default_slots_apply():
    cycle = run([job("a", queued=0), job("b", queued=1), job("c", queued=2)], [node("n")], [lease("n", slots=None)])
    assert placed(cycle) == [("a", "n"), ("b", "n")]


def test_given_one_free_slot_when_scheduling_then_the_first_in_order_gets_it():
    jobs = [
        job("batch", queue="batch", priority="high"),
        job("low", priority="low"),
        job("live", queue="live", queued=5),
    ]
    assert placed(run(jobs, [node("n")], [lease("n")])) == [("live", "n")]


def test_given_slots_in_use_when_scheduling_then_used_slots_are_not_offered():
    running = job("running", phase="Processing", node="n")
    paused = job("stopped", phase="Paused", paused_from="Processing", node="n")
    assert placed(run([running, paused, job("new")], [node("n")], [lease("n", slots=2)])) == []
    assert placed(run([running, job("new")], [node("n")], [lease("n", slots=2)])) == [("new", "n")]


def test_given_several_nodes_when_placing_then_the_least_loaded_wins():
    jobs = [job("r1", phase="Processing", node="busy"), job("new")]
    cycle = run(jobs, [node("busy"), node("idle")], [lease("busy", slots=4), lease("idle", slots=4)])
    assert placed(cycle) == [("new", "idle")]


def test_given_a_gpu_job_first_when_no_node_has_nvenc_then_the_cpu_job_behind_it_still_runs():
    jobs = [job("gpu", accelerator="nvidia", priority="high"), job("cpu", queued=1)]
    assert placed(run(jobs, [node("cpu-node")], [lease("cpu-node")])) == [("cpu", "cpu-node")]


def test_given_a_gpu_job_when_a_nvenc_node_exists_then_it_goes_there_with_the_hardware_encoder():
    nodes = [node("cpu-node"), node("gpu-node", encoders=("libx264", "h264_nvenc"))]
    cycle = run([job("gpu", accelerator="nvidia")], nodes, [lease("cpu-node", slots=4), lease("gpu-node")])
    assert [(a.job.name, a.node, a.encoder) for a in cycle.assignments] == [("gpu", "gpu-node", "h264_nvenc")]


@pytest.mark.parametrize(
    ("accelerator", "encoders", "expected"),
    [
        ("auto", ("libx264", "h264_nvenc"), "h264_nvenc"),
        ("auto", ("libx264",), "libx264"),
        ("none", ("libx264", "h264_nvenc"), "libx264"),
        ("intel", ("libx264", "h264_nvenc"), None),
    ],
)
def test_given_an_accelerator_when_placing_then_the_node_must_have_the_required_encoder(
    accelerator, encoders, expected
):
    cycle = run([job("j", accelerator=accelerator)], [node("n", encoders=encoders)], [lease("n")])
    assert [a.encoder for a in cycle.assignments] == ([expected] if expected else [])


def test_given_a_node_selector_when_placing_then_only_matching_nodes_qualify():
    nodes = [node("a", zone="x"), node("b", zone="y")]
    cycle = run([job("j", node_selector={"zone": "y"})], nodes, [lease("a"), lease("b")])
    assert placed(cycle) == [("j", "b")]


def test_given_a_job_in_backoff_when_scheduling_then_it_is_skipped_until_retry_after():
    jobs = [job("retrying", retry_after=30, priority="high"), job("fresh", queued=5)]
    assert placed(run(jobs, [node("n")], [lease("n")])) == [("fresh", "n")]
    later = NOW + timedelta(seconds=31)
    assert placed(run(jobs, [node("n")], [lease("n", age=-30)], now=later)) == [("retrying", "n")]


def test_given_a_paused_queued_job_when_scheduling_then_it_is_not_placed():
    assert placed(run([job("p", paused=True)], [node("n")], [lease("n")])) == []


def test_given_no_free_slot_when_a_live_job_waits_then_the_lowest_running_batch_job_is_preempted():
    jobs = [
        job("batch-high", queue="batch", priority="high", phase="Processing", node="n"),
        job("batch-low", queue="batch", priority="low", phase="Processing", node="n"),
        job("default", phase="Processing", node="n"),
        job("live", queue="live"),
    ]
    cycle = run(jobs, [node("n")], [lease("n", slots=3)])
    assert [(p.victim.name, p.node, p.for_job.name) for p in cycle.preemptions] == [("batch-low", "n", "live")]
    # Not admitted in the same cycle: only once the victim's slot is released (no overbooking).
    assert placed(cycle) == [] and reasons(cycle) == {"live": "Preempting"}


def test_given_no_batch_job_running_when_a_live_job_waits_then_nothing_is_preempted():
    jobs = [
        job("default", phase="Processing", node="n"),
        job("live", queue="live"),
        job("batch-waiting", queue="batch"),
    ]
    cycle = run(jobs, [node("n")], [lease("n", slots=1)])
    assert cycle.preemptions == [] and placed(cycle) == []


def test_given_preemption_off_when_a_live_job_waits_then_batch_jobs_keep_running():
    jobs = [job("b", queue="batch", phase="Processing", node="n"), job("live", queue="live")]
    assert run(jobs, [node("n")], [lease("n")], preemption=False).preemptions == []


def test_given_a_heap_when_jobs_are_updated_and_removed_then_order_follows_the_latest_keys():
    heap = JobHeap()
    jobs = {n: job(n, queued=i) for i, n in enumerate("abcd")}
    for j in jobs.values():
        heap.push(j.key, order_key(j, VALUES))
    heap.push(("ns", "d"), order_key(job("d", queue="live"), VALUES))
    heap.remove(("ns", "b"))
    assert [k[1] for k in heap.ordered()] == ["d", "a", "c"]
    assert len(heap) == 3


def test_given_10000_queued_jobs_and_100_nodes_when_one_cycle_runs_then_it_fills_every_slot_quickly():
    import time

    shapes = [{"accelerator": "nvidia"}, {"queue": "live"}, {"queue": "batch", "priority": "low"}, {}]
    jobs = [job(f"j{i:05d}", queued=i / 100, **shapes[i % 4]) for i in range(10_000)]
    nodes = [node(f"n{i:03d}") for i in range(100)]  # no NVENC anywhere: every 4th job fits nowhere
    snapshot = node_snapshot(nodes, {n.name: lease(n.name, slots=2) for n in nodes}, jobs, now=NOW, default_slots=2)
    queued = sorted(jobs, key=lambda j: order_key(j, VALUES))
    started = time.perf_counter()
    cycle = schedule(queued, snapshot, now=NOW, priority_values=VALUES)
    elapsed = time.perf_counter() - started
    assert len(cycle.assignments) == 200
    assert all(a.job.queue == "live" for a in cycle.assignments)
    assert elapsed < 0.5, f"{elapsed:.3f}s"


def test_given_a_limit_when_more_jobs_fit_then_the_cycle_stops_there_and_says_so():
    jobs = [job(f"j{i}", queued=i) for i in range(5)]
    snapshot = node_snapshot([node("n")], {"n": lease("n", slots=10)}, jobs, now=NOW, default_slots=2)
    cycle = schedule(jobs, snapshot, now=NOW, priority_values=VALUES, limit=3)
    assert [a.job.name for a in cycle.assignments] == ["j0", "j1", "j2"] and cycle.truncated


def reasons(cycle) -> dict[str, str]:
    return {w.job.name: w.reason for w in cycle.waiting}


def test_given_jobs_that_cannot_be_placed_when_scheduling_then_each_says_why():
    jobs = [
        job("running", phase="Processing", node="n"),
        job("gpu", accelerator="nvidia", priority="high"),
        job("cpu", queued=1),
        job("classless", priority_class="ffrtmp-nope", queued=2),
    ]
    cycle = run(jobs, [node("n")], [lease("n", slots=1)])
    assert placed(cycle) == []
    assert reasons(cycle) == {"gpu": "NoMatchingNode", "cpu": "NoFreeSlot", "classless": "PriorityClassNotFound"}
    messages = {w.job.name: w.message for w in cycle.waiting}
    assert "h264_nvenc" in messages["gpu"] and "1 slot(s) of the 1 node(s)" in messages["cpu"]


def test_given_a_missing_priority_class_when_a_slot_is_free_then_the_job_waits_and_the_next_one_runs():
    jobs = [job("classless", priority_class="ffrtmp-nope", priority="high"), job("next", queued=1)]
    cycle = run(jobs, [node("n")], [lease("n")])
    assert placed(cycle) == [("next", "n")] and reasons(cycle) == {"classless": "PriorityClassNotFound"}


def test_given_a_job_being_deleted_when_a_slot_is_free_then_it_is_not_admitted():
    deleting = job_record(
        {
            "metadata": {"name": "gone", "namespace": "ns", "uid": "g", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"input": {"testSource": {}}, "output": {"url": "rtmp://s/x"}},
            "status": {"phase": "Queued", "queuedAt": stamp(NOW)},
        }
    )
    assert placed(run([deleting], [node("n")], [lease("n")])) == []


def test_given_10000_jobs_behind_full_nodes_when_scheduling_then_only_a_few_are_told_why():
    jobs = [job(f"j{i:05d}", queued=i) for i in range(10_000)]
    cycle = run([job("r", phase="Processing", node="n"), *jobs], [node("n")], [lease("n", slots=1)])
    assert len(cycle.waiting) == 32 and {w.reason for w in cycle.waiting} == {"NoFreeSlot"}
