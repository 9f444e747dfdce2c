"""The runner end to end on file jobs: real ffmpeg, real kube-apiserver, least-privilege token.

A synthetic source and a real input file are encoded to MP4; the user checks the output with ffprobe,
watches status.progress climb to 100, and reads status.result (size, duration, PSNR/SSIM, energy).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ffrtmp_agent import energy
from kubernetes import client

from tests.support.runner import (
    RunnerProcess,
    build,
    create_job,
    ffprobe,
    get_job,
    make_media,
    runner_kubeconfig,
    video_stream,
)


def volume(media: Path) -> list[dict[str, Any]]:
    return [{"name": "media", "mountPath": str(media), "hostPath": {"path": str(media)}}]


def test_given_synthetic_source_when_runner_encodes_to_mp4_then_output_progress_and_quality_are_reported(
    api_client: client.ApiClient, control_plane: Any, namespace: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    (media / "out").mkdir(parents=True)
    job = create_job(
        api_client,
        namespace,
        "synthetic",
        {
            "input": {
                "testSource": {"pattern": "testsrc2", "width": 640, "height": 360, "fps": 30, "durationSeconds": 12}
            },
            "output": {"url": f"file://{media}/out/hello.mp4"},
            "video": {"codec": "h264", "preset": "medium", "crf": 23, "width": 320, "height": 180},
            "audio": {"codec": "aac", "bitrate": "96k"},
            "volumes": volume(media),
            "quality": {"metrics": ["psnr", "ssim"]},
        },
    )
    kubeconfig = runner_kubeconfig(api_client, control_plane, namespace, tmp_path / "kubeconfig")
    runner = RunnerProcess(build(job, interval=0.5), kubeconfig=kubeconfig, work=tmp_path)
    seen: list[float] = []
    done = threading.Event()

    def watch_progress() -> None:  # what `kubectl get tj -w` would show
        while True:
            last_look = done.is_set()  # one more read after the runner exited: its final patch lands just before
            progress = (get_job(api_client, namespace, "synthetic").get("status") or {}).get("progress")
            if progress and (not seen or progress["percent"] != seen[-1]):
                seen.append(progress["percent"])
            if last_look:
                return
            done.wait(0.1)

    poller = threading.Thread(target=watch_progress, daemon=True)
    poller.start()
    try:
        code = runner.wait(timeout=240)
    finally:
        done.set()
        poller.join()
        runner.close()
    assert code == 0, runner.log_text()[-3000:]

    out = media / "out" / "hello.mp4"
    probe = ffprobe(f"file:{out}")
    stream = video_stream(probe)
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 180)
    assert abs(float(probe["format"]["duration"]) - 12) <= 0.5
    assert sorted(p.name for p in (media / "out").iterdir()) == ["hello.mp4"]  # the temp file was renamed

    status = get_job(api_client, namespace, "synthetic")["status"]
    assert seen == sorted(seen) and seen[-1] == 100.0, seen
    assert any(0 < p < 100 for p in seen), f"no intermediate progress was reported: {seen}"
    assert "phase" not in status  # the runner never writes the phase
    result = status["result"]
    assert result["outputBytes"] == out.stat().st_size
    assert abs(result["durationSeconds"] - 12) <= 0.5
    assert (result["codec"], result["width"], result["height"], result["encoder"]) == ("h264", 320, 180, "libx264")
    assert 30 < result["psnr"] < 100 and 0.8 < result["ssim"] <= 1.0
    assert 0 < result["qoeScore"] <= 100
    if energy.read_rapl()[0] is None:  # no readable RAPL counter here (this VM; any non-root pod)
        assert "energy" in result["unavailable"]
        assert "energyJoules" not in result and "efficiencyScore" not in result
    else:
        assert result["energyJoules"] > 0 and "energy" not in result["unavailable"]


def test_given_real_input_file_and_fake_rapl_counters_when_encoded_then_duration_probed_and_energy_reported(
    api_client: client.ApiClient, control_plane: Any, namespace: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    (media / "in").mkdir(parents=True)  # no out/: the runner creates the output's folder
    make_media(media / "in" / "talk.mkv", seconds=6)
    rapl = tmp_path / "powercap" / "intel-rapl:0"
    rapl.mkdir(parents=True)
    (rapl / "max_energy_range_uj").write_text("262143328850\n")
    (rapl / "energy_uj").write_text("1000000\n")
    job = create_job(
        api_client,
        namespace,
        "real-file",
        {
            "input": {"url": f"file://{media}/in/talk.mkv"},
            "output": {"url": f"file://{media}/out/talk.mp4"},
            "video": {"codec": "h264", "preset": "veryfast", "bitrate": "300k", "width": 160, "height": 120, "gop": 50},
            "audio": {"codec": "aac", "bitrate": "64k"},
            "volumes": volume(media),
            "quality": {"metrics": ["ssim", "vmaf"]},
        },
    )
    execution = build(job)
    assert execution.inputDurationSeconds is None and execution.probeArgs  # the runner has to probe it
    kubeconfig = runner_kubeconfig(api_client, control_plane, namespace, tmp_path / "kubeconfig")
    runner = RunnerProcess(
        execution, kubeconfig=kubeconfig, work=tmp_path, env={"FFRTMP_RAPL_ROOT": str(tmp_path / "powercap")}
    )
    ticking = threading.Event()

    def package_draws_power() -> None:  # the counter a real CPU package would advance: 10 J per 0.1 s
        value = 1_000_000
        while not ticking.wait(0.1):
            value += 10_000_000
            (rapl / "energy_uj").write_text(f"{value}\n")

    threading.Thread(target=package_draws_power, daemon=True).start()
    try:
        code = runner.wait(timeout=180)
    finally:
        ticking.set()
        runner.close()
    assert code == 0, runner.log_text()[-3000:]

    probe = ffprobe(f"file:{media}/out/talk.mp4")
    assert (video_stream(probe)["width"], video_stream(probe)["height"]) == (160, 120)
    assert abs(float(probe["format"]["duration"]) - 6) <= 0.5
    status = get_job(api_client, namespace, "real-file")["status"]
    assert status["progress"]["percent"] == 100.0
    result = status["result"]
    assert 0.5 < result["ssim"] <= 1.0 and "psnr" not in result
    assert "vmaf" in result["unavailable"]  # Debian's ffmpeg has no libvmaf
    assert result["energyJoules"] > 0 and "energy" not in result["unavailable"]
    assert result["efficiencyScore"] == round(result["durationSeconds"] / (result["energyJoules"] / 1000), 3)
