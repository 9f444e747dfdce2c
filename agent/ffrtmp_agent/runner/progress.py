"""Parses ffmpeg's `-progress pipe:1` output into status.progress, and bounds how often it is written.

ffmpeg writes key=value lines and ends each block with progress=continue|end. Pure: lines in, samples
out; the throttle takes the clock as an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One progress block. Fields ffmpeg reports as N/A are None."""

    frame: int | None = None
    fps: float | None = None
    out_time_seconds: float | None = None
    speed: float | None = None
    bitrate_kbps: float | None = None
    total_size: int | None = None
    end: bool = False


def parse_blocks(lines: Iterable[str]) -> Iterator[Sample]:
    """Yields one Sample per progress block; a partial block at the end of the stream is dropped."""
    block: dict[str, str] = {}
    for raw in lines:
        key, sep, value = raw.strip().partition("=")
        if not sep:
            continue
        block[key] = value.strip()
        if key == "progress":
            yield sample_of(block)
            block = {}


def sample_of(block: dict[str, str]) -> Sample:
    # out_time_us is microseconds; out_time_ms is also microseconds (a long-standing ffmpeg quirk).
    micros = _int(block.get("out_time_us")) or _int(block.get("out_time_ms"))
    out_time = micros / 1e6 if micros is not None and micros >= 0 else _clock(block.get("out_time"))
    return Sample(
        frame=_int(block.get("frame")),
        fps=_float(block.get("fps")),
        out_time_seconds=out_time,
        speed=_float((block.get("speed") or "").rstrip("x")),
        bitrate_kbps=_float((block.get("bitrate") or "").removesuffix("kbits/s")),
        total_size=_int(block.get("total_size")),
        end=block.get("progress") == "end",
    )


def percent(sample: Sample, *, duration_seconds: float | None) -> float:
    """Share of the input encoded, 0-99.9 while running (100 is written only once the output is final)."""
    if not duration_seconds or sample.out_time_seconds is None:
        return 0.0
    return round(max(0.0, min(99.9, 100.0 * sample.out_time_seconds / duration_seconds)), 1)


def status_progress(sample: Sample, *, percent_done: float, now: str) -> dict[str, Any]:
    """The status.progress object (api.Progress fields); unknown values are left out."""
    fields = {
        "percent": percent_done,
        "frame": sample.frame,
        "fps": _non_negative(sample.fps),
        "speed": _non_negative(sample.speed),
        "outTimeSeconds": _non_negative(sample.out_time_seconds),
        "bitrateKbps": _non_negative(sample.bitrate_kbps),
        "updatedAt": now,
    }
    return {k: v for k, v in fields.items() if v is not None}


class Throttle:
    """Lets a write through at most once per `interval` seconds. Passing at once: `force` (start, end), and
    the first sample with a frame > 0: the forced start write takes the interval's slot, and the first
    encoded frame (what a user waits to see) must not wait a whole interval behind it."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: float | None = None
        self._framed = False  # a sample with frame > 0 has passed

    def ready(self, now: float, *, force: bool = False, frame: int | None = None) -> bool:
        framed = frame is not None and frame > 0
        due = self._last is None or now - self._last >= self.interval
        if force or due or (framed and not self._framed):
            self._last = now
            self._framed = self._framed or framed
            return True
        return False


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


def _clock(value: str | None) -> float | None:
    """HH:MM:SS.micro -> seconds."""
    if not value or value.startswith("-") or value == "N/A":
        return None
    try:
        hours, minutes, seconds = value.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _non_negative(value: float | None) -> float | None:
    return None if value is None or value < 0 else round(value, 3)
