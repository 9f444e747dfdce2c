"""Measures the finished output: ffprobe facts (codec, size, duration) and PSNR/SSIM/VMAF against the
input, read again with the plan's own input options (so the same whitelists apply).

Argv builders and parsers are pure; `probe_media` and `measure` run ffprobe/ffmpeg.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PSNR_CAP = 100.0  # identical frames give "inf"; JSON cannot carry it


@dataclass(frozen=True)
class MediaInfo:
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    size_bytes: int | None = None


@dataclass
class Scores:
    psnr: float | None = None
    ssim: float | None = None
    vmaf: float | None = None
    unavailable: list[str] = field(default_factory=list)


def probe_argv(ref: str) -> list[str]:
    return [
        "ffprobe",
        "-v",
        "error",
        "-show_entries",
        "format=duration,size:stream=codec_type,codec_name,width,height",
        "-of",
        "json",
        "-i",
        ref,
    ]


def parse_probe(text: str) -> MediaInfo:
    data = json.loads(text or "{}")
    fmt = data.get("format") or {}
    video = next((s for s in data.get("streams") or [] if s.get("codec_type") == "video"), {})
    return MediaInfo(
        codec=video.get("codec_name"),
        width=video.get("width"),
        height=video.get("height"),
        duration_seconds=_float(fmt.get("duration")),
        size_bytes=int(fmt["size"]) if str(fmt.get("size", "")).isdigit() else None,
    )


def probe_media(ref: str, *, timeout: float = 60, spawn: Mapping[str, Any] | None = None) -> MediaInfo | None:
    """`spawn`: extra subprocess arguments (the runner's env and pass_fds)."""
    done = subprocess.run(
        probe_argv(ref), capture_output=True, text=True, timeout=timeout, check=False, **(spawn or {})
    )
    return parse_probe(done.stdout) if done.returncode == 0 else None


def quality_argv(
    *,
    output_ref: str,
    input_args: Sequence[str],
    metrics: Sequence[str],
    width: int,
    height: int,
    output_stream: str = "0:v",
) -> list[str]:
    """ffmpeg argv computing `metrics` (psnr, ssim, vmaf) of the output against the input.

    The output is input 0 (distorted), the original input 1 (reference), scaled to the output's size so
    a resized encode is compared frame for frame; both are converted to the same pixel format.
    """
    metrics = [m for m in ("psnr", "ssim", "vmaf") if m in metrics]
    graph = [
        f"[{output_stream}]format=yuv420p,setpts=PTS-STARTPTS,{_fan_out('d', len(metrics))}",
        f"[1:v]scale={width}:{height}:flags=bicubic,format=yuv420p,setpts=PTS-STARTPTS,{_fan_out('r', len(metrics))}",
    ]
    filters = {"psnr": "psnr", "ssim": "ssim", "vmaf": "libvmaf"}
    graph += [f"[d{i}][r{i}]{filters[m]}" for i, m in enumerate(metrics)]
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "info",
        "-nostats",
        "-i",
        output_ref,
        *input_args,
        "-lavfi",
        ";".join(graph),
        "-f",
        "null",
        "-",
    ]


def parse_quality(stderr: str) -> dict[str, float]:
    """The averages from the psnr/ssim/libvmaf summary lines ffmpeg logs at the end."""
    found: dict[str, float] = {}
    if m := re.search(r"PSNR .*?average:(\S+)", stderr):
        value = float(m.group(1))
        found["psnr"] = round(PSNR_CAP if math.isinf(value) else min(value, PSNR_CAP), 3)
    if m := re.search(r"SSIM .*?All:([0-9.]+)", stderr):
        found["ssim"] = round(float(m.group(1)), 5)
    if m := re.search(r"VMAF score:\s*([0-9.]+)", stderr):
        found["vmaf"] = round(float(m.group(1)), 3)
    return found


def has_libvmaf(filters_listing: str) -> bool:
    """Whether `ffmpeg -filters` lists libvmaf (vmafmotion alone is not VMAF)."""
    return re.search(r"^\s*\S+\s+libvmaf\s", filters_listing, re.MULTILINE) is not None


def measure(
    *,
    output_ref: str,
    input_args: Sequence[str],
    metrics: Sequence[str],
    width: int,
    height: int,
    timeout: float = 1800,
    output_stream: str = "0:v",
    spawn: Mapping[str, Any] | None = None,
) -> Scores:
    """Runs the comparison; metrics this ffmpeg cannot compute are listed as unavailable."""
    scores = Scores()
    wanted = list(metrics)
    if "vmaf" in wanted:
        listing = subprocess.run(["ffmpeg", "-hide_banner", "-filters"], capture_output=True, text=True, check=False)
        if not has_libvmaf(listing.stdout):
            wanted.remove("vmaf")
            scores.unavailable.append("vmaf")
    if not wanted:
        return scores
    argv = quality_argv(
        output_ref=output_ref,
        input_args=input_args,
        metrics=wanted,
        width=width,
        height=height,
        output_stream=output_stream,
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **(spawn or {}))
    found = parse_quality(done.stderr) if done.returncode == 0 else {}
    for metric in wanted:
        if metric in found:
            setattr(scores, metric, found[metric])
        else:
            scores.unavailable.append(metric)
    return scores


def _fan_out(tag: str, n: int) -> str:
    """One labelled copy of the stream per metric: [d0][d1]..."""
    labels = "".join(f"[{tag}{i}]" for i in range(n))
    return f"split={n}{labels}" if n > 1 else f"null{labels}"


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
