"""The operator against a real API server: jobs are queued, placed, run (the test plays the kubelet),
paused, resumed, canceled, retried and failed, with transitions, conditions and Events."""

from __future__ import annotations

import time
from pathlib import Path

import ffrtmp_api as api
import yaml

from tests.support import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_jobs() -> list[tuple[Path, str]]:
    return [
        (path, doc["metadata"]["name"])
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == api.KIND
    ]


def test_given_the_examples_when_applied_then_each_job_is_accepted_and_queued(operator, cluster, kubectl, namespace):
    jobs = example_jobs()
    assert len(jobs) >= 4
    for path, _ in jobs:
        kubectl("apply", "-n", namespace, "-f", str(path))
    for _, name in jobs:
        status = cluster.wait_phase(name, "Queued")
        assert status["queuedAt"]
        assert status["transitions"][-1]["phase"] == "Queued"
        assert {c["type"] for c in status["conditions"]} == set(api.CONDITION_TYPES)
        assert status["observedGeneration"] == 1
        meta = cluster.job(name)["metadata"]
        # kopf wrote nothing of its own on the job (no progress annotations, no finalizers).
        assert not [k for k in meta.get("annotations") or {} if "kopf" in k]
        assert not meta.get("finalizers")


def test_given_a_job_and_a_node_when_the_pod_runs_and_succeeds_then_the_job_completes(operator, cluster):
    node = cluster.add_node("w", slots=1)
    cluster.create_job("ok")
    status = cluster.wait_phase("ok", "Assigned")
    assert (status["node"], status["pod"], status["attempts"], status["encoder"]) == (node, "ok-1", 1, "libx264")
    pod = cluster.core.read_namespaced_pod("ok-1", cluster.ns)
    assert pod.spec.node_name == node
    assert pod.metadata.owner_references[0].name == "ok"
    assert cluster.core.read_namespaced_service_account("ffrtmp-job-ok", cluster.ns)  # the job's own identity
    cluster.pod_running("ok-1")
    status = cluster.wait_phase("ok", "Processing")
    assert status["startedAt"]
    cluster.pod_succeeded("ok-1")
    status = cluster.wait_phase("ok", "Completed")
    assert [t["phase"] for t in status["transitions"]] == ["Queued", "Assigned", "Processing", "Completed"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Complete"] == "True"
    # One Event per status write (Event times have second precision, so compare as a multiset): queued and
    # admitted at once is one write, one Admitted Event. The Event is posted just after its status write,
    # so the last one may trail the phase by a moment.
    expected = ["Admitted", "Started", "Succeeded"]
    wait_until(lambda: sorted(e.reason for e in cluster.events("ok")) == expected, what="one Event per write")
    time.sleep(0.5)
    assert sorted(e.reason for e in cluster.events("ok")) == expected  # and no more than one each


def run_job(cluster, name: str, **spec) -> dict:
    """Create a job and bring it to Processing (the test starts its pod like a kubelet)."""
    cluster.create_job(name, **spec)
    pod = cluster.wait_phase(name, "Assigned")["pod"]
    cluster.pod_running(pod)
    return cluster.wait_phase(name, "Processing")


def test_given_a_queued_job_when_paused_then_it_is_not_scheduled_until_resumed(operator, cluster):
    cluster.create_job("q")
    cluster.wait_phase("q", "Queued")
    cluster.patch_spec("q", paused=True)
    status = cluster.wait_phase("q", "Paused")
    assert status["pausedFrom"] == "Queued"
    cluster.add_node("w", slots=1)
    time.sleep(2)  # four scheduler ticks with a free slot
    assert cluster.status("q")["phase"] == "Paused" and cluster.pods("q") == []
    cluster.patch_spec("q", paused=False)
    status = cluster.wait_phase("q", "Assigned")
    assert [t["phase"] for t in status["transitions"]] == ["Queued", "Paused", "Queued", "Assigned"]


def test_given_a_processing_job_when_paused_then_it_keeps_its_pod_and_slot_and_resumes(operator, cluster):
    cluster.add_node("w", slots=1)
    run_job(cluster, "p")
    cluster.patch_spec("p", paused=True)
    status = cluster.wait_phase("p", "Paused")
    assert status["pausedFrom"] == "Processing"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Paused"] == "True"
    cluster.create_job("waiting")  # the paused (SIGSTOPped) encoder still holds the only slot
    cluster.wait_phase("waiting", "Queued")
    time.sleep(1.5)
    assert cluster.status("waiting")["phase"] == "Queued"
    assert [p.metadata.name for p in cluster.pods("p")] == ["p-1"]
    cluster.patch_spec("p", paused=False)
    status = cluster.wait_phase("p", "Processing")
    assert status["attempts"] == 1 and status.get("pausedFrom") is None


def test_given_an_assigned_job_when_paused_and_resumed_then_it_returns_to_assigned_and_runs(operator, cluster):
    cluster.add_node("w", slots=1)
    cluster.create_job("a")
    cluster.wait_phase("a", "Assigned")
    cluster.patch_spec("a", paused=True)
    assert cluster.wait_phase("a", "Paused")["pausedFrom"] == "Assigned"
    cluster.patch_spec("a", paused=False)
    cluster.wait_phase("a", "Assigned")
    cluster.pod_running("a-1")
    cluster.wait_phase("a", "Processing")


def test_given_a_queued_job_when_canceled_then_it_is_canceled_for_good(operator, cluster):
    cluster.create_job("c")
    cluster.wait_phase("c", "Queued")
    cluster.patch_spec("c", canceled=True)
    status = cluster.wait_phase("c", "Canceled")
    assert status["completedAt"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Canceled"] == "True"
    cluster.add_node("w", slots=1)
    time.sleep(1.5)
    assert cluster.pods("c") == []


def test_given_a_processing_job_when_canceled_then_its_pod_is_deleted(operator, cluster):
    cluster.add_node("w", slots=1)
    run_job(cluster, "c")
    cluster.patch_spec("c", canceled=True)
    cluster.wait_phase("c", "Canceled")
    # No kubelet confirms a graceful delete here: the pod is marked for deletion (the agent would
    # SIGTERM the runner and then remove it).
    wait_until(lambda: all(p.metadata.deletion_timestamp for p in cluster.pods("c")), timeout=10, what="pod deletion")


def test_given_a_failing_encoder_when_it_fails_each_time_then_it_retries_then_fails(operator, cluster):
    cluster.add_node("w", slots=1)
    cluster.create_job("r", maxRetries=2)
    for attempt in (1, 2, 3):
        status = wait_until(
            lambda n=attempt: (s := cluster.status("r")).get("phase") == "Assigned" and s.get("attempts") == n and s,
            timeout=20,
            what=f"attempt {attempt} assigned",
        )
        assert status["pod"] == f"r-{attempt}"
        cluster.pod_failed(f"r-{attempt}", exit_code=11, message='{"reason": "EncoderError", "message": "x264 died"}')
        if attempt < 3:
            queued = cluster.wait_phase("r", "Queued")
            assert queued["reason"] == "EncoderError" and queued["retryAfter"]
    status = cluster.wait_phase("r", "Failed")
    assert status["reason"] == "RetriesExhausted"
    assert "EncoderError: x264 died" in status["message"]
    assert status["attempts"] == 3
    assert {c["type"]: c["status"] for c in status["conditions"]}["Failed"] == "True"
    # Retried attempts' pods were deleted; the last failed pod stays for `kubectl logs`.
    wait_until(lambda: [p.metadata.name for p in cluster.pods("r")] == ["r-3"], timeout=10, what="old pods gone")
    assert sum(e.reason == "EncoderError" for e in cluster.events("r")) == 2


def test_given_an_input_error_when_the_pod_fails_then_the_job_fails_without_retry(operator, cluster):
    cluster.add_node("w", slots=1)
    run_job(cluster, "bad-input", maxRetries=3)
    cluster.pod_failed("bad-input-1", exit_code=10)
    status = cluster.wait_phase("bad-input", "Failed")
    assert (status["reason"], status["attempts"]) == ("InputError", 1)


def test_given_a_timeout_when_the_job_runs_longer_then_it_fails_with_timeout(operator, cluster):
    cluster.add_node("w", slots=1)
    cluster.create_job("slow", timeoutSeconds=2)
    cluster.pod_running(cluster.wait_phase("slow", "Assigned")["pod"])
    status = cluster.wait_phase("slow", "Failed", timeout=15)
    assert status["reason"] == "Timeout" and status["activeSeconds"] >= 2


def test_given_a_spec_change_without_a_phase_change_when_observed_then_observed_generation_follows(operator, cluster):
    cluster.create_job("g", priority="low")
    assert cluster.wait_phase("g", "Queued")["observedGeneration"] == 1
    cluster.patch_spec("g", priority="high")
    wait_until(lambda: cluster.status("g").get("observedGeneration") == 2, timeout=10, what="observedGeneration 2")
    assert cluster.status("g")["phase"] == "Queued"


def test_given_a_restricted_namespace_when_jobs_run_then_pods_pass_and_a_refused_hostpath_pod_waits_as_failed_create(
    start_operator, cluster, namespace
):
    # The admin allows this namespace's jobs a host folder, so the pod is made and Pod Security refuses it.
    start_operator("--host-path", f"{namespace}=/tmp/ffrtmp-media").wait_active()
    # Pod Security admission enforces the restricted profile: the job pod must comply as it is.
    cluster.core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    cluster.add_node("w", slots=2)
    cluster.create_job("fine")
    cluster.wait_phase("fine", "Assigned")
    wait_until(lambda: len(cluster.pods("fine")) == 1, timeout=10, what="restricted-compliant pod")
    media = {"name": "media", "mountPath": "/media", "hostPath": {"path": "/tmp/ffrtmp-media"}}
    cluster.create_job("hostpath", maxRetries=0, volumes=[media], output={"url": "file:///media/out.mp4"})
    # A refused pod is no failed run (Kubernetes' FailedCreate): the job waits and is tried again with backoff.
    status = wait_until(
        lambda: (s := cluster.status("hostpath")).get("reason") == "FailedCreate" and s, timeout=20, what="FailedCreate"
    )
    assert status["phase"] in ("Queued", "Assigned") and status.get("failures", 0) == 0
    assert "forbidden" in status["transitions"][-1]["message"].lower()
    wait_until(
        lambda: any(e.reason == "FailedCreate" and e.type == "Warning" for e in cluster.events("hostpath")),
        what="a FailedCreate Warning Event",
    )
    time.sleep(3)  # several backoffs (1-2 s): refused again each time, never Failed
    status = cluster.status("hostpath")
    assert status["phase"] in ("Queued", "Assigned") and status.get("failedCreates", 0) >= 2
    assert cluster.pods("hostpath") == []


def test_given_a_job_the_plan_refuses_when_admitted_then_only_that_job_fails_and_others_run(operator, cluster):
    cluster.add_node("w", slots=1)
    media = {"name": "media", "mountPath": "/media", "hostPath": {"path": "/etc"}}  # CRD-valid, policy-refused
    cluster.create_job(
        "escape", input={"url": "file:///media/passwd"}, volumes=[media], output={"url": "file:///media/out.mp4"}
    )
    status = cluster.wait_phase("escape", "Failed")
    assert status["reason"] == "InputError" and "hostPath" in status["message"]
    assert cluster.pods("escape") == []
    cluster.create_job("after")  # the operator is alive and the slot was never taken
    cluster.wait_phase("after", "Assigned")
    assert operator.alive()


def test_given_a_running_job_when_deleted_and_recreated_then_its_pod_is_stopped_and_the_new_job_runs(operator, cluster):
    cluster.add_node("w", slots=1)
    run_job(cluster, "again")
    old_uid = cluster.job("again")["metadata"]["uid"]
    cluster.custom.delete_namespaced_custom_object(api.GROUP, api.VERSION, cluster.ns, api.PLURAL, "again")
    # No garbage collector runs here: the operator itself asks for the deleted job's pod to stop ...
    wait_until(
        lambda: cluster.core.read_namespaced_pod("again-1", cluster.ns).metadata.deletion_timestamp, what="pod deleting"
    )
    cluster.core.delete_namespaced_pod("again-1", cluster.ns, grace_period_seconds=0)  # ... the kubelet confirms
    new_uid = cluster.create_job("again")["metadata"]["uid"]
    status = cluster.wait_phase("again", "Assigned")
    pod = cluster.core.read_namespaced_pod(status["pod"], cluster.ns)
    assert new_uid != old_uid
    assert pod.metadata.owner_references[0].uid == new_uid
