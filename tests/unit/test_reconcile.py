"""What the operator does about one job given its pods and its node's heartbeat (pure `decide`), and
the cache's memory budget for 10,000 jobs."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from ffrtmp_api import Phase
from ffrtmp_operator.cache import Cache
from ffrtmp_operator.lifecycle import stamp
from ffrtmp_operator.reconcile import GRACE_NOW, NOTHING, decide
from ffrtmp_operator.records import PodRecord, job_record

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
HELLO = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "hello.yaml").read_text())


def job(
    phase=None,
    *,
    paused=False,
    canceled=False,
    attempts=1,
    failures=0,
    max_retries=2,
    paused_from=None,
    started=None,
    active=None,
    held=None,
    timeout=None,
    result=False,
    deleting=False,
    spec=None,
):
    """`active`: seconds since the current stretch on the node began; `held`: seconds held before it."""
    spec = {**HELLO["spec"], "paused": paused, "canceled": canceled, "maxRetries": max_retries, **(spec or {})}
    if timeout:
        spec["timeoutSeconds"] = timeout
    status = {"attempts": attempts, "failures": failures}
    if phase:
        status["phase"] = phase
    if phase in ("Assigned", "Processing", "Paused"):
        status.update(node="n1", pod=f"hello-{attempts}")
    if paused_from:
        status["pausedFrom"] = paused_from
    if started is not None:
        status["startedAt"] = stamp(NOW - timedelta(seconds=started))
    if active is not None:
        status["activeSince"] = stamp(NOW - timedelta(seconds=active))
    if held is not None:
        status["activeSeconds"] = held
    if result:
        status["result"] = {"outputBytes": 1000}
    meta = {"name": "hello", "namespace": "ns", "uid": "u1"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:00:00Z"
    return job_record({"metadata": meta, "spec": spec, "status": status})


def pod(phase="Running", *, attempt=1, exit_code=None, message=None, deleting=False, **more):
    return PodRecord("ns", f"hello-{attempt}", "hello", "u1", attempt, phase, exit_code, message, deleting, **more)


def run(the_job, pods=(), *, alive=True, start_timeout=None):
    return decide(
        the_job, list(pods), node_alive=alive, now=NOW, backoff_base=1, backoff_cap=8, start_timeout=start_timeout
    )


FINISHED_LONG_AGO = NOW - timedelta(seconds=60)


@pytest.mark.parametrize(
    ("the_job", "pods", "target", "reason"),
    [
        (job(None), [], Phase.QUEUED, "Created"),
        (job(None, paused=True), [], Phase.PAUSED, "PausedByUser"),
        (job("Queued", paused=True), [], Phase.PAUSED, "PausedByUser"),
        (job("Paused", paused_from="Queued"), [], Phase.QUEUED, "ResumedByUser"),
        (job("Queued", canceled=True), [], Phase.CANCELED, "CanceledByUser"),
        (job("Assigned"), [pod("Running")], Phase.PROCESSING, "Started"),
        (job("Assigned", result=True), [pod("Succeeded")], Phase.COMPLETED, "Succeeded"),
        (job("Processing", result=True), [pod("Succeeded")], Phase.COMPLETED, "Succeeded"),
        (job("Processing", paused=True), [pod()], Phase.PAUSED, "PausedByUser"),
        (job("Paused", paused_from="Processing"), [pod()], Phase.PROCESSING, "ResumedByUser"),
        (job("Paused", paused_from="Assigned"), [pod()], Phase.PROCESSING, "ResumedByUser"),
        (job("Processing"), [pod("Failed", exit_code=10)], Phase.FAILED, "InputError"),
        (job("Processing", attempts=1), [pod("Failed", exit_code=11)], Phase.QUEUED, "EncoderError"),
        (
            job("Processing", attempts=3, failures=2),
            [pod("Failed", exit_code=11, attempt=3)],
            Phase.FAILED,
            "RetriesExhausted",
        ),
        (job("Processing", active=100, timeout=60), [pod()], Phase.FAILED, "Timeout"),
        (job("Assigned", active=100, timeout=60), [pod("Pending")], Phase.FAILED, "Timeout"),
        (job("Processing"), [], Phase.QUEUED, "Evicted"),
        (job("Processing"), [pod("Failed", exit_code=143, reason="Evicted")], Phase.QUEUED, "Evicted"),
        (job("Processing"), [pod("Failed", exit_code=143, reason="NodeShutdown")], Phase.QUEUED, "NodeShutdown"),
        (job("Processing"), [pod("Failed", exit_code=137, reason="NodeLost")], Phase.QUEUED, "NodeLost"),
        (
            job("Processing"),
            [pod("Failed", exit_code=143, disruption="EvictionByEvictionAPI")],
            Phase.QUEUED,
            "Evicted",
        ),
        (job("Processing"), [pod("Running", deleting=True)], Phase.QUEUED, "Evicted"),
        (job("Processing"), [pod("Succeeded", finished_at=FINISHED_LONG_AGO)], Phase.QUEUED, "PodError"),
    ],
)
def test_given_a_job_and_its_pod_when_deciding_then_the_phase_follows_the_lifecycle(the_job, pods, target, reason):
    decision = run(the_job, pods)
    assert (decision.target, decision.reason) == (target, reason)


def test_given_a_run_that_held_its_node_for_50s_of_a_60s_timeout_when_paused_for_long_then_it_does_not_time_out():
    # 50 s held before the pause; the pause itself (however long) does not count.
    assert run(job("Paused", paused=True, paused_from="Processing", held=50, timeout=60), [pod()]) == NOTHING
    # Resumed 5 s ago: 55 s held, still within the limit; 15 s ago: 65 s, over it.
    assert run(job("Processing", held=50, active=5, timeout=60), [pod()]) == NOTHING
    assert run(job("Processing", held=50, active=15, timeout=60), [pod()]).reason == "Timeout"


def test_given_a_pod_that_never_starts_when_the_start_timeout_passes_then_the_run_ends_with_the_pods_reason():
    stuck = pod("Pending", waiting="ImagePullBackOff: Back-off pulling image ffrtmp:nope")
    assert run(job("Assigned", active=200), [stuck], start_timeout=300) == NOTHING
    decision = run(job("Assigned", active=400), [stuck], start_timeout=300)
    assert (decision.target, decision.reason) == (Phase.QUEUED, "StartTimeout")
    assert "ImagePullBackOff" in decision.message
    assert decision.extra["failures"] == 1 and "retryAfter" in decision.extra  # a failed run: counted
    assert decision.delete_pods == (("hello-1", None),)
    # A pod that runs (its Processing not written yet) is no start timeout.
    assert run(job("Assigned", active=400), [pod("Running")], start_timeout=300).target == Phase.PROCESSING


@pytest.mark.parametrize("alive", [False, True])
def test_given_a_disruption_with_no_retry_left_when_deciding_then_it_is_requeued_at_once_uncounted(alive):
    pods = [pod()] if not alive else [pod("Failed", exit_code=143, reason="Evicted")]
    decision = run(job("Processing", failures=2, max_retries=2), pods, alive=alive)
    assert decision.target == Phase.QUEUED
    assert decision.extra == {"disruptions": 1}  # no failures counted, no retryAfter: no backoff


def test_given_a_pod_that_succeeded_when_the_result_has_not_arrived_yet_then_the_job_waits_for_it():
    just_now = pod("Succeeded", finished_at=NOW - timedelta(seconds=2))
    assert run(job("Processing"), [just_now]) == NOTHING
    assert run(job("Processing", result=True), [just_now]).target == Phase.COMPLETED


def test_given_a_job_being_deleted_when_its_pod_is_missing_then_no_pod_is_created():
    assert run(job("Assigned", deleting=True)) == NOTHING


def test_given_a_running_job_when_canceled_then_it_is_canceled_and_its_pod_deleted():
    decision = run(job("Processing", canceled=True), [pod()])
    assert decision.target == Phase.CANCELED
    assert decision.delete_pods == (("hello-1", None),)


def test_given_a_failed_attempt_when_retrying_then_the_old_pod_goes_and_retry_after_is_set():
    decision = run(job("Processing", attempts=2, failures=1), [pod("Failed", exit_code=11, attempt=2)])
    assert decision.delete_pods == (("hello-2", None),)
    assert decision.extra == {"failures": 2, "retryAfter": stamp(NOW + timedelta(seconds=2))}


def test_given_a_dead_node_when_deciding_then_the_job_is_requeued_with_node_lost_and_the_pod_force_deleted():
    decision = run(job("Processing"), [pod()], alive=False)
    assert (decision.target, decision.reason) == (Phase.QUEUED, "NodeLost")
    assert decision.delete_pods == (("hello-1", GRACE_NOW),)


def test_given_an_assigned_job_without_its_pod_when_deciding_then_the_pod_is_created():
    assert run(job("Assigned")).create_pod is True


def test_given_a_deleted_jobs_pod_under_the_reused_name_when_deciding_then_it_is_deleted_first():
    orphan = PodRecord("ns", "hello-1", "hello", "old-uid", 1, "Succeeded", 0, None, False)
    decision = run(job("Assigned"), [orphan])
    assert decision.delete_pods == (("hello-1", None),) and decision.create_pod is False
    assert run(job("Assigned")).create_pod is True  # once it is gone, the job's own pod is created


def test_given_a_running_job_when_nothing_changed_then_nothing_is_done():
    assert run(job("Processing"), [pod()]) == NOTHING


def test_given_a_completed_job_when_its_pod_finished_then_the_pod_is_kept_for_logs():
    assert run(job("Completed"), [pod("Succeeded")]) == NOTHING


def test_given_a_broken_spec_when_deciding_then_only_that_job_fails():
    broken = job_record({"metadata": {"name": "bad", "namespace": "ns"}, "spec": {"queue": "nope"}, "status": {}})
    decision = run(broken)
    assert decision.target == Phase.FAILED and "invalid spec" in decision.message


def test_given_a_garbage_status_when_parsing_then_the_record_is_marked_broken_not_raised():
    record = job_record(
        {"metadata": {"name": "x", "namespace": "ns"}, "spec": HELLO["spec"], "status": {"phase": "Exploded"}}
    )
    assert record.broken


def test_given_10000_jobs_when_cached_then_they_fit_well_under_250_mb():
    bodies = []
    for i in range(10_000):
        status = {
            "phase": "Queued",
            "queuedAt": stamp(NOW),
            "attempts": 1,
            "transitions": [{"phase": "Queued", "at": stamp(NOW), "reason": "Created", "message": "queued"}] * 4,
            "conditions": [
                {"type": t, "status": "False", "reason": "Created", "lastTransitionTime": stamp(NOW)}
                for t in ("Scheduled", "Running", "Paused", "Complete", "Failed", "Canceled")
            ],
            "progress": {"percent": 50.0},
            "result": {"psnr": 40.0},
        }
        bodies.append(
            {
                "metadata": {
                    "name": f"job-{i:05d}",
                    "namespace": "ns",
                    "uid": f"uid-{i:032d}",
                    "resourceVersion": str(i),
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                },
                "spec": HELLO["spec"],
                "status": status,
            }
        )
    tracemalloc.start()
    cache = Cache()
    for body in bodies:
        cache.upsert_job(job_record(body))
    used, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(cache.queue) == 10_000
    print(f"cache of 10,000 jobs: {used / 2**20:.1f} MiB")
    assert used < 60 * 1024 * 1024, f"{used / 2**20:.1f} MiB"


def test_given_a_progress_only_update_when_cached_then_the_scheduler_is_not_woken():
    cache = Cache()
    body = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "1"},
        "spec": HELLO["spec"],
        "status": {"phase": "Processing", "node": "n1", "pod": "p-1", "attempts": 1},
    }
    assert cache.upsert_job(job_record(body)) is True
    cache.take_dirty()
    progressed = {
        **body,
        "metadata": {**body["metadata"], "resourceVersion": "2"},
        "status": {**body["status"], "progress": {"percent": 40.0}},
    }
    assert cache.upsert_job(job_record(progressed)) is False
    assert cache.dirty == {} and cache.jobs[("ns", "p")].resource_version == "2"
    older = {**body, "status": {**body["status"], "phase": "Assigned"}}
    assert cache.upsert_job(job_record(older)) is False  # resourceVersion 1 < 2: a late event
    assert cache.jobs[("ns", "p")].phase == Phase.PROCESSING


def test_given_lease_renewals_when_cached_then_only_appearance_slot_changes_and_revival_count():
    from ffrtmp_operator.records import LeaseRecord

    cache = Cache()
    assert cache.set_lease("n", LeaseRecord("n", NOW, 15, 2)) is True
    assert cache.set_lease("n", LeaseRecord("n", NOW + timedelta(seconds=5), 15, 2)) is False
    assert cache.set_lease("n", LeaseRecord("n", NOW + timedelta(seconds=6), 15, 3)) is True
    assert cache.set_lease("n", LeaseRecord("n", NOW + timedelta(seconds=60), 15, 3)) is True  # back from the dead


def test_given_jobs_created_in_one_second_when_ordering_arrivals_then_the_resource_version_breaks_the_tie():
    def created(name, rv, ts="2026-01-01T00:00:00Z"):
        meta = {"name": name, "namespace": "ns", "uid": name, "resourceVersion": rv, "creationTimestamp": ts}
        return job_record({"metadata": meta, "spec": HELLO["spec"]})

    jobs = [created("a-late", "900"), created("z-early", "100"), created("m-next-second", "50", "2026-01-01T00:00:01Z")]
    assert [j.name for j in sorted(jobs, key=lambda j: j.arrival)] == ["z-early", "a-late", "m-next-second"]
