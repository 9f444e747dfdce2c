"""Queues as objects in the scheduling policy: order between queues, pause, maxRunning, a queue that does
not exist, preemption by each queue's policy without overbooking, fair sharing between namespaces and aging.
Pure: records in, a cycle out, no cluster."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import ffrtmp_api as api
from ffrtmp_operator import fairshare, queues
from ffrtmp_operator.records import PodRecord
from ffrtmp_operator.scheduling import (
    node_snapshot,
    order_key,
    priority_value,
    schedule,
)

from tests.unit.test_scheduling import NOW, VALUES, job, lease, node, placed, reasons


def queue(name: str, **spec) -> queues.QueueRecord:
    return queues.queue_record({"metadata": {"name": name, "generation": 1}, "spec": spec})


def with_queues(*objects: queues.QueueRecord) -> dict[str, queues.QueueRecord]:
    return queues.effective({q.name: q for q in objects})


def cycle_of(jobs, *, slots=1, the_queues=queues.BUILTIN, pods=(), now=NOW, usage=None, preemption=True):
    fresh = lease("n", slots=slots, age=1 - (now - NOW).total_seconds())
    snapshot = node_snapshot([node("n")], {"n": fresh}, jobs, now=now, default_slots=2, pods=pods)
    held = Counter((j.queue, j.namespace) for n in snapshot.values() for j in n.running)
    queued = sorted((j for j in jobs if j.phase == api.Phase.QUEUED), key=lambda j: order_key(j, VALUES, the_queues))
    usage = usage or fairshare.Usage()

    def share(q: str, ns: str) -> float:
        return held[(q, ns)] + usage.of(q, ns, now=now, half_life=600)

    ordered = fairshare.arrange(
        queued, queues=the_queues, priority_of=lambda j: priority_value(j, VALUES), share=share, now=now
    )
    return schedule(
        ordered, snapshot, now=now, priority_values=VALUES, queues=the_queues, held=held, preemption=preemption
    )


def in_ns(record, namespace):
    from dataclasses import replace

    return replace(record, namespace=namespace)


# -------------------------------------------------------------------------------------------- queues


def test_given_an_admin_queue_with_a_lower_order_when_ordering_then_it_comes_before_live():
    urgent = with_queues(queue("urgent", order=0), queue("live", order=50))
    jobs = [job("l", queue="live"), job("u", queue="urgent", queued=5), job("d", queue="default")]
    assert [j.name for j in sorted(jobs, key=lambda j: order_key(j, VALUES, urgent))] == ["u", "l", "d"]


def test_given_a_paused_queue_when_a_slot_is_free_then_its_jobs_wait_and_other_queues_run():
    the_queues = with_queues(queue("default", paused=True))
    cycle = cycle_of([job("held", priority="high"), job("batch", queue="batch")], the_queues=the_queues)
    assert placed(cycle) == [("batch", "n")] and reasons(cycle) == {"held": "QueuePaused"}


def test_given_a_queue_cap_of_1_when_two_slots_are_free_then_one_of_its_jobs_runs_and_the_other_waits():
    the_queues = with_queues(queue("capped", maxRunning=1))
    jobs = [job("a", queue="capped"), job("b", queue="capped", queued=1), job("c", queued=2)]
    cycle = cycle_of(jobs, slots=3, the_queues=the_queues)
    assert placed(cycle) == [("a", "n"), ("c", "n")] and reasons(cycle) == {"b": "QueueAtCapacity"}
    running = job("a", queue="capped", phase="Processing", node="n")
    assert placed(cycle_of([running, job("b", queue="capped", queued=1)], slots=3, the_queues=the_queues)) == []


def test_given_a_job_naming_a_missing_queue_when_scheduling_then_it_waits_until_the_queue_exists():
    orphan = job("orphan", queue="nightly")
    cycle = cycle_of([orphan])
    assert placed(cycle) == [] and reasons(cycle) == {"orphan": "QueueNotFound"}
    assert placed(cycle_of([orphan], the_queues=with_queues(queue("nightly")))) == [("orphan", "n")]


# ---------------------------------------------------------------------------------------- preemption


def running(name, queue_name, priority="medium", **more):
    return job(name, queue=queue_name, priority=priority, phase="Processing", node="n", **more)


def preempted(cycle):
    return [(p.victim.name, p.for_job.name) for p in cycle.preemptions]


def test_given_a_preempted_victim_whose_pod_still_stops_when_the_next_cycle_runs_then_the_preemptor_waits_for_it():
    requeued = job("victim", queue="batch", queued=-10)  # back in the queue: its job no longer holds the slot
    stopping = PodRecord("ns", "victim-1", "victim", "victim", 1, "Running", None, None, True, node="n")
    cycle = cycle_of([requeued, job("live", queue="live")], pods=[stopping])
    assert placed(cycle) == [] and preempted(cycle) == [] and reasons(cycle)["live"] == "Preempting"
    gone = cycle_of([requeued, job("live", queue="live")])  # the pod is gone: the slot is free
    assert placed(gone) == [("live", "n")]


def test_given_a_pod_that_finished_when_snapshotting_then_its_slot_is_free():
    done = PodRecord("ns", "old-1", "old", "old", 1, "Failed", 143, None, True, node="n")
    assert placed(cycle_of([job("new")], pods=[done])) == [("new", "n")]


def test_given_batch_listing_live_to_reclaim_from_then_live_is_still_never_its_victim():
    the_queues = with_queues(queue("batch", order=200, preemption={"reclaimFrom": ["live"]}))
    cycle = cycle_of([running("stream", "live"), job("bulk", queue="batch", priority="high")], the_queues=the_queues)
    assert preempted(cycle) == []


def test_given_live_with_preemption_turned_off_then_batch_keeps_its_slot():
    the_queues = with_queues(queue("live", order=0))  # no reclaimFrom: the per-queue off switch
    assert preempted(cycle_of([running("bulk", "batch"), job("stream", queue="live")], the_queues=the_queues)) == []


def test_given_within_queue_lower_priority_when_a_high_job_fits_nowhere_then_only_a_lower_one_is_preempted():
    the_queues = with_queues(queue("default", preemption={"withinQueue": "LowerPriority"}))
    same = cycle_of([running("peer", "default", "high"), job("urgent", priority="high")], the_queues=the_queues)
    assert preempted(same) == []
    lower = cycle_of([running("low", "default", "low"), job("urgent", priority="high")], the_queues=the_queues)
    assert preempted(lower) == [("low", "urgent")]
    assert preempted(cycle_of([running("low", "default", "low"), job("urgent", priority="high")])) == []


def test_given_two_candidates_when_picking_a_victim_then_the_lowest_priority_started_last_goes():
    older = running("older", "batch", "low", queued=-100)
    jobs = [older, running("newer", "batch", "low"), running("high", "batch", "high"), job("stream", queue="live")]
    from dataclasses import replace

    jobs[0] = replace(older, active_since=NOW - timedelta(seconds=600))
    jobs[1] = replace(jobs[1], active_since=NOW - timedelta(seconds=5))
    assert preempted(cycle_of(jobs, slots=3)) == [("newer", "stream")]


# ------------------------------------------------------------------------------ fair sharing and aging


def test_given_fair_sharing_when_a_tenant_with_200_jobs_and_one_with_2_share_one_slot_then_they_alternate():
    the_queues = with_queues(queue("default", fairSharing={"enabled": True}))
    jobs = [in_ns(job(f"a{i:03d}", queued=i), "tenant-a") for i in range(200)]
    jobs += [in_ns(job(f"b{i}", queued=300 + i), "tenant-b") for i in range(2)]
    usage, order = fairshare.Usage(), []
    for step in range(4):  # one slot: each cycle admits one, which then finishes
        now = NOW + timedelta(seconds=400 + step)
        cycle = cycle_of([j for j in jobs if j.name not in order], the_queues=the_queues, usage=usage, now=now)
        (assignment,) = cycle.assignments
        order.append(assignment.job.name)
        usage.admitted("default", assignment.job.namespace, now=now, half_life=600)
    assert order == ["a000", "b0", "a001", "b1"]


def test_given_no_fair_sharing_when_the_same_tenants_wait_then_it_is_first_in_first_out():
    jobs = [in_ns(job(f"a{i}", queued=i), "tenant-a") for i in range(3)] + [in_ns(job("b0", queued=9), "tenant-b")]
    assert [a.job.name for a in cycle_of(jobs, slots=4).assignments] == ["a0", "a1", "a2", "b0"]


def test_given_aging_when_a_low_job_waited_long_enough_then_it_overtakes_newer_high_ones():
    the_queues = with_queues(queue("default", aging={"enabled": True, "intervalSeconds": 60, "step": 100}))
    old_low = job("old-low", priority="low", queued=-3600)  # 60 steps: 100 + 6000 > 1000
    new_high = job("new-high", priority="high", queued=0)
    assert placed(cycle_of([old_low, new_high], the_queues=the_queues)) == [("old-low", "n")]
    assert placed(cycle_of([old_low, new_high])) == [("new-high", "n")]  # no aging: priority first


def test_given_usage_when_time_passes_then_it_halves_every_half_life():
    usage = fairshare.Usage()
    usage.admitted("q", "ns", now=NOW, half_life=60)
    usage.admitted("q", "ns", now=NOW, half_life=60)
    assert usage.of("q", "ns", now=NOW + timedelta(seconds=60), half_life=60) == 1.0


# ------------------------------------------------------------------------------------------- status


def test_given_jobs_when_a_queue_status_is_made_then_it_counts_them_and_says_whether_it_admits():
    jobs = [job("w"), running("r", "default"), job("a", phase="Assigned", node="n"), job("other", queue="batch")]
    numbers = queues.counts(jobs)
    assert numbers["default"] == (1, 2, 1) and numbers["batch"] == (1, 0, 0)
    patch = queues.status(queue("default", paused=True), {}, numbers["default"], now=NOW)
    assert (patch["pending"], patch["admitted"], patch["running"]) == (1, 2, 1)
    assert (patch["conditions"][0]["status"], patch["conditions"][0]["reason"]) == ("False", "Paused")
    assert queues.status(queue("default", paused=True), patch, numbers["default"], now=NOW) is None  # no news
