"""The whole path a user sees: a TranscodeJob applied with kubectl, scheduled by the real operator, run
by a real standalone agent as a job pod (mount namespace, TokenRequest token), encoded by the runner,
and reported back: phase Completed, status.progress 100, status.result, the output file in the volume.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.support import wait_until
from tests.support.jobpods import shared_folder
from tests.support.runner import ffprobe, get_job, video_stream


def spawn(argv: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env | {"PYTHONUNBUFFERED": "1"}, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_given_a_job_applied_with_kubectl_when_operator_and_agent_run_it_then_completed_with_result(
    api_client: client.ApiClient, control_plane: Any, namespace: str, tmp_path: Path, kubectl: Any
) -> None:
    node = f"runner-e2e-{secrets.token_hex(3)}"
    media = tmp_path / "media"
    shared_folder(media / "out")  # the job pod runs as its non-root user
    env = control_plane.env()
    operator = spawn(
        [
            sys.executable,
            "-m",
            "ffrtmp_operator",
            "--namespace",
            namespace,
            "--no-peering",
            "--metrics-port",
            "0",
            "--tick-seconds",
            "0.5",
            "--host-path",
            f"{namespace}={media}",
        ],
        env=env,
        log=tmp_path / "operator.log",
    )
    agent = spawn(
        [
            sys.executable,
            "-m",
            "ffrtmp_agent",
            "--standalone",
            "--node-name",
            node,
            "--slots",
            "1",
            "--metrics-port",
            "0",
            "--work-dir",
            str(tmp_path / "agent"),
        ],
        env=env,
        log=tmp_path / "agent.log",
    )
    job = {
        "apiVersion": "ffrtmp.io/v1alpha1",
        "kind": "TranscodeJob",
        "metadata": {"name": "hello"},
        "spec": {
            "input": {"testSource": {"width": 640, "height": 360, "fps": 25, "durationSeconds": 5}},
            "output": {"url": "file:///media/out/hello.mp4"},
            "video": {"codec": "h264", "preset": "veryfast", "crf": 26, "width": 320, "height": 180},
            "hardware": {"accelerator": "none"},
            "volumes": [{"name": "media", "mountPath": "/media", "hostPath": {"path": str(media)}}],
            "quality": {"metrics": ["psnr", "ssim"]},
            "nodeSelector": {"kubernetes.io/hostname": node},
        },
    }
    try:
        kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(job))
        done = kubectl(
            "wait", "-n", namespace, "--for=condition=Complete", "tj/hello", "--timeout=180s", check=False, timeout=200
        )
        status = get_job(api_client, namespace, "hello").get("status") or {}
        assert done.returncode == 0, (
            f"{json.dumps(status)[-2000:]}\n--- operator\n{(tmp_path / 'operator.log').read_text()[-2500:]}"
            f"\n--- agent\n{(tmp_path / 'agent.log').read_text()[-2500:]}"
        )
    finally:
        stop(agent)
        stop(operator)

    assert status["phase"] == "Completed" and status["node"] == node and status["encoder"] == "libx264"
    assert status["progress"]["percent"] == 100.0
    result = status["result"]
    out = media / "out" / "hello.mp4"  # /media in the pod is this directory on the node
    assert result["outputBytes"] == out.stat().st_size
    assert abs(result["durationSeconds"] - 5) <= 0.5 and 30 < result["psnr"] and 0.8 < result["ssim"] <= 1
    stream = video_stream(ffprobe(f"file:{out}"))
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 180)
    assert sorted(p.name for p in out.parent.iterdir()) == ["hello.mp4"]
    shown = wait_until(lambda: kubectl("get", "-n", namespace, "tj", "hello").stdout, timeout=5)
    assert "Completed" in shown and "100" in shown
