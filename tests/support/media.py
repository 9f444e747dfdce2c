"""Real media for the tests, made and probed by ffmpeg wherever the files are: `run` executes an argv and
returns its stdout, on this machine by default (the cluster suite passes one that runs it in a pod on the
media claim), so the local stack and a cluster check their outputs with the same code."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

__all__ = ["Run", "facts", "media_argv", "probe", "run_here"]

Run = Callable[[list[str]], str]


def run_here(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True).stdout


def media_argv(path: str, *, seconds: float, size: str = "320x240", extra: list[str] | None = None) -> list[str]:
    """ffmpeg making a real media file: testsrc2 video (h264, 25 fps) and a sine tone (aac)."""
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate=25:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=300:duration={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        *(extra or []),
        path,
    ]


def probe(path: str, *args: str, run: Run = run_here) -> dict[str, Any]:
    """ffprobe's JSON for path with the given selection arguments."""
    return json.loads(run(["ffprobe", "-v", "error", *args, "-of", "json", path]))


def facts(path: str, *, run: Run = run_here) -> dict[str, float]:
    """The decoded video frame count and the video and audio streams' durations (seconds)."""
    entries = "stream=codec_type,nb_read_frames,duration"
    streams = probe(path, "-count_frames", "-show_entries", entries, run=run)["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    audio = next(s for s in streams if s["codec_type"] == "audio")
    return {
        "frames": int(video["nb_read_frames"]),
        "video": float(video["duration"]),
        "audio": float(audio["duration"]),
    }
