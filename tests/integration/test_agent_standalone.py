"""A standalone agent runs job pods, made and signed the way the operator makes them, as local processes of
the pod's non-root user: real ffmpeg (through a stand-in ffrtmp-runner, tests/support/jobpods.py), real
volumes in a private mount namespace, a real ServiceAccount token, kubelet-like pod status."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import psutil
import pytest
from kubernetes import client

from tests.support import AgentProcess, jobpods, registered_agent, scrape_metrics, wait_until
from tests.support.jobpods import agent_env, make_job, runner_shim


@pytest.fixture(scope="module")
def shim() -> Iterator[Path]:
    folder = runner_shim()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def agent(
    control_plane: Any, api_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory, shim: Path
) -> Iterator[AgentProcess]:
    with registered_agent(
        agent_env(control_plane.env(), shim),
        client.CoreV1Api(api_client),
        node=f"standalone-{secrets.token_hex(3)}",
        work_dir=tmp_path_factory.mktemp("standalone"),
    ) as proc:
        yield proc


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return core.api_client.sanitize_for_serialization(core.read_namespaced_pod(name, namespace))
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def wait_phase(
    core: client.CoreV1Api, namespace: str, name: str, phases: set[str], timeout: float = 60
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        pod = read_pod(core, namespace, name)
        return pod if pod and (pod.get("status") or {}).get("phase") in phases else None

    return wait_until(reached, timeout=timeout, what=f"pod {name} in {phases}")


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


def ffmpeg_testsrc(output: str, *, seconds: float = 1) -> list[str]:
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=10",
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-y",
        output,
    ]


def test_given_a_job_pod_with_a_hostpath_volume_then_ffmpeg_writes_through_the_mount_and_it_succeeds(
    agent, api_client, core, namespace, tmp_path
):
    job = make_job(api_client, namespace)
    host_dir = tmp_path / "host-media"
    host_dir.mkdir()
    os.chown(host_dir, jobpods.RUNNER_UID, jobpods.RUNNER_UID)  # the admin's folder, writable by the pods' user
    mount_path = jobpods.mount_point()  # outside pytest's folders, which its pods' user cannot pass through
    pod = jobpods.job_pod(
        job,
        api_client=api_client,
        node=agent.node,
        command=ffmpeg_testsrc(f"{mount_path}/out.mp4"),
        volumes=[{"name": "media", "hostPath": {"path": str(host_dir), "type": "Directory"}}],
        mounts=[{"name": "media", "mountPath": str(mount_path)}],
    )
    core.create_namespaced_pod(namespace, pod)

    done = wait_phase(core, namespace, pod["metadata"]["name"], {"Succeeded", "Failed"})

    state = terminated(done)
    assert done["status"]["phase"] == "Succeeded", state
    assert state["exitCode"] == 0 and state["reason"] == "Completed"
    assert state["startedAt"] <= state["finishedAt"]
    assert (host_dir / "out.mp4").stat().st_size > 0, "the file landed in the hostPath directory"
    assert list(mount_path.iterdir()) == [], "the host's mountpoint stayed empty: the bind was private"
    assert (host_dir / "out.mp4").stat().st_uid == jobpods.RUNNER_UID, "written as the pod's user, not root"


def test_given_a_failing_command_then_the_pod_fails_with_its_exit_code_and_log_tail(agent, api_client, core, namespace):
    job = make_job(api_client, namespace)
    pod = jobpods.job_pod(
        job,
        api_client=api_client,
        node=agent.node,
        command=["ffmpeg", "-hide_banner", "-nostdin", "-i", "/nonexistent.mp4", "-f", "null", "-"],
    )
    core.create_namespaced_pod(namespace, pod)

    done = wait_phase(core, namespace, pod["metadata"]["name"], {"Succeeded", "Failed"})

    state = terminated(done)
    assert done["status"]["phase"] == "Failed"
    assert state["exitCode"] != 0 and state["reason"] == "Error"
    assert "No such file or directory" in state["message"], "FallbackToLogsOnError: the log tail is the message"


def test_given_a_termination_log_then_it_is_the_message(agent, api_client, core, namespace):
    job = make_job(api_client, namespace)
    script = (
        "import json, os, sys; open(os.environ['FFRTMP_TERMINATION_LOG'], 'w').write("
        "json.dumps({'reason': 'EncoderError', 'message': 'boom'})); sys.exit(11)"
    )
    pod = jobpods.job_pod(job, api_client=api_client, node=agent.node, command=[sys.executable, "-c", script])
    core.create_namespaced_pod(namespace, pod)

    done = wait_phase(core, namespace, pod["metadata"]["name"], {"Succeeded", "Failed"})

    assert terminated(done)["exitCode"] == api.RUNNER_EXIT_CODES["EncoderError"]
    assert json.loads(terminated(done)["message"]) == {"reason": "EncoderError", "message": "boom"}


def test_given_a_running_pod_when_deleted_then_the_process_dies_within_5s_and_the_pod_is_gone(
    agent, api_client, core, namespace
):
    job = make_job(api_client, namespace)
    pod = jobpods.job_pod(
        job,
        api_client=api_client,
        node=agent.node,
        command=[
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-f",
            "null",
            "-",
        ],
    )
    name = pod["metadata"]["name"]
    core.create_namespaced_pod(namespace, pod)
    running = wait_phase(core, namespace, name, {"Running"})
    status = running["status"]["containerStatuses"][0]
    assert status["name"] == api.RUNNER_CONTAINER and status["state"]["running"]["startedAt"]
    pid = int(status["containerID"].rsplit("/", 1)[1])  # the pod's main process (mountns.py's supervisor)
    ffmpeg = wait_until(
        lambda: next((p for p in psutil.Process(pid).children(recursive=True) if p.name() == "ffmpeg"), None),
        timeout=5,
        what="the pod's process to exec ffmpeg",
    )
    log_file = running["metadata"]["annotations"]["ffrtmp.io/log-file"]
    assert Path(log_file).is_file()
    job_series = f'ffrtmp_agent_job_cpu_seconds_total{{job="job",namespace="{namespace}",node="{agent.node}"}}'
    # The sampler runs every 2 s, so earlier tests' finished jobs may linger in one scrape: wait for a fresh one.
    used_one = f'ffrtmp_agent_slots_used{{node="{agent.node}"}} 1.0'
    body = wait_until(
        lambda: (lambda b: b if job_series in b and used_one in b else None)(scrape_metrics(agent.metrics_port) or ""),
        timeout=15,
        what="per-job metrics for the running pod",
    )
    assert f'ffrtmp_agent_job_memory_bytes{{job="job",namespace="{namespace}",node="{agent.node}"}}' in body

    core.delete_namespaced_pod(name, namespace)

    wait_until(
        lambda: all(
            not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in (pid, ffmpeg.pid)
        ),
        timeout=5,
        interval=0.1,
        what="the ffmpeg process to exit",
    )
    wait_until(lambda: read_pod(core, namespace, name) is None, timeout=5, interval=0.1, what="the pod to be gone")


def test_given_pods_that_are_not_ffrtmp_job_pods_then_they_are_not_run(agent, api_client, core, namespace, tmp_path):
    job = make_job(api_client, namespace)
    cmd = ["ffmpeg", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=1", "-frames:v", "1"]
    foreign = [
        jobpods.job_pod(
            job,
            api_client=api_client,
            node=agent.node,
            command=[*cmd, str(tmp_path / "ran-1.png")],
            managed=False,
            name="unlabelled",
        ),
        jobpods.job_pod(
            job,
            api_client=api_client,
            node=agent.node,
            command=[*cmd, str(tmp_path / "ran-2.png")],
            owned=False,
            name="unowned",
        ),
    ]
    for pod in foreign:
        core.create_namespaced_pod(namespace, pod)
    # A job pod created after them runs to the end: by then the agent has seen the others too.
    control = jobpods.job_pod(
        job, api_client=api_client, node=agent.node, command=[sys.executable, "-c", "pass"], name="control"
    )
    core.create_namespaced_pod(namespace, control)
    wait_phase(core, namespace, "control", {"Succeeded"})

    for pod in foreign:
        assert (read_pod(core, namespace, pod["metadata"]["name"])["status"].get("phase")) == "Pending"
    assert not list(tmp_path.glob("ran*")), "no foreign command ran"
    assert agent.log_text().count("unowned is not an ffrtmp job pod") == 1, "logged once"


def test_given_a_pvc_bound_to_a_hostpath_pv_then_it_is_mounted_at_the_mount_path(
    agent, api_client, core, namespace, tmp_path
):
    job = make_job(api_client, namespace)
    pv_dir = tmp_path / "pv"
    pv_dir.mkdir()
    os.chown(pv_dir, jobpods.RUNNER_UID, jobpods.RUNNER_UID)
    (pv_dir / "in.txt").write_text("from the PV")
    pv_name = f"pv-{namespace}"
    core.create_persistent_volume(
        {
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": str(pv_dir)},
            },
        }
    )
    try:
        core.create_namespaced_persistent_volume_claim(
            namespace,
            {
                "metadata": {"name": "media"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": pv_name,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        mount = jobpods.mount_point()
        pod = jobpods.job_pod(
            job,
            api_client=api_client,
            node=agent.node,
            command=ffmpeg_testsrc(f"{mount}/out.mkv"),
            volumes=[{"name": "media", "persistentVolumeClaim": {"claimName": "media"}}],
            mounts=[{"name": "media", "mountPath": str(mount)}],
        )
        core.create_namespaced_pod(namespace, pod)

        done = wait_phase(core, namespace, pod["metadata"]["name"], {"Succeeded", "Failed"})

        assert done["status"]["phase"] == "Succeeded", terminated(done)
        assert (pv_dir / "out.mkv").stat().st_size > 0
    finally:
        core.delete_persistent_volume(pv_name)


def test_given_an_unbound_pvc_then_the_pod_fails_saying_so(agent, api_client, core, namespace):
    job = make_job(api_client, namespace)
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "loose"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    pod = jobpods.job_pod(
        job,
        api_client=api_client,
        node=agent.node,
        command=["true"],
        volumes=[{"name": "media", "persistentVolumeClaim": {"claimName": "loose"}}],
        mounts=[{"name": "media", "mountPath": "/media"}],
    )
    core.create_namespaced_pod(namespace, pod)

    done = wait_phase(core, namespace, pod["metadata"]["name"], {"Failed"})

    assert terminated(done)["reason"] == "StartError"
    assert "loose is not bound" in terminated(done)["message"]


def test_given_a_job_pod_then_its_kubeconfig_token_is_its_jobs_own_service_account(
    agent, api_client, core, namespace, control_plane
):
    job = make_job(api_client, namespace)
    kubectl = str(Path(control_plane.bin_dir) / "kubectl")
    make_job(api_client, namespace, "other")
    kind = api.PLURAL + "." + api.GROUP
    checks = {
        "whoami": [kubectl, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
        "can-get-its-job": [kubectl, "auth", "can-i", "get", f"{kind}/job"],
        "can-get-another-job": [kubectl, "auth", "can-i", "get", f"{kind}/other"],
        "can-patch-another-status": [kubectl, "auth", "can-i", "patch", f"{kind}/other", "--subresource=status"],
        "can-list-secrets": [kubectl, "auth", "can-i", "list", "secrets"],
    }
    for name, cmd in checks.items():
        core.create_namespaced_pod(
            namespace, jobpods.job_pod(job, api_client=api_client, node=agent.node, command=cmd, name=name)
        )
    logs = {}
    for name in checks:
        done = wait_phase(core, namespace, name, {"Succeeded", "Failed"})
        logs[name] = Path(done["metadata"]["annotations"]["ffrtmp.io/log-file"]).read_text().strip()

    assert logs["whoami"] == f"system:serviceaccount:{namespace}:ffrtmp-job-job"
    assert logs["can-get-its-job"] == "yes"
    assert logs["can-get-another-job"] == "no"
    assert logs["can-patch-another-status"] == "no"
    assert logs["can-list-secrets"] == "no"


def _running_endless_encode(api_client, core, namespace: str, *, node: str) -> tuple[dict[str, Any], int]:
    """A job pod encoding forever on `node`, once Running, and the pid of its process."""
    job = make_job(api_client, namespace)
    pod = jobpods.job_pod(
        job,
        node=node,
        api_client=api_client,
        command=[
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10",
            "-f",
            "null",
            "-",
        ],
    )
    core.create_namespaced_pod(namespace, pod)
    running = wait_phase(core, namespace, pod["metadata"]["name"], {"Running"})
    return pod, int(running["status"]["containerStatuses"][0]["containerID"].rsplit("/", 1)[1])


def test_given_a_graceful_agent_stop_then_running_pods_fail_as_node_shutdown_and_the_node_is_not_ready(
    control_plane, api_client, core, namespace, tmp_path, shim
):
    node = f"shutdown-{secrets.token_hex(3)}"
    agent = AgentProcess(env=agent_env(control_plane.env(), shim), node=node, work_dir=tmp_path)
    try:
        agent.wait_registered(core)
        pod, pid = _running_endless_encode(api_client, core, namespace, node=node)

        assert agent.stop() == 0

        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        failed = read_pod(core, namespace, pod["metadata"]["name"])
        assert failed["status"]["phase"] == "Failed" and failed["status"]["reason"] == "NodeShutdown"
        ready = core.read_node(node).status.conditions[0]
        assert ready.type == "Ready" and ready.status == "False"
    finally:
        agent.kill()
        core.delete_node(node)


def test_given_an_agent_restart_then_its_running_pods_are_failed_and_their_processes_killed(
    control_plane, api_client, core, namespace, tmp_path, shim
):
    node = f"restart-{secrets.token_hex(3)}"
    first = AgentProcess(env=agent_env(control_plane.env(), shim), node=node, work_dir=tmp_path)
    try:
        first.wait_registered(core)
        pod, pid = _running_endless_encode(api_client, core, namespace, node=node)
        first.kill()  # a crash: no graceful stop, the ffmpeg process is orphaned

        second = AgentProcess(env=agent_env(control_plane.env(), shim), node=node, work_dir=tmp_path)
        try:
            failed = wait_phase(core, namespace, pod["metadata"]["name"], {"Failed"}, timeout=60)
            assert failed["status"]["reason"] == "NodeLost"
            assert "agent restarted" in failed["status"]["message"]
            wait_until(
                lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                timeout=5,
                what="the orphaned ffmpeg to be killed",
            )
        finally:
            second.stop()
    finally:
        first.kill()
        core.delete_node(node)
    assert os.path.isdir(tmp_path / "pods")


def test_given_a_machine_without_ffrtmp_runner_then_the_pod_fails_with_start_error(
    control_plane, api_client, core, namespace, tmp_path
):
    node = f"norunner-{secrets.token_hex(3)}"
    with registered_agent(control_plane.env() | {"PATH": "/usr/bin:/bin"}, core, node=node, work_dir=tmp_path):
        job = make_job(api_client, namespace)
        pod = jobpods.job_pod(job, node=node, command=["true"], api_client=api_client)
        core.create_namespaced_pod(namespace, pod)

        done = wait_phase(core, namespace, pod["metadata"]["name"], {"Failed"})

    state = terminated(done)
    assert state["reason"] == "StartError" and state["exitCode"] == 128
    assert state["message"] == "cannot run ffrtmp-runner: No such file or directory"


def test_given_an_agent_without_mount_namespaces_then_a_pod_with_volumes_fails_with_a_clear_message(
    control_plane, api_client, core, namespace, tmp_path, shim
):
    node = f"nocap-{secrets.token_hex(3)}"
    # Root without CAP_SYS_ADMIN: `unshare --mount` is refused, as in an unprivileged container.
    no_sys_admin = ("setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "--")
    agent = AgentProcess(env=agent_env(control_plane.env(), shim), node=node, work_dir=tmp_path, wrapper=no_sys_admin)
    try:
        agent.wait_registered(core)
        job = make_job(api_client, namespace)
        pod = jobpods.job_pod(
            job,
            node=node,
            command=ffmpeg_testsrc("/media/out.mp4"),
            api_client=api_client,
            volumes=[{"name": "media", "emptyDir": {}}],
            mounts=[{"name": "media", "mountPath": "/media"}],
        )
        core.create_namespaced_pod(namespace, pod)

        done = wait_phase(core, namespace, pod["metadata"]["name"], {"Failed"})

        state = terminated(done)
        assert state["reason"] == "StartError"
        assert "private mount namespace not permitted" in state["message"]
    finally:
        agent.stop()
        core.delete_node(node)
