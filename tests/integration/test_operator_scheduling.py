"""Scheduling against a real API server: queue/priority/FIFO order for one free slot, encoder-aware
placement that does not block CPU jobs, node heartbeat loss, and live preemption."""

from __future__ import annotations

import time

from tests.support import wait_until


def test_given_one_free_slot_when_jobs_of_mixed_queues_and_priorities_wait_then_they_run_in_order(operator, cluster):
    # Arrival order differs from the expected run order on purpose.
    jobs = [
        ("batch-high", {"queue": "batch", "priority": "high"}),
        ("default-low", {"queue": "default", "priority": "low"}),
        ("default-high-1", {"queue": "default", "priority": "high"}),
        ("live-low", {"queue": "live", "priority": "low"}),
        ("default-medium", {"queue": "default", "priority": "medium"}),
        ("default-high-2", {"queue": "default", "priority": "high"}),
        ("batch-custom", {"queue": "batch", "priority": "low", "priorityClassName": "ffrtmp-high"}),
    ]
    for name, spec in jobs:
        cluster.create_job(name, **spec)
        time.sleep(0.05)
    for name, _ in jobs:
        cluster.wait_phase(name, "Queued")
    cluster.add_node("only", slots=1)
    order = []
    for _ in jobs:
        running = wait_until(
            lambda: [n for n, _ in jobs if n not in order and cluster.status(n).get("phase") == "Assigned"],
            timeout=20,
            what="next assignment",
        )
        assert len(running) == 1, f"one slot, yet assigned at once: {running}"
        order.append(running[0])
        pod = cluster.status(running[0])["pod"]
        cluster.pod_succeeded(pod)
        cluster.wait_phase(running[0], "Completed")
    assert order == [
        "live-low",
        "default-high-1",
        "default-high-2",
        "default-medium",
        "default-low",
        "batch-high",
        "batch-custom",
    ]


def test_given_a_gpu_job_first_when_no_node_has_nvenc_then_the_cpu_job_behind_it_runs(operator, cluster):
    cpu_node = cluster.add_node("cpu", slots=1)
    cluster.create_job("gpu", priority="high", hardware={"accelerator": "nvidia"})
    time.sleep(0.05)
    cluster.create_job("cpu", priority="low")
    status = cluster.wait_phase("cpu", "Assigned")
    assert (status["node"], status["encoder"]) == (cpu_node, "libx264")
    # its Queued write may land just after the CPU job's admission, but it must not be placed
    assert cluster.wait_phase("gpu", "Queued")["phase"] == "Queued" and cluster.pods("gpu") == []
    gpu_node = cluster.add_node("gpu", slots=1, encoders=("libx264", "h264_nvenc"))
    status = cluster.wait_phase("gpu", "Assigned")
    assert (status["node"], status["encoder"]) == (gpu_node, "h264_nvenc")
    pod = cluster.pod(status["pod"])
    assert pod.spec.node_name == gpu_node


def test_given_a_cordoned_node_when_jobs_wait_then_none_is_placed_on_it(operator, cluster):
    node = cluster.add_node("cordoned", slots=2)
    cluster.core.patch_node(node, {"spec": {"unschedulable": True}})
    cluster.create_job("j")
    cluster.wait_phase("j", "Queued")
    time.sleep(1.5)
    assert cluster.status("j")["phase"] == "Queued"
    cluster.core.patch_node(node, {"spec": {"unschedulable": False}})
    assert cluster.wait_phase("j", "Assigned")["node"] == node


def test_given_a_running_job_when_its_node_stops_heartbeating_then_it_is_requeued_and_placed_elsewhere(
    operator, cluster
):
    lost = cluster.add_node("lost", slots=1, lease_seconds=3)
    cluster.create_job("j", maxRetries=3)
    assert cluster.wait_phase("j", "Assigned")["node"] == lost
    cluster.pod_running("j-1")
    cluster.wait_phase("j", "Processing")
    cluster.stop_heartbeat(lost)
    status = cluster.wait_phase("j", "Queued", timeout=15)
    assert status["reason"] == "NodeLost"
    # grace 0: no kubelet will ever confirm the pod's end on a lost node.
    wait_until(lambda: cluster.pods("j") == [], timeout=10, what="pod of the lost node removed")
    other = cluster.add_node("other", slots=1)
    status = wait_until(
        lambda: (s := cluster.status("j")).get("phase") == "Assigned" and s, timeout=15, what="re-placement"
    )
    assert (status["node"], status["attempts"], status["pod"]) == (other, 2, "j-2")


def test_given_no_free_slot_when_a_live_job_arrives_then_the_running_batch_job_is_preempted(operator, cluster):
    node = cluster.add_node("w", slots=1)
    cluster.create_job("batch", queue="batch")
    cluster.wait_phase("batch", "Assigned")
    cluster.pod_running("batch-1")
    cluster.wait_phase("batch", "Processing")
    cluster.create_job("live", queue="live")
    batch = wait_until(lambda: (s := cluster.status("batch")).get("reason") == "Preempted" and s, what="preempted")
    assert batch["phase"] == "Queued" and f"by live job {cluster.ns}/live" in batch["message"]
    # No overbooking: the live job is admitted only once the batch job's pod is gone (the kubelet's part).
    wait_until(lambda: cluster.pod("batch-1").metadata.deletion_timestamp, what="the victim's pod deleting")
    time.sleep(1.5)
    assert cluster.status("live")["phase"] == "Queued"
    cluster.core.delete_namespaced_pod("batch-1", cluster.ns, grace_period_seconds=0)
    status = cluster.wait_phase("live", "Assigned")
    assert status["node"] == node


def test_given_a_free_slot_when_a_job_arrives_then_one_status_write_queues_and_places_it(operator, cluster):
    import ffrtmp_api as api
    from kubernetes import watch

    node = cluster.add_node("w", slots=1)
    created = cluster.create_job("fast")
    stream = watch.Watch().stream(
        cluster.custom.list_namespaced_custom_object,
        api.GROUP,
        api.VERSION,
        cluster.ns,
        api.PLURAL,
        resource_version=created["metadata"]["resourceVersion"],
        timeout_seconds=20,
    )
    phases = []
    for event in stream:
        phases.append((event["type"], (event["object"].get("status") or {}).get("phase")))
        if phases[-1][1] == "Assigned":
            break
    # The first write after the create is the admission itself (Queued and Assigned transitions at once).
    assert phases == [("MODIFIED", "Assigned")]
    status = cluster.status("fast")
    assert [t["phase"] for t in status["transitions"]] == ["Queued", "Assigned"]
    # One Event for that write, as a pod gets one Scheduled Event: Admitted, naming the queue it went through.
    wait_until(
        lambda: (
            [(e.reason, e.message) for e in cluster.events("fast")]
            == [("Admitted", f"assigned to {node} (encoder libx264); queued in default")]
        ),
        timeout=10,
        what="one Admitted Event",
    )
