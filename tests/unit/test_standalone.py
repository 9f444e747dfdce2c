"""Standalone agent, pure parts: which pods it runs and what it does per event, the argv/env/kubeconfig
it gives a process, the volumes it binds, and the kubelet-like pod status it reports."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

import ffrtmp_api as api
import pytest
from ffrtmp_agent.kubelet import podspec, podstatus, volumes
from ffrtmp_agent.kubelet.podspec import Action

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
OWNER = {"apiVersion": api.API_VERSION, "kind": api.KIND, "name": "job", "uid": "u1", "controller": True}


def pod(
    *,
    labels: dict[str, str] | None = None,
    owners: list[dict[str, Any]] | None = None,
    phase: str | None = None,
    deleting: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "job-1",
        "namespace": "media",
        "uid": "0123456789",
        "labels": {api.LABEL_MANAGED_BY: api.MANAGED_BY} if labels is None else labels,
        "ownerReferences": [OWNER] if owners is None else owners,
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T03:04:05Z"
        meta["deletionGracePeriodSeconds"] = 7
    base = {"nodeName": "n1", "containers": [{"name": "runner", "image": "img", "command": ["ffrtmp-runner"]}]}
    return {"metadata": meta, "spec": {**base, **spec}, "status": {"phase": phase} if phase else {}}


# --------------------------------------------------------------------------------------- decisions


@pytest.mark.parametrize(
    ("name", "the_pod", "running", "finished", "expected"),
    [
        ("given a new job pod then start", pod(), False, False, Action.START),
        ("given a pending job pod already running then nothing", pod(), True, False, Action.NOTHING),
        ("given a job pod run to the end then nothing", pod(phase="Pending"), False, True, Action.NOTHING),
        ("given a pod without managed-by then ignore", pod(labels={}), False, False, Action.IGNORE_FOREIGN),
        (
            "given a pod without a job owner then ignore",
            pod(owners=[{"kind": "ReplicaSet", "apiVersion": "apps/v1"}]),
            False,
            False,
            Action.IGNORE_FOREIGN,
        ),
        (
            "given Running in the API but no process then mark lost",
            pod(phase="Running"),
            False,
            False,
            Action.MARK_LOST,
        ),
        ("given a deleted running pod then terminate", pod(deleting=True), True, False, Action.TERMINATE),
        ("given a deleted pod with no process then finalize", pod(deleting=True), False, False, Action.FINALIZE),
        ("given a deleted foreign pod then finalize", pod(labels={}, deleting=True), False, False, Action.FINALIZE),
        ("given a succeeded pod then nothing", pod(phase="Succeeded"), False, False, Action.NOTHING),
    ],
)
def test_decide(name, the_pod, running, finished, expected):
    assert podspec.decide(the_pod, running=running, finished=finished) is expected


def test_given_a_deleted_pod_then_the_grace_period_comes_from_the_deletion():
    assert podspec.grace_seconds(pod(deleting=True)) == 7
    assert podspec.grace_seconds(pod(terminationGracePeriodSeconds=12)) == 12
    assert podspec.grace_seconds(pod()) == 30


# ------------------------------------------------------------------------------------- argv and env


def test_given_env_refs_then_they_expand_like_kubernetes():
    env = {"A": "1", "B": "two"}
    assert podspec.expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-two-$(C)-$(A)"


def test_given_a_container_then_env_has_values_field_refs_and_expansions():
    the_pod = pod(
        containers=[
            {
                "name": "runner",
                "command": ["ffmpeg", "-i", "$(INPUT)"],
                "args": ["$(POD)"],
                "env": [
                    {"name": "INPUT", "value": "/media/in.mp4"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    {"name": "DERIVED", "value": "$(NS)/x"},
                ],
            }
        ]
    )
    env, skipped = podspec.container_env(the_pod, base={"PATH": "/bin"})
    assert env["PATH"] == "/bin" and env["POD"] == "job-1" and env["NS"] == "media" and env["DERIVED"] == "media/x"
    assert skipped == ["PW"]
    assert podspec.container_argv(the_pod, env) == ["ffmpeg", "-i", "/media/in.mp4", "job-1"]


def test_given_a_container_without_command_then_argv_is_empty():
    assert podspec.container_argv(pod(containers=[{"name": "runner", "image": "img"}]), {}) == []


def test_given_a_token_then_the_kubeconfig_targets_the_agents_server_with_its_ca():
    cfg = podspec.kubeconfig(
        server="https://127.0.0.1:6443", token="t0k", namespace="media", ca_pem="PEM", insecure=False
    )
    cluster = cfg["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"PEM"
    assert cfg["users"][0]["user"] == {"token": "t0k"}
    assert cfg["contexts"][0]["context"]["namespace"] == "media"


def test_given_an_insecure_agent_then_the_kubeconfig_is_insecure_too():
    cfg = podspec.kubeconfig(server="https://x", token="t", namespace="n", ca_pem=None, insecure=True)
    assert cfg["clusters"][0]["cluster"] == {"server": "https://x", "insecure-skip-tls-verify": True}


# ---------------------------------------------------------------------------------------- volumes


def vol_pod() -> dict[str, Any]:
    return pod(
        volumes=[
            {"name": "media", "persistentVolumeClaim": {"claimName": "media-pvc", "readOnly": True}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": "/srv/videos"}},
            {"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        ],
        containers=[
            {
                "name": "runner",
                "command": ["x"],
                "volumeMounts": [
                    {"name": "scratch", "mountPath": "/media/tmp"},
                    {"name": "media", "mountPath": "/media"},
                    {"name": "host", "mountPath": "/in", "subPath": "talks"},
                    {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                ],
            }
        ],
    )


def test_given_each_volume_type_then_it_maps_to_a_host_directory():
    sources = volumes.volume_sources(vol_pod(), pod_dir="/work/pods/p", claim_paths={"media-pvc": "/pv/media"})
    assert sources == {
        "media": "/pv/media",
        "scratch": "/work/pods/p/volumes/scratch",
        "host": "/srv/videos",
        "kube-api-access-x": "/work/pods/p/volumes/kube-api-access-x",
    }


def test_given_mounts_then_parents_bind_before_children_with_subpath_and_read_only():
    sources = volumes.volume_sources(vol_pod(), pod_dir="/w", claim_paths={"media-pvc": "/pv/media"})
    mounts = volumes.bind_mounts(vol_pod(), sources=sources)
    assert [m.target for m in mounts].index("/media") < [m.target for m in mounts].index("/media/tmp")
    by_target = {m.target: m for m in mounts}
    assert by_target["/media"].read_only is True  # the claim is readOnly
    assert by_target["/in"] == volumes.BindMount("/srv/videos/talks", "/in", False)
    assert by_target["/var/run/secrets/kubernetes.io/serviceaccount"].read_only is True


def test_given_a_subpath_escaping_the_volume_then_it_is_refused():
    the_pod = vol_pod()
    the_pod["spec"]["containers"][0]["volumeMounts"][2]["subPath"] = "../../etc"
    sources = volumes.volume_sources(the_pod, pod_dir="/w", claim_paths={"media-pvc": "/pv"})
    with pytest.raises(volumes.VolumeError, match="subPath"):
        volumes.bind_mounts(the_pod, sources=sources)


def test_given_an_unsupported_volume_then_the_error_names_it():
    with pytest.raises(volumes.VolumeError, match="volume cfg: type configMap is not supported"):
        volumes.volume_sources(pod(volumes=[{"name": "cfg", "configMap": {"name": "c"}}]), pod_dir="/w", claim_paths={})


@pytest.mark.parametrize(
    ("pv", "expected"),
    [
        ({"spec": {"hostPath": {"path": "/data"}}}, "/data"),
        ({"spec": {"local": {"path": "/mnt/ssd"}}}, "/mnt/ssd"),
        ({"spec": {"nfs": {"server": "x", "path": "/"}}}, None),
    ],
)
def test_given_a_pv_then_its_local_path_is_found(pv, expected):
    assert volumes.pv_path(pv) == expected


# ------------------------------------------------------------------------------------------ status


def test_given_a_started_process_then_the_pod_is_running_with_a_started_container():
    status = podstatus.running_status(pod(), pid=42, started=NOW)["status"]
    assert status["phase"] == "Running"
    cs = status["containerStatuses"][0]
    assert cs["name"] == "runner" and cs["state"] == {"running": {"startedAt": "2026-01-02T03:04:05Z"}}
    assert cs["containerID"] == "local-process://42"


def test_given_exit_zero_then_succeeded_completed():
    status = podstatus.terminated_status(pod(), code=0, message="", started=NOW, finished=NOW)["status"]
    assert status["phase"] == "Succeeded"
    assert status["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_given_a_runner_exit_code_then_failed_error_with_the_message():
    status = podstatus.terminated_status(pod(), code=10, message='{"reason":"InputError"}', started=NOW, finished=NOW)[
        "status"
    ]
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert status["phase"] == "Failed" and "reason" not in status
    assert term == {
        "exitCode": 10,
        "reason": "Error",
        "message": '{"reason":"InputError"}',
        "startedAt": "2026-01-02T03:04:05Z",
        "finishedAt": "2026-01-02T03:04:05Z",
    }


def test_given_a_lost_process_then_the_pod_reason_says_node_lost():
    status = podstatus.terminated_status(
        pod(),
        code=137,
        message="gone",
        started=None,
        finished=NOW,
        reason="ContainerStatusUnknown",
        pod_reason="NodeLost",
        pod_message="agent restarted",
    )["status"]
    assert status["reason"] == "NodeLost" and status["message"] == "agent restarted"


@pytest.mark.parametrize(("returncode", "expected"), [(0, 0), (11, 11), (-15, 143), (-9, 137)])
def test_given_a_popen_returncode_then_the_container_exit_code(returncode, expected):
    assert podstatus.exit_code(returncode) == expected


def test_given_a_termination_log_then_it_wins_over_the_log_tail():
    assert (
        podstatus.termination_message(
            termination_log="why", log_text="noise", policy="FallbackToLogsOnError", failed=True
        )
        == "why"
    )


def test_given_no_termination_log_and_fallback_policy_then_the_log_tail_on_error_only():
    log = "\n".join(f"line {i}" for i in range(200))
    msg = podstatus.termination_message(termination_log="", log_text=log, policy="FallbackToLogsOnError", failed=True)
    assert msg.splitlines() == [f"line {i}" for i in range(120, 200)]
    assert (
        podstatus.termination_message(termination_log="", log_text=log, policy="FallbackToLogsOnError", failed=False)
        == ""
    )
    assert podstatus.termination_message(termination_log="", log_text=log, policy="File", failed=True) == ""


def test_given_a_huge_message_then_it_is_cut_to_4_kib_keeping_the_end():
    msg = podstatus.truncate_message("a" * 5000 + "END")
    assert len(msg.encode()) == 4096 and msg.endswith("END")
