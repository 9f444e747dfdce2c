"""The `ffrtmp` CLI (and `kubectl transcode`) run as subprocesses against the real apiserver, with a real
operator and a standalone agent running jobs through ffmpeg: what a user types, what they see, and the
exit codes scripts rely on."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

from tests.support import AgentProcess, terminate, wait_until

FFRTMP = shutil.which("ffrtmp") or str(Path(sys.executable).parent / "ffrtmp")
PLUGIN = shutil.which("kubectl-transcode") or str(Path(sys.executable).parent / "kubectl-transcode")


@pytest.fixture(scope="module")
def stack(control_plane, api_client, tmp_path_factory):
    """An operator (admin, no peering) and one standalone agent with 2 slots, for this module."""
    work = tmp_path_factory.mktemp("cli-stack")
    node = f"cli-node-{secrets.token_hex(3)}"
    agent = AgentProcess(env=control_plane.env(), node=node, work_dir=work / "agent", slots=2)
    log_path = work / "operator.log"
    with log_path.open("wb") as log:
        operator = subprocess.Popen(
            [sys.executable, "-m", "ffrtmp_operator", "--no-peering", "--metrics-port", "0", "--tick-seconds", "0.5"],
            env=control_plane.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        agent.wait_registered(client.CoreV1Api(api_client))
        yield {"node": node, "operator_log": log_path, "agent": agent}
    finally:
        terminate(operator)
        agent.stop()
        try:
            client.CoreV1Api(api_client).delete_node(node)
        except client.exceptions.ApiException:
            pass


@pytest.fixture
def cli(control_plane, namespace):
    """cli(*args, input=None, timeout=120, exe=FFRTMP) -> CompletedProcess; runs in the test's namespace."""

    def run(
        *args: str, input: str | None = None, timeout: float = 120, exe: str = FFRTMP
    ) -> subprocess.CompletedProcess[str]:
        argv = [exe, *args, "-n", namespace]
        return subprocess.run(
            argv, input=input, capture_output=True, text=True, env=control_plane.env(), timeout=timeout
        )

    return run


def _job_yaml(name: str, node: str, *, seconds: float, size: str = "320x240", preset: str = "ultrafast") -> str:
    width, height = size.split("x")
    return f"""
apiVersion: ffrtmp.io/v1alpha1
kind: TranscodeJob
metadata: {{name: {name}}}
spec:
  input: {{testSource: {{width: {width}, height: {height}, durationSeconds: {seconds}}}}}
  output: {{url: "file:///out/{name}.mp4"}}
  volumes: [{{name: out, mountPath: /out, emptyDir: {{}}}}]
  video: {{codec: h264, preset: {preset}}}
  hardware: {{accelerator: none}}
  nodeSelector: {{kubernetes.io/hostname: {node}}}
"""


def _phase(kubectl, namespace: str, name: str) -> str:
    return kubectl("get", "tj", name, "-n", namespace, "-o", "jsonpath={.status.phase}").stdout


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr


def test_given_flags_when_submitting_with_follow_then_progress_is_shown_and_exit_is_zero(stack, cli, namespace):
    done = cli(
        "submit",
        "--name",
        "from-flags",
        "--test-source",
        "testsrc2",
        "--source-size",
        "320x240",
        "--duration",
        "3",
        "--output",
        "file:///out/from-flags.mp4",
        "--volume",
        "out:/out:emptyDir",
        "--codec",
        "h264",
        "--preset",
        "ultrafast",
        "--accelerator",
        "none",
        "--quality",
        "psnr",
        "--follow",
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "transcodejob.ffrtmp.io/from-flags created"
    assert lines[-1].startswith("Completed") and "100.0%" in lines[-1]
    status = cli("status", "from-flags")
    assert status.returncode == 0
    assert "Phase:      Completed" in status.stdout and "psnr=" in status.stdout


def test_given_a_file_then_submit_list_status_and_logs_show_the_job(stack, cli, namespace, kubectl):
    done = cli("submit", "-f", "-", input=_job_yaml("from-file", stack["node"], seconds=2))
    assert done.returncode == 0 and "from-file created" in done.stdout, done.stderr
    follow = cli("status", "from-file", "--follow", "--interval", "0.5", timeout=180)
    assert follow.returncode == 0, follow.stdout + follow.stderr
    listed = cli("list")
    assert listed.returncode == 0
    header, row = listed.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "PROGRESS", "QUEUE", "PRIORITY", "NODE", "AGE"]
    assert row.split()[:6] == ["from-file", "Completed", "100%", "default", "medium", stack["node"]]
    assert cli("list", "-o", "name").stdout.strip() == "transcodejob.ffrtmp.io/from-file"
    as_json = json.loads(cli("status", "from-file", "-o", "json").stdout)
    assert as_json["status"]["phase"] == "Completed"
    logs = cli("logs", "from-file")
    assert logs.returncode == 0, logs.stderr
    assert "ffmpeg" in logs.stdout.lower() or "progress" in logs.stdout.lower(), logs.stdout[-2000:]


def test_given_a_running_job_then_pause_resume_and_cancel_patch_the_spec(stack, cli, namespace, kubectl, control_plane):
    assert (
        cli(
            "submit", "-f", "-", input=_job_yaml("long", stack["node"], seconds=600, size="1280x720", preset="medium")
        ).returncode
        == 0
    )
    wait_until(lambda: _phase(kubectl, namespace, "long") == "Processing", timeout=90, what="long Processing")
    paused = cli("pause", "long")
    assert paused.returncode == 0 and paused.stdout.strip() == "transcodejob.ffrtmp.io/long paused"
    assert kubectl("get", "tj", "long", "-n", namespace, "-o", "jsonpath={.spec.paused}").stdout == "true"
    wait_until(lambda: _phase(kubectl, namespace, "long") == "Paused", timeout=60, what="long Paused")
    assert cli("resume", "long").returncode == 0
    assert kubectl("get", "tj", "long", "-n", namespace, "-o", "jsonpath={.spec.paused}").stdout == "false"
    wait_until(lambda: _phase(kubectl, namespace, "long") == "Processing", timeout=60, what="long resumed")
    follow = subprocess.Popen(
        [FFRTMP, "status", "long", "--follow", "-n", namespace],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=control_plane.env(),
    )
    time.sleep(2)
    canceled = cli("cancel", "long")
    assert canceled.returncode == 0 and canceled.stdout.strip() == "transcodejob.ffrtmp.io/long canceled"
    out, err = follow.communicate(timeout=90)
    assert follow.returncode == 1, out + err
    assert "Processing" in out and "fps" in out and "ETA" in out
    assert err.strip().startswith("error: transcodejob long Canceled"), err
    again = cli("pause", "long")
    assert again.returncode == 1 and again.stderr.strip() == "error: transcodejob long is already Canceled"


def test_given_worker_nodes_then_nodes_list_and_describe_show_status_slots_hardware(stack, cli, namespace):
    listed = cli("nodes", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith(stack["node"] + " "))
    assert row[1] == "Ready" and row[2].endswith("/2") and "libx264" in row[4]
    described = cli("nodes", "describe", stack["node"])
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert "Status:      Ready" in text and "libx264" in text and "of 2" in text
    assert "cores:" in text and "encoders:" in text  # the hardware annotation, as YAML


def test_given_mistakes_then_errors_are_one_line_with_a_nonzero_exit(stack, cli, namespace, control_plane, tmp_path):
    missing = cli("status", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f'error: transcodejob "nope" not found in namespace "{namespace}"'
    # A file is sent as it is, so the API server's CEL rule refuses it (file output outside any volume).
    refused = cli(
        "submit",
        "-f",
        "-",
        input=_job_yaml("refused", stack["node"], seconds=1).replace("file:///out/", "file:///elsewhere/"),
    )
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "spec.output.url" in refused.stderr
    usage = cli("submit", "--output", "file:///o.mp4")
    assert usage.returncode == 2 and "exactly one of --input" in usage.stderr
    bad_file = cli("submit", "-f", str(tmp_path / "absent.yaml"))
    assert bad_file.returncode == 1 and bad_file.stderr.startswith("error: cannot read")
    no_config = cli("list", "--kubeconfig", str(tmp_path / "none"))
    assert no_config.returncode == 1 and "does not exist" in no_config.stderr
    unreachable = tmp_path / "down.kubeconfig"
    unreachable.write_text(
        Path(control_plane.kubeconfig).read_text().replace(control_plane.server, "https://127.0.0.1:1")
    )
    down = cli("list", "--kubeconfig", str(unreachable), timeout=60)
    assert down.returncode == 1 and down.stderr.startswith("error: cannot reach the API server")
    for done in (missing, refused, usage, bad_file, no_config, down):
        _no_traceback(done)


def test_given_the_kubectl_plugin_then_kubectl_transcode_runs_the_same_cli(stack, cli, namespace, control_plane):
    env = control_plane.env()
    env["PATH"] = f"{Path(PLUGIN).parent}{os.pathsep}{env['PATH']}"
    plugins = subprocess.run(
        [str(Path(control_plane.bin_dir) / "kubectl"), "plugin", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert "kubectl-transcode" in plugins.stdout, plugins.stdout + plugins.stderr
    listed = subprocess.run(
        [str(Path(control_plane.bin_dir) / "kubectl"), "transcode", "list", "-n", namespace],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert f"No transcodejobs found in namespace {namespace}." in listed.stderr
