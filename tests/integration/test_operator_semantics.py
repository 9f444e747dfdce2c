"""Lifecycle semantics as Kubernetes Jobs and Kueue users expect them, against a real API server (the test
plays the kubelet): the deadline counts only time on a node, disruptions do not use up maxRetries, a
refused pod is FailedCreate, placement labels gate only new placement, fields stay fixed once assigned,
and a waiting job says why."""

from __future__ import annotations

import secrets
import time

import ffrtmp_api as api
import pytest
from kubernetes import client

from tests.support import wait_until


def conditions(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status.get("conditions", [])}


def run_job(cluster, name: str, **spec) -> dict:
    cluster.create_job(name, **spec)
    cluster.pod_running(cluster.wait_phase(name, "Assigned")["pod"])
    return cluster.wait_phase(name, "Processing")


def events(cluster, job: str, reason: str) -> list:
    return [e for e in cluster.events(job) if e.reason == reason]


def test_given_a_job_paused_longer_than_its_timeout_when_resumed_then_it_completes(operator, cluster):
    cluster.add_node("w", slots=1)
    run_job(cluster, "patient", timeoutSeconds=4)
    cluster.patch_spec("patient", paused=True)
    paused = cluster.wait_phase("patient", "Paused")
    assert paused.get("activeSince") is None and paused["activeSeconds"] < 4
    time.sleep(6)  # paused well past timeoutSeconds: that time does not count
    assert cluster.status("patient")["phase"] == "Paused"
    cluster.patch_spec("patient", paused=False)
    resumed = cluster.wait_phase("patient", "Processing")
    assert resumed["activeSince"]  # a new stretch on the node, on top of the time before the pause
    cluster.pod_succeeded("patient-1")
    status = cluster.wait_phase("patient", "Completed")
    assert status["activeSeconds"] < 4 and status["result"]


def test_given_a_pod_that_never_starts_when_the_start_timeout_passes_then_the_run_ends_with_its_reason(
    start_operator, cluster
):
    start_operator("--pod-start-timeout-seconds", "2").wait_active()
    cluster.add_node("w", slots=1)
    cluster.create_job("stuck", maxRetries=1)
    cluster.wait_phase("stuck", "Assigned")
    cluster.pod_waiting("stuck-1", reason="ImagePullBackOff", message='Back-off pulling image "ffrtmp:nope"')
    status = wait_until(
        lambda: (s := cluster.status("stuck")).get("reason") == "StartTimeout" and s, timeout=20, what="StartTimeout"
    )
    assert "did not start within 2s" in status["message"] and "ImagePullBackOff" in status["message"]
    assert status["failures"] == 1  # a failed run: it counts against maxRetries
    wait_until(lambda: events(cluster, "stuck", "StartTimeout"), what="a StartTimeout Event")
    # The slot is free again: the retry gets a new pod (the kubelet never started the old one).
    status = wait_until(
        lambda: (s := cluster.status("stuck")).get("attempts") == 2 and s, timeout=20, what="the second run"
    )
    assert status["pod"] == "stuck-2"


@pytest.mark.parametrize("how", ["evicted", "node lost", "node shutdown"])
def test_given_maxretries_0_when_the_run_is_disrupted_then_it_is_requeued_uncounted_and_completes(
    operator, cluster, how
):
    first = cluster.add_node("first", slots=1, lease_seconds=3)
    run_job(cluster, "sturdy", maxRetries=0)
    cluster.custom.patch_namespaced_custom_object_status(
        api.GROUP, api.VERSION, cluster.ns, api.PLURAL, "sturdy", {"status": {"progress": {"percent": 40}}}
    )
    if how == "evicted":
        cluster.pod_failed("sturdy-1", exit_code=143, reason="Evicted")
        expected = "Evicted"
    elif how == "node shutdown":
        cluster.pod_failed("sturdy-1", exit_code=143, reason="NodeShutdown")
        expected = "NodeShutdown"
    else:
        cluster.stop_heartbeat(first)
        expected = "NodeLost"
    requeued = wait_until(
        lambda: (s := cluster.status("sturdy")).get("disruptions") == 1 and s, timeout=20, what=expected
    )
    back = next(t for t in requeued["transitions"] if t["phase"] == "Queued" and t["reason"] == expected)
    assert "no retry used" in back["message"]
    assert requeued.get("failures", 0) == 0 and requeued.get("retryAfter") is None  # no backoff either
    assert "progress" not in requeued  # the next run starts from zero
    cluster.add_node("second", slots=1)
    status = wait_until(
        lambda: (s := cluster.status("sturdy")).get("attempts") == 2 and s.get("pod") and s,
        timeout=20,
        what="the second run",
    )
    cluster.pod_running(status["pod"])
    cluster.wait_phase("sturdy", "Processing")
    cluster.pod_succeeded(status["pod"])
    status = cluster.wait_phase("sturdy", "Completed")
    assert (status["attempts"], status.get("failures", 0), status["disruptions"]) == (2, 0, 1)


def test_given_a_resource_quota_when_the_pod_is_refused_then_the_job_waits_as_failed_create_and_starts_after(
    operator, cluster
):
    cluster.core.create_namespaced_resource_quota(
        cluster.ns, {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    )
    # No controller-manager here computes the quota's status, which admission checks against: write it.
    cluster.core.patch_namespaced_resource_quota_status(
        "no-pods", cluster.ns, {"status": {"hard": {"pods": "0"}, "used": {"pods": "0"}}}
    )
    cluster.add_node("w", slots=1)
    cluster.create_job("quota", maxRetries=0)
    status = wait_until(
        lambda: (s := cluster.status("quota")).get("reason") == "FailedCreate" and s, timeout=20, what="FailedCreate"
    )
    assert status.get("attempts", 0) == 0 and status.get("failures", 0) == 0 and status["failedCreates"] >= 1
    assert "quota" in status["message"].lower()
    scheduled = conditions(status)["Scheduled"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "FailedCreate")
    wait_until(
        lambda: [e for e in events(cluster, "quota", "FailedCreate") if e.type == "Warning"],
        what="a FailedCreate Warning Event",
    )
    cluster.core.delete_namespaced_resource_quota("no-pods", cluster.ns)
    status = wait_until(
        lambda: (s := cluster.status("quota")).get("phase") == "Assigned" and s,
        timeout=30,
        what="assigned once the quota is gone",
    )
    assert (status["attempts"], status["pod"]) == (1, "quota-1")


def test_given_a_priority_class_that_does_not_exist_when_queued_then_the_job_waits_until_it_does(
    start_operator, cluster, api_client
):
    name = f"ffrtmp-test-{secrets.token_hex(3)}"
    start_operator("--priority-class", name).wait_active()
    cluster.add_node("w", slots=1)
    cluster.create_job("classy", priorityClassName=name)
    status = wait_until(
        lambda: (
            (s := cluster.status("classy"))
            and conditions(s).get("Scheduled", {}).get("reason") == "PriorityClassNotFound"
            and s
        ),
        timeout=20,
        what="PriorityClassNotFound",
    )
    assert status["phase"] == "Queued" and name in conditions(status)["Scheduled"]["message"]
    wait_until(lambda: events(cluster, "classy", "PriorityClassNotFound"), what="a PriorityClassNotFound Event")
    scheduling = client.SchedulingV1Api(api_client)
    scheduling.create_priority_class({"metadata": {"name": name}, "value": 200})
    try:
        assert cluster.wait_phase("classy", "Assigned")["pod"] == "classy-1"
    finally:
        scheduling.delete_priority_class(name)


def test_given_a_running_job_when_its_node_loses_the_worker_label_or_is_cordoned_then_the_job_runs_on(
    operator, cluster
):
    node = cluster.add_node("w", slots=2, lease_seconds=3)
    run_job(cluster, "stay")
    cluster.core.patch_node(node, {"metadata": {"labels": {api.LABEL_WORKER: None}}})
    cluster.create_job("new")
    wait_until(
        lambda: conditions(cluster.status("new")).get("Scheduled", {}).get("reason") == "NoMatchingNode",
        timeout=20,
        what="the new job sees no worker node",
    )
    time.sleep(5)  # longer than the 3 s lease and many ticks: the running job is not touched
    assert cluster.status("stay")["phase"] == "Processing" and cluster.status("new")["phase"] == "Queued"
    cluster.core.patch_node(node, {"spec": {"unschedulable": True}})
    time.sleep(2)
    assert cluster.status("stay")["phase"] == "Processing"
    cluster.pod_succeeded("stay-1")
    assert cluster.wait_phase("stay", "Completed")["node"] == node


def test_given_a_job_once_assigned_when_it_waits_for_a_retry_then_input_output_and_queue_stay_fixed(
    operator, cluster, kubectl, namespace
):
    cluster.add_node("w", slots=1)
    run_job(cluster, "fixed", maxRetries=2)
    cluster.pod_failed("fixed-1", exit_code=11, message='{"reason": "EncoderError", "message": "boom"}')
    assert cluster.wait_phase("fixed", "Queued")["assignedAt"]
    for patch in ('{"spec":{"output":{"url":"rtmp://sink.invalid/live/other"}}}', '{"spec":{"queue":"batch"}}'):
        done = kubectl("patch", "tj", "fixed", "-n", namespace, "--type", "merge", "-p", patch, check=False)
        assert done.returncode != 0 and "immutable once the job was assigned" in done.stderr
    kubectl("patch", "tj", "fixed", "-n", namespace, "--type", "merge", "-p", '{"spec":{"priority":"high"}}')


def test_given_jobs_that_cannot_be_placed_when_they_wait_then_each_says_why_in_a_condition_and_an_event(
    operator, cluster, kubectl, namespace
):
    cluster.add_node("w", slots=1)
    run_job(cluster, "busy")
    cluster.create_job("gpu", hardware={"accelerator": "nvidia"})
    cluster.create_job("cpu")
    for job, reason, words in (("gpu", "NoMatchingNode", "h264_nvenc"), ("cpu", "NoFreeSlot", "1 slot(s)")):
        status = wait_until(
            lambda j=job, r=reason: (
                (s := cluster.status(j)) and conditions(s).get("Scheduled", {}).get("reason") == r and s
            ),
            timeout=20,
            what=f"{job} says {reason}",
        )
        assert status["phase"] == "Queued" and words in conditions(status)["Scheduled"]["message"]
        wait_until(lambda j=job, r=reason: events(cluster, j, r), what=f"a {reason} Event")
    wide = kubectl("get", "tj", "-n", namespace, "-o", "wide").stdout
    assert "NoMatchingNode" in wide and "NoFreeSlot" in wide  # the SCHEDULING column
    time.sleep(2)  # many passes: the reason is written once, not again each pass
    assert len(events(cluster, "cpu", "NoFreeSlot")) == 1


def test_given_a_job_being_deleted_when_a_slot_is_free_then_it_is_not_admitted(operator, cluster):
    cluster.create_job("held")
    cluster.wait_phase("held", "Queued")
    cluster.custom.patch_namespaced_custom_object(
        api.GROUP, api.VERSION, cluster.ns, api.PLURAL, "held", {"metadata": {"finalizers": ["test.ffrtmp.io/hold"]}}
    )
    cluster.custom.delete_namespaced_custom_object(api.GROUP, api.VERSION, cluster.ns, api.PLURAL, "held")
    cluster.add_node("w", slots=1)
    time.sleep(2)
    assert cluster.status("held")["phase"] == "Queued" and cluster.pods("held") == []
    cluster.custom.patch_namespaced_custom_object(
        api.GROUP, api.VERSION, cluster.ns, api.PLURAL, "held", {"metadata": {"finalizers": None}}
    )
