"""Live jobs end to end through a real nginx with the RTMP module: an ffmpeg publisher pushes a lavfi
pattern, the runner transcodes it to another RTMP stream (or a file), survives the input dropping, stops
and restarts on pause, and ends on cancel or after live.durationSeconds.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support import wait_until
from tests.support.runner import (
    RunnerProcess,
    build,
    create_job,
    ffprobe,
    get_job,
    patch_spec,
    runner_kubeconfig,
    video_stream,
)


class Publisher:
    """An ffmpeg pushing a paced test pattern with a tone, like a camera would."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [
                "ffmpeg",
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=500:sample_rate=44100",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "25",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-f",
                "flv",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def progress(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return (get_job(api_client, namespace, name).get("status") or {}).get("progress") or {}


def live_job(
    api_client: client.ApiClient,
    namespace: str,
    name: str,
    *,
    rtmp: str,
    output: str,
    extra: dict[str, Any] | None = None,
) -> Any:
    return create_job(
        api_client,
        namespace,
        name,
        {
            "queue": "live",
            "input": {"url": f"{rtmp}/in"},
            "output": {"url": output},
            "video": {
                "codec": "h264",
                "preset": "ultrafast",
                "bitrate": "300k",
                "width": 160,
                "height": 120,
                "gop": 25,
            },
            "audio": {"codec": "aac", "bitrate": "64k"},
            **(extra or {}),
        },
    )


def test_given_rtmp_in_and_out_when_input_drops_then_runner_reconnects_and_cancel_ends_it(
    api_client: client.ApiClient, control_plane: Any, namespace: str, tmp_path: Path, rtmp_server: str
) -> None:
    publisher = Publisher(f"{rtmp_server}/in")
    job = live_job(
        api_client,
        namespace,
        "relay",
        rtmp=rtmp_server,
        output=f"{rtmp_server}/out",
        extra={"live": {"durationSeconds": 0, "reconnect": True}},
    )
    kubeconfig = runner_kubeconfig(api_client, control_plane, namespace, tmp_path / "kubeconfig")
    runner = RunnerProcess(build(job, interval=0.5), kubeconfig=kubeconfig, work=tmp_path)
    try:
        wait_until(lambda: progress(api_client, namespace, "relay").get("frame"), timeout=60, what="live frames")
        probe = ffprobe(f"{rtmp_server}/out", extra=["-rw_timeout", "10000000"])
        stream = video_stream(probe)
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 160, 120)

        first = wait_until(runner.encoder, timeout=5, what="the live ffmpeg")
        publisher.stop()  # the camera drops
        wait_until(lambda: not first.is_running(), timeout=40, what="the live ffmpeg noticing the drop")
        publisher = Publisher(f"{rtmp_server}/in")  # ... and comes back
        second = wait_until(
            lambda: (e := runner.encoder()) and e.pid != first.pid and e,
            timeout=60,
            what="a new ffmpeg after the reconnect",
        )
        before = progress(api_client, namespace, "relay").get("outTimeSeconds", 0)
        wait_until(
            lambda: progress(api_client, namespace, "relay").get("outTimeSeconds", 0) > before + 1,
            timeout=60,
            what="media time growing after the reconnect",
        )
        assert video_stream(ffprobe(f"{rtmp_server}/out", extra=["-rw_timeout", "10000000"]))["width"] == 160

        patch_spec(api_client, namespace, "relay", {"canceled": True})
        wait_until(lambda: not second.is_running(), timeout=5, what="the live ffmpeg gone after cancel")
        assert runner.wait(timeout=5) == 0
        assert "result" not in get_job(api_client, namespace, "relay")["status"]
    finally:
        runner.close()
        publisher.stop()


def test_given_rtmp_to_file_with_duration_when_paused_midway_then_parts_joined_into_one_file(
    api_client: client.ApiClient, control_plane: Any, namespace: str, tmp_path: Path, rtmp_server: str
) -> None:
    media = tmp_path / "media"
    (media / "out").mkdir(parents=True)
    publisher = Publisher(f"{rtmp_server}/in")
    job = live_job(
        api_client,
        namespace,
        "record",
        rtmp=rtmp_server,
        output=f"file://{media}/out/rec.flv",
        extra={
            "live": {"durationSeconds": 14},
            "volumes": [{"name": "media", "mountPath": str(media), "hostPath": {"path": str(media)}}],
        },
    )
    kubeconfig = runner_kubeconfig(api_client, control_plane, namespace, tmp_path / "kubeconfig")
    runner = RunnerProcess(build(job, interval=0.5), kubeconfig=kubeconfig, work=tmp_path)
    try:
        wait_until(
            lambda: progress(api_client, namespace, "record").get("outTimeSeconds", 0) > 1, timeout=60, what="recording"
        )
        patch_spec(api_client, namespace, "record", {"paused": True})
        wait_until(lambda: runner.encoder() is None, timeout=15, what="live ffmpeg stopped on pause")
        time.sleep(2)
        assert runner.encoder() is None  # a paused live job holds no connection
        patch_spec(api_client, namespace, "record", {"paused": False})
        wait_until(runner.encoder, timeout=10, what="live ffmpeg restarted on resume")
        assert runner.wait(timeout=60) == 0, runner.log_text()[-3000:]
    finally:
        runner.close()
        publisher.stop()
    assert sorted(p.name for p in (media / "out").iterdir()) == ["rec.flv"]  # parts joined, temp files gone
    probe = ffprobe(f"file:{media}/out/rec.flv")
    assert (video_stream(probe)["width"], video_stream(probe)["height"]) == (160, 120)
    status = get_job(api_client, namespace, "record")["status"]
    recorded = float(probe["format"]["duration"])
    assert recorded > 4
    assert status["result"]["durationSeconds"] == pytest.approx(recorded, abs=0.1)
    assert status["progress"]["percent"] == 100.0
