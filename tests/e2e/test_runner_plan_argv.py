"""The plan's argv against the real ffmpeg: every software codec, container and audio choice the plan
builder emits is accepted by ffmpeg and yields the media the spec asked for (no cluster needed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import pytest
from ffrtmp_operator import plan

from tests.support.runner import ffprobe, video_stream


def run_plan(tmp_path: Path, *, output: str, encoder: str, **spec: Any) -> api.ExecutionPlan:
    media = str(tmp_path)
    body = {
        "input": {"testSource": {"width": 320, "height": 240, "fps": 25, "durationSeconds": 1}},
        "output": {"url": f"file://{media}/{output}"},
        "volumes": [{"name": "media", "mountPath": media, "hostPath": {"path": media}}],
        **spec,
    }
    job = api.TranscodeJob(spec=api.TranscodeJobSpec.model_validate(body))
    built = plan.build_plan(job, namespace="ns", name="argv", uid="u", attempt=1, encoder=encoder)
    done = subprocess.run(built.ffmpegArgs, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    if built.tempOutputUrl:
        os.replace(built.tempOutputUrl, built.outputUrl)
    return built


@pytest.mark.parametrize(
    ("name", "output", "encoder", "spec", "codec", "audio"),
    [
        ("given h264 mp4 then h264 + aac", "a.mp4", "libx264", {"video": {"preset": "fast", "crf": 30}}, "h264", "aac"),
        (
            "given hevc mkv then hevc + opus",
            "b.mkv",
            "libx265",
            {
                "video": {"codec": "hevc", "preset": "ultrafast", "crf": 32},
                "audio": {"codec": "opus", "bitrate": "64k"},
            },
            "hevc",
            "opus",
        ),
        (
            "given vp9 webm then vp9 + opus",
            "c.webm",
            "libvpx-vp9",
            {"video": {"codec": "vp9", "preset": "ultrafast", "crf": 40}, "audio": {"codec": "opus"}},
            "vp9",
            "opus",
        ),
        (
            "given av1 mp4 then av1",
            "d.mp4",
            "libsvtav1",
            {"video": {"codec": "av1", "preset": "ultrafast", "crf": 45}},
            "av1",
            "aac",
        ),
        (
            "given mpegts with mp3 then h264 + mp3",
            "e.ts",
            "libx264",
            {"video": {"bitrate": "300k", "gop": 25}, "audio": {"codec": "mp3", "sampleRate": 44100, "channels": 1}},
            "h264",
            "mp3",
        ),
        ("given mov without audio then video only", "f.mov", "libx264", {"audio": {"codec": "none"}}, "h264", None),
    ],
)
def test_plan_argv_runs_in_real_ffmpeg(
    tmp_path: Path, name: str, output: str, encoder: str, spec: dict[str, Any], codec: str, audio: str | None
) -> None:
    built = run_plan(tmp_path, output=output, encoder=encoder, **spec)
    probe = ffprobe(f"file:{built.outputUrl}")
    assert video_stream(probe)["codec_name"] == codec, name
    audio_codecs = [s["codec_name"] for s in probe["streams"] if s["codec_type"] == "audio"]
    assert audio_codecs == ([audio] if audio else []), name


def test_given_scale_and_fps_when_run_then_output_has_them(tmp_path: Path) -> None:
    built = run_plan(
        tmp_path, output="s.mp4", encoder="libx264", video={"width": 160, "fps": 10, "preset": "ultrafast"}
    )
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,r_frame_rate",
            "-of",
            "csv=p=0",
            f"file:{built.outputUrl}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "160,120,10/1"


def test_given_hls_output_when_run_then_playlist_and_segments_beside_it(tmp_path: Path) -> None:
    (tmp_path / "hls").mkdir()
    built = run_plan(tmp_path, output="hls/show.m3u8", encoder="libx264", video={"preset": "ultrafast"})
    assert built.tempOutputUrl is None  # the hls muxer replaces its playlist atomically itself
    playlist = (tmp_path / "hls" / "show.m3u8").read_text()
    assert "#EXT-X-ENDLIST" in playlist and "show_00000.ts" in playlist
    assert (tmp_path / "hls" / "show_00000.ts").stat().st_size > 0


def test_given_a_hostile_file_name_when_run_then_ffmpeg_treats_it_as_one_plain_file(tmp_path: Path) -> None:
    # An output named like options and a protocol: ffmpeg must write exactly that file and nothing else.
    # (Spaces in paths are refused since issue 10, so the pieces are joined by ';'.)
    built = run_plan(tmp_path, output="-y;-i;concat:x|y.mp4", encoder="libx264", video={"preset": "ultrafast"})
    assert Path(built.outputUrl).name == "-y;-i;concat:x|y.mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["-y;-i;concat:x|y.mp4"]
