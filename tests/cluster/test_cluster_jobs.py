"""Jobs as containers through the kubelet, in namespaces that enforce Pod Security "restricted": output on
a PersistentVolume written by the non-root runner (checked with ffprobe in a pod), pause/resume/cancel on
the containerised encoder, garbage collection of a deleted job's pod, and the pod start latency.
"""

from __future__ import annotations

import statistics
import time

from kubernetes import watch

from .kit import Kube, ffprobe, file_job_spec, wait_until

TERMINAL = ("Completed", "Failed", "Canceled")


def _phase(kube: Kube, ns: str, name: str) -> str:
    return kube.status(ns, name).get("phase", "")


def test_given_a_file_job_in_a_restricted_namespace_then_it_completes_as_a_non_root_container(
    kube: Kube, media_ns: str
) -> None:
    kube.create_job(media_ns, "file", file_job_spec("file.mp4"))
    wait_until(lambda: _phase(kube, media_ns, "file") in TERMINAL, timeout=180, what="the file job to finish")
    status = kube.status(media_ns, "file")
    assert status["phase"] == "Completed", status
    assert status.get("attempts", 1) == 1

    [pod] = kube.job_pods(media_ns, "file")
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].container_id.startswith("containerd://")
    assert pod.spec.node_name == status["node"]
    assert pod.spec.security_context.run_as_non_root is True and pod.spec.security_context.run_as_user == 65532
    csc = pod.spec.containers[0].security_context
    assert csc.read_only_root_filesystem is True and csc.allow_privilege_escalation is False
    assert csc.capabilities.drop == ["ALL"]
    [owner] = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("TranscodeJob", "file", True)

    probe = ffprobe(kube, media_ns, "/media/out/file.mp4", node=pod.spec.node_name)
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    assert abs(float(probe["format"]["duration"]) - 6) < 0.5
    assert probe["uid"] == 65532


def test_given_a_running_job_when_deleted_then_the_garbage_collector_removes_its_pod(kube: Kube, media_ns: str) -> None:
    kube.create_job(media_ns, "doomed", file_job_spec("doomed.mp4", seconds=300, preset="slow"))
    wait_until(lambda: _phase(kube, media_ns, "doomed") == "Processing", timeout=120, what="the job to run")
    kube.custom.delete_namespaced_custom_object("ffrtmp.io", "v1alpha1", media_ns, "transcodejobs", "doomed")
    wait_until(lambda: not kube.job_pods(media_ns, "doomed"), timeout=60, what="the job's pod to be collected")


def test_given_a_running_job_when_paused_resumed_and_canceled_then_the_container_follows(
    kube: Kube, media_ns: str
) -> None:
    kube.create_job(media_ns, "ctl", file_job_spec("ctl.mp4", seconds=600, preset="slow"))

    def frame() -> int:
        return int((kube.status(media_ns, "ctl").get("progress") or {}).get("frame") or 0)

    wait_until(lambda: frame() > 0, timeout=120, what="first progress")
    kube.patch_spec(media_ns, "ctl", {"paused": True})
    wait_until(lambda: _phase(kube, media_ns, "ctl") == "Paused", timeout=30, what="phase Paused")
    time.sleep(2)  # a progress write in flight may still land
    frozen = frame()
    time.sleep(5)
    assert frame() == frozen, "progress moved while paused"
    [pod] = kube.job_pods(media_ns, "ctl")
    assert pod.status.phase == "Running"  # the same container, stopped, not a new pod

    kube.patch_spec(media_ns, "ctl", {"paused": False})
    wait_until(lambda: frame() > frozen, timeout=60, what="progress after resume")
    assert [p.metadata.uid for p in kube.job_pods(media_ns, "ctl")] == [pod.metadata.uid]

    kube.patch_spec(media_ns, "ctl", {"canceled": True})
    wait_until(lambda: _phase(kube, media_ns, "ctl") == "Canceled", timeout=30, what="phase Canceled")
    wait_until(
        lambda: all(p.status.phase in ("Succeeded", "Failed") for p in kube.job_pods(media_ns, "ctl")),
        timeout=30,
        what="the encoder's container to stop",
    )


def test_given_ten_jobs_then_pods_go_from_created_to_running_quickly(kube: Kube, media_ns: str) -> None:
    """Create-to-Running of job pods as the kubelet reports them (the README quotes the p50)."""
    for i in range(10):
        kube.create_job(media_ns, f"lat-{i}", file_job_spec(f"lat-{i}.mp4", seconds=2, preset="ultrafast"))
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    w = watch.Watch()
    for event in w.stream(kube.core.list_namespaced_pod, media_ns, timeout_seconds=240):
        pod = event["object"]
        name = pod.metadata.name
        if not name.startswith("lat-"):
            continue
        created.setdefault(name, time.monotonic())
        if pod.status.phase in ("Running", "Succeeded") and name not in running:
            running[name] = time.monotonic()
        if len(running) == 10:
            w.stop()
    assert len(running) == 10, f"only {len(running)} of 10 pods ran"
    latencies = sorted(running[n] - created[n] for n in running)
    p50 = statistics.median(latencies)
    print(f"\njob pod create-to-Running: p50 {p50:.2f} s, max {latencies[-1]:.2f} s over 10 pods")
    assert p50 < 15, latencies
    wait_until(
        lambda: all(_phase(kube, media_ns, f"lat-{i}") == "Completed" for i in range(10)),
        timeout=240,
        what="all ten jobs completed",
    )
