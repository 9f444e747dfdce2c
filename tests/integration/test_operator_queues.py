"""TranscodeQueues against a real API server (the test plays the kubelet): a queue paused and resumed, a
queue cap of 1, a job naming a queue that appears later, preemption that waits for the victim's slot
(twice, with maxRetries 0, and the victim still completes), two namespaces sharing one slot, and the
queue's status and `kubectl get tq`."""

from __future__ import annotations

import time

from kubernetes import client

from tests.support import delete_jobs, wait_until
from tests.support.cli import run_cli
from tests.support.cluster import Cluster


def scheduled(status: dict) -> dict:
    return next((c for c in status.get("conditions", []) if c["type"] == "Scheduled"), {})


def waits_because(cluster, job: str, reason: str) -> dict:
    return wait_until(
        lambda: (s := cluster.status(job)) and scheduled(s).get("reason") == reason and s,
        timeout=20,
        what=f"{job} waiting: {reason}",
    )


def run(cluster, job: str) -> str:
    pod = cluster.wait_phase(job, "Assigned")["pod"]
    cluster.pod_running(pod)
    cluster.wait_phase(job, "Processing")
    return pod


def finish(cluster, job: str, pod: str) -> None:
    cluster.pod_succeeded(pod)
    cluster.wait_phase(job, "Completed")


def test_given_a_paused_queue_when_resumed_then_its_waiting_job_runs_and_its_running_job_never_stopped(
    operator, cluster, kubectl, control_plane
):
    cluster.add_node("w", slots=2)
    queue = cluster.create_queue("media", order=50)
    cluster.create_job("first", queue=queue)
    first = run(cluster, "first")
    cluster.patch_queue(queue, paused=True)
    cluster.create_job("second", queue=queue)
    status = waits_because(cluster, "second", "QueuePaused")
    assert status["phase"] == "Queued" and "paused" in scheduled(status)["message"]
    wait_until(lambda: [e for e in cluster.events("second") if e.reason == "QueuePaused"], what="an Event")
    assert cluster.status("first")["phase"] == "Processing"  # admitted jobs run on
    status = wait_until(
        lambda: (s := cluster.queue_status(queue)).get("pending") == 1 and s.get("running") == 1 and s,
        what="queue status",
    )
    assert status["admitted"] == 1
    active = status["conditions"][0]
    assert (active["type"], active["status"], active["reason"]) == ("Active", "False", "Paused")
    table = kubectl("get", "tq", queue).stdout.split()
    assert {"ORDER", "PAUSED", "PENDING", "ADMITTED", "RUNNING", "true"} <= set(table)
    listed = run_cli("queues", env=control_plane.env())
    assert listed.returncode == 0, listed.stderr
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith(queue))
    assert row[1:7] == ["50", "true", "-", "1", "1", "1"]  # order, paused, max, pending, admitted, running
    assert any(line.startswith("live ") and "(built-in)" in line for line in listed.stdout.splitlines())
    cluster.patch_queue(queue, paused=False)
    run(cluster, "second")
    finish(cluster, "first", first)
    wait_until(lambda: cluster.queue_status(queue)["conditions"][0]["status"] == "True", what="Active again")


def test_given_a_queue_cap_of_1_when_two_jobs_wait_and_slots_are_free_then_they_run_one_after_the_other(
    operator, cluster
):
    cluster.add_node("w", slots=3)
    queue = cluster.create_queue("capped", maxRunning=1)
    cluster.create_job("one", queue=queue)
    time.sleep(0.05)
    cluster.create_job("two", queue=queue)
    cluster.create_job("other")  # another queue: the cap is the queue's, not the node's
    pod = run(cluster, "one")
    assert "1 job(s) holding a node" in scheduled(waits_because(cluster, "two", "QueueAtCapacity"))["message"]
    cluster.wait_phase("other", "Assigned")
    time.sleep(1)
    assert cluster.status("two")["phase"] == "Queued"
    finish(cluster, "one", pod)
    cluster.wait_phase("two", "Assigned")


def test_given_a_job_naming_a_queue_that_does_not_exist_when_the_queue_is_created_then_the_job_starts(
    operator, cluster
):
    cluster.add_node("w", slots=1)
    name = f"nightly-{cluster.suffix}"
    cluster.create_job("early", queue=name)
    status = waits_because(cluster, "early", "QueueNotFound")
    assert name in scheduled(status)["message"]
    wait_until(
        lambda: [e for e in cluster.events("early") if e.reason == "QueueNotFound" and e.type == "Warning"],
        what="a Warning Event",
    )
    assert cluster.create_queue("nightly") == name
    cluster.wait_phase("early", "Assigned")


def test_given_a_batch_job_with_maxretries_0_when_preempted_twice_then_each_live_job_waits_for_its_slot_and_it_completes(
    operator, cluster
):
    cluster.add_node("w", slots=1)
    cluster.create_job("bulk", queue="batch", maxRetries=0)
    for round_, live in enumerate(("live-a", "live-b"), start=1):
        bulk_pod = run(cluster, "bulk")
        cluster.create_job(live, queue="live")
        bulk = wait_until(
            lambda r=round_: (s := cluster.status("bulk")).get("disruptions") == r and s, what=f"preemption {round_}"
        )
        assert bulk["reason"] in ("Preempted", "Admitted") and bulk.get("failures", 0) == 0
        assert any(
            t["reason"] == "Preempted" and f"by live job {cluster.ns}/{live}" in t["message"]
            for t in bulk["transitions"]
        )
        waits_because(cluster, live, "Preempting")
        time.sleep(1)  # the victim's pod is still there (deleting): no two encoders on the one slot
        assert cluster.status(live)["phase"] == "Queued"
        cluster.core.delete_namespaced_pod(bulk_pod, cluster.ns, grace_period_seconds=0)  # the kubelet confirms
        finish(cluster, live, run(cluster, live))
    pod = run(cluster, "bulk")
    finish(cluster, "bulk", pod)
    status = cluster.status("bulk")
    assert (status["attempts"], status.get("failures", 0), status["disruptions"]) == (3, 0, 2)


def test_given_fair_sharing_when_two_namespaces_share_one_slot_then_the_late_small_tenant_is_not_starved(
    start_operator, cluster, api_client, namespace
):
    other = f"{namespace[:50]}-b"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": other, "labels": {"ffrtmp.io/test": "true"}}})
    tenant_b = Cluster(api_client, other)
    try:
        start_operator("--namespace", other).wait_active()
        queue = cluster.create_queue("shared", fairSharing={"enabled": True})
        for i in range(5):
            cluster.create_job(f"a{i}", queue=queue)
            time.sleep(0.02)
        for i in range(2):
            tenant_b.create_job(f"b{i}", queue=queue, select=False, nodeSelector=cluster.selector)
        for i in range(5):
            cluster.wait_phase(f"a{i}", "Queued")
        cluster.add_node("only", slots=1)
        order: list[str] = []
        tenants = {**{f"a{i}": cluster for i in range(5)}, **{f"b{i}": tenant_b for i in range(2)}}
        for _ in range(4):
            name = wait_until(
                lambda: next(
                    (n for n, c in tenants.items() if n not in order and c.status(n).get("phase") == "Assigned"), None
                ),
                timeout=20,
                what="the next job on the slot",
            )
            order.append(name)
            tenants[name].pod_succeeded(f"{name}-1")
            tenants[name].wait_phase(name, "Completed")
        assert order == ["a0", "b0", "a1", "b1"]
    finally:
        tenant_b.close()
        delete_jobs(api_client, other)
        core.delete_namespace(other)
