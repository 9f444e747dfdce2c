"""Pause, resume and cancel through the job's spec, as a user does with `kubectl patch`: the runner
SIGSTOPs and SIGCONTs its ffmpeg, and on cancel kills it and leaves no partial output behind.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client

from tests.support import wait_until
from tests.support.runner import RunnerProcess, build, create_job, get_job, patch_spec, runner_kubeconfig

# Long enough that a 2-core machine is still encoding when the test pauses and cancels it.
SLOW_SPEC = {
    "input": {"testSource": {"pattern": "testsrc2", "width": 1280, "height": 720, "fps": 30, "durationSeconds": 600}},
    "video": {"codec": "h264", "preset": "slow", "crf": 23},
}


def start(
    api_client: client.ApiClient, control_plane: Any, namespace: str, tmp_path: Path, name: str
) -> tuple[RunnerProcess, Path]:
    out = tmp_path / "media" / "out"
    out.mkdir(parents=True)
    media = str(tmp_path / "media")
    job = create_job(
        api_client,
        namespace,
        name,
        {
            **SLOW_SPEC,
            "output": {"url": f"file://{out}/{name}.mp4"},
            "volumes": [{"name": "media", "mountPath": media, "hostPath": {"path": media}}],
        },
    )
    kubeconfig = runner_kubeconfig(api_client, control_plane, namespace, tmp_path / "kubeconfig")
    return RunnerProcess(build(job, interval=0.5), kubeconfig=kubeconfig, work=tmp_path), out


def progress(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return (get_job(api_client, namespace, name).get("status") or {}).get("progress") or {}


def test_given_running_file_job_when_paused_then_encoder_stopped_and_progress_frozen_until_resumed(
    api_client: client.ApiClient, control_plane: Any, namespace: str, tmp_path: Path
) -> None:
    runner, out = start(api_client, control_plane, namespace, tmp_path, "pausable")
    try:
        wait_until(lambda: progress(api_client, namespace, "pausable").get("frame"), timeout=60, what="first frames")
        ffmpeg = wait_until(runner.encoder, timeout=10, what="the ffmpeg child")

        patch_spec(api_client, namespace, "pausable", {"paused": True})
        wait_until(lambda: ffmpeg.status() == psutil.STATUS_STOPPED, timeout=5, what="ffmpeg in state T")
        time.sleep(1.0)  # a write already in flight may still land
        frozen = progress(api_client, namespace, "pausable")
        time.sleep(4.0)
        assert ffmpeg.status() == psutil.STATUS_STOPPED
        assert progress(api_client, namespace, "pausable") == frozen  # nothing advanced, nothing written

        patch_spec(api_client, namespace, "pausable", {"paused": False})
        wait_until(lambda: ffmpeg.status() != psutil.STATUS_STOPPED, timeout=5, what="ffmpeg continued")
        wait_until(
            lambda: progress(api_client, namespace, "pausable").get("frame", 0) > frozen["frame"],
            timeout=30,
            what="progress after resume",
        )
        assert runner.encoder() is not None and runner.encoder().pid == ffmpeg.pid  # same process, continued

        # Canceling a paused job must work too: SIGTERM reaches a stopped process only once continued.
        patch_spec(api_client, namespace, "pausable", {"paused": True})
        wait_until(lambda: ffmpeg.status() == psutil.STATUS_STOPPED, timeout=5, what="paused again")
        patch_spec(api_client, namespace, "pausable", {"canceled": True})
        assert runner.wait(timeout=10) == 0
        assert not ffmpeg.is_running()
        assert list(out.iterdir()) == []
    finally:
        runner.close()


def test_given_running_file_job_when_canceled_then_encoder_gone_within_5s_and_no_partial_output(
    api_client: client.ApiClient, control_plane: Any, namespace: str, tmp_path: Path
) -> None:
    runner, out = start(api_client, control_plane, namespace, tmp_path, "cancelable")
    try:
        wait_until(lambda: progress(api_client, namespace, "cancelable").get("frame"), timeout=60, what="first frames")
        ffmpeg = wait_until(runner.encoder, timeout=10, what="the ffmpeg child")
        assert any(out.iterdir())  # a partial temp file exists while it encodes

        canceled_at = time.monotonic()
        patch_spec(api_client, namespace, "cancelable", {"canceled": True})
        wait_until(lambda: not ffmpeg.is_running(), timeout=5, what="ffmpeg gone")
        assert runner.wait(timeout=5) == 0
        assert time.monotonic() - canceled_at < 5
        assert list(out.iterdir()) == []
        status = get_job(api_client, namespace, "cancelable")["status"]
        assert "result" not in status and status["progress"]["percent"] < 100
        assert not runner.termination_log.exists()  # a cancel is not a failure
    finally:
        runner.close()
