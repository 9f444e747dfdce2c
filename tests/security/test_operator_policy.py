"""Attacks the CRD lets through but the operator's job policy refuses (classes 2, 5, 6, 7), run against the
real API server with the real operator process: each job ends Failed with reason InputError, a message that
names the field, attempts 0 and no pod at all, so nothing was read, written or scheduled. The same operator
runs a plain job beside them, and its pod shows the defaults a tenant gets (resources, emptyDir size).

The admin's side of the policy is given as the flags the chart renders from values.jobPolicy.
"""

from __future__ import annotations

import secrets
from typing import Any

import ffrtmp_api as api
import pytest
from kubernetes import client

pytestmark = pytest.mark.integration

MEDIA = {"name": "media", "mountPath": "/media", "emptyDir": {}}
FILE_IO = {"output": {"url": "file:///media/out/x.mp4"}, "volumes": [MEDIA]}


def _host(path: str) -> dict[str, Any]:
    return {
        "output": {"url": "file:///media/out/x.mp4"},
        "volumes": [{"name": "media", "mountPath": "/media", "hostPath": {"path": path}}],
    }


def _forced(format_: str, url: str = "file:///media/in/a.mp4", **extra: Any) -> dict[str, Any]:
    return {**FILE_IO, "input": {"url": url, "format": format_, **extra}}


def _attacks(evil_class: str, lookalike: str) -> dict[str, tuple[dict[str, Any], str]]:
    """job name -> (spec changes, text the failure message must contain)."""
    return {
        # class 5: hostPath is an admin's choice, per namespace and folder
        "hostpath-etc": (_host("/etc"), "spec.volumes[media].hostPath.path"),
        "hostpath-root-home": (_host("/root"), "spec.volumes[media].hostPath.path"),
        "hostpath-kubelet": (_host("/var/lib/kubelet/pods"), "spec.volumes[media].hostPath.path"),
        "hostpath-sibling": (_host("/srv/media2"), "outside the folders"),
        "hostpath-parent": (_host("/srv"), "outside the folders"),
        "hostpath-other-tenant": (_host("/srv/other-tenant"), "outside the folders"),
        # class 6: PriorityClasses the admin did not list, even ones that exist
        "priority-unlisted": ({"priorityClassName": evil_class}, "spec.priorityClassName"),
        "priority-lookalike": ({"priorityClassName": lookalike}, "spec.priorityClassName"),
        # class 7: more than the admin's maximum
        "cpu-limit": ({"resources": {"limits": {"cpu": "64"}}}, "spec.resources.limits.cpu"),
        "cpu-millis": ({"resources": {"requests": {"cpu": "16001m"}}}, "spec.resources.requests.cpu"),
        "memory-request": ({"resources": {"requests": {"memory": "1Ti"}}}, "spec.resources.requests.memory"),
        "memory-decimal": ({"resources": {"limits": {"memory": "35G"}}}, "spec.resources.limits.memory"),
        "ram-emptydir": (
            {**FILE_IO, "volumes": [{**MEDIA, "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}]},
            "spec.volumes[media].emptyDir.sizeLimit",
        ),
        # class 2: a forced demuxer may only narrow
        "format-tty": (_forced("tty"), "spec.input.format"),
        "format-bin": (_forced("bin"), "spec.input.format"),
        "format-data": (_forced("data"), "spec.input.format"),
        "format-rawvideo": (_forced("rawvideo"), "spec.input.format"),
        "format-lavfi": (_forced("lavfi"), "spec.input.format"),
        "format-concat": (_forced("concat"), "spec.input.format"),
        "format-hls-on-file": (_forced("hls", "file:///media/in/a.m3u8", allowPlaylists=True), "spec.input.format"),
        "format-dash-on-file": (_forced("dash", "file:///media/in/a.mpd", allowPlaylists=True), "spec.input.format"),
        "format-imf": (_forced("imf", "file:///media/in/CPL.xml"), "spec.input.format"),
        "format-image2": (_forced("image2", "file:///media/in/img%25d.png"), "spec.input.format"),
        "format-tracker": (_forced("libopenmpt", "file:///media/in/a.mod"), "spec.input.format"),
        "format-safe-then-raw": (_forced("mov,tty"), "spec.input.format"),
    }


def test_given_jobs_asking_beyond_the_policy_when_admitted_then_each_fails_naming_the_field_and_gets_no_pod(
    start_operator: Any, cluster: Any, namespace: str, api_client: client.ApiClient
) -> None:
    scheduling = client.SchedulingV1Api(api_client)
    # Both exist (a job naming a class that does not exist only waits for it) and outrank every ffrtmp
    # class, and neither is listed by the admin.
    evil_class, lookalike = f"sec-evil-{secrets.token_hex(3)}", f"ffrtmp-high-{secrets.token_hex(3)}"
    for name in (evil_class, lookalike):
        scheduling.create_priority_class({"metadata": {"name": name}, "value": 1_000_000_000})
    try:
        start_operator(
            "--host-path",
            f"{namespace}=/srv/media",
            "--host-path",
            "other-tenant=/srv/other-tenant",
        ).wait_active()
        cluster.add_node("w", slots=4)
        attacks = _attacks(evil_class, lookalike)
        for name, (changes, _) in attacks.items():
            cluster.create_job(name, **changes)
        cluster.create_job("plain", **FILE_IO)
        cluster.create_job("allowed-hostpath", **_host("/srv/media/team-a"))
        wrong = {}
        for name, (_, fragment) in attacks.items():
            status = cluster.wait_phase(name, "Failed", timeout=60)
            got = (status.get("reason"), status.get("attempts") or 0, cluster.pods(name))
            if got != ("InputError", 0, []) or fragment not in (status.get("message") or ""):
                wrong[name] = {"got": got[:2], "pods": len(got[2]), "message": status.get("message"), "want": fragment}
        assert not wrong, wrong
    finally:
        for name in (evil_class, lookalike):
            scheduling.delete_priority_class(name)

    for name in ("plain", "allowed-hostpath"):
        cluster.wait_phase(name, "Assigned")
    (pod,) = cluster.pods("plain")
    container = pod.spec.containers[0]
    assert container.resources.requests == {"cpu": "500m", "memory": "512Mi"}
    assert container.resources.limits == {"cpu": "4", "memory": "4Gi"}
    assert pod.spec.volumes[0].empty_dir.size_limit == "10Gi"
    assert pod.spec.priority_class_name == api.PRIORITY_CLASSES["medium"]
    (allowed,) = cluster.pods("allowed-hostpath")
    assert allowed.spec.volumes[0].host_path.path == "/srv/media/team-a"
    print(f"\nFIGURE operator_policy_refusals={len(attacks)} (InputError, no pod)")
