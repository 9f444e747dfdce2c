"""Pure helpers of the `ffrtmp` CLI: a TranscodeJob from command-line flags, tables, ages, the progress
line and the ETA. Plain data in, text out; no API calls, so they are unit-tested directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import ffrtmp_api as api
from ffrtmp_api import parse_time

TERMINAL = {p.value for p in api.TERMINAL_PHASES}


class UsageError(Exception):
    """A bad flag combination or value; printed as one line, exit code 2."""


def age(since: object, *, now: datetime) -> str:
    """kubectl-style age: 45s, 3m12s, 5h3m, 2d4h."""
    start = parse_time(since)
    if start is None:
        return "<unknown>"
    return duration((now - start).total_seconds())


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by three spaces, like kubectl get."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def _parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise UsageError(f"size {text!r} must look like 1280x720")
    return int(match.group(1)), int(match.group(2))


def parse_volume(text: str) -> dict[str, Any]:
    """--volume NAME:MOUNTPATH:SOURCE where SOURCE is pvc=CLAIM, hostPath=/dir or emptyDir."""
    parts = text.split(":", 2)
    if len(parts) != 3:
        raise UsageError(f"volume {text!r} must be NAME:MOUNTPATH:pvc=CLAIM|hostPath=/dir|emptyDir")
    name, mount, source = parts
    volume: dict[str, Any] = {"name": name, "mountPath": mount}
    kind, _, value = source.partition("=")
    if kind == "pvc" and value:
        volume["persistentVolumeClaim"] = {"claimName": value}
    elif kind == "hostPath" and value:
        volume["hostPath"] = {"path": value}
    elif kind == "emptyDir" and not value:
        volume["emptyDir"] = {}
    else:
        raise UsageError(f"volume source {source!r} must be pvc=CLAIM, hostPath=/dir or emptyDir")
    return volume


def job_from_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    """A TranscodeJob manifest from `ffrtmp submit` flags (None = not given), checked by the api models
    so a mistake is reported before anything reaches the server."""
    if bool(flags.get("input")) == bool(flags.get("test_source")):
        raise UsageError("give exactly one of --input URL and --test-source PATTERN")
    if not flags.get("output"):
        raise UsageError("--output URL is required (or use -f FILE)")
    spec: dict[str, Any] = {"queue": flags.get("queue") or "default", "priority": flags.get("priority") or "medium"}
    if flags.get("input"):
        spec["input"] = {"url": flags["input"]}
    else:
        source: dict[str, Any] = {"pattern": flags["test_source"]}
        if flags.get("source_size"):
            source["width"], source["height"] = _parse_size(flags["source_size"])
        if flags.get("source_fps") is not None:
            source["fps"] = flags["source_fps"]
        if flags.get("duration") is not None:
            source["durationSeconds"] = flags["duration"]
        spec["input"] = {"testSource": source}
    spec["output"] = {"url": flags["output"]}
    video: dict[str, Any] = {}
    for key, field_name in (("codec", "codec"), ("preset", "preset"), ("crf", "crf"), ("bitrate", "bitrate"),
                            ("fps", "fps"), ("gop", "gop")):
        if flags.get(key) is not None:
            video[field_name] = flags[key]
    if flags.get("size"):
        video["width"], video["height"] = _parse_size(flags["size"])
    if video:
        spec["video"] = video
    if flags.get("audio_codec"):
        spec["audio"] = {"codec": flags["audio_codec"]}
    if flags.get("accelerator"):
        spec["hardware"] = {"accelerator": flags["accelerator"]}
    if flags.get("volume"):
        spec["volumes"] = [parse_volume(v) for v in flags["volume"]]
    if flags.get("quality"):
        spec["quality"] = {"metrics": [m.strip() for m in flags["quality"].split(",") if m.strip()]}
    if flags.get("max_retries") is not None:
        spec["maxRetries"] = flags["max_retries"]
    if flags.get("timeout") is not None:
        spec["timeoutSeconds"] = flags["timeout"]
    if flags.get("live_duration") is not None:
        spec["live"] = {"durationSeconds": flags["live_duration"]}
    try:
        api.TranscodeJobSpec.model_validate(spec)
    except Exception as error:  # pydantic's message names the field
        first = str(error).splitlines()
        raise UsageError(f"invalid job: {' '.join(first[1:3]) if len(first) > 2 else error}") from None
    metadata: dict[str, Any] = {}
    if flags.get("name"):
        metadata["name"] = flags["name"]
    else:
        metadata["generateName"] = "job-"
    return {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": metadata, "spec": spec}


def job_row(job: Mapping[str, Any], *, now: datetime, namespace_column: bool = False) -> list[object]:
    meta, spec, status = job.get("metadata", {}), job.get("spec", {}), job.get("status") or {}
    percent = (status.get("progress") or {}).get("percent")
    row: list[object] = [meta.get("namespace", "")] if namespace_column else []
    row += [
        meta.get("name", ""),
        status.get("phase") or api.Phase.PENDING.value,
        f"{percent:.0f}%" if isinstance(percent, (int, float)) else "-",
        spec.get("queue", "default"),
        spec.get("priority", "medium"),
        status.get("node") or "-",
        age(meta.get("creationTimestamp"), now=now),
    ]
    return row


JOB_HEADERS = ["NAME", "PHASE", "PROGRESS", "QUEUE", "PRIORITY", "NODE", "AGE"]


def eta_seconds(progress: Mapping[str, Any], *, total_seconds: float | None = None) -> float | None:
    """Time left from ffmpeg's progress: media left divided by speed (media seconds per wall second).
    The media length comes from outTimeSeconds / percent when not given."""
    speed, percent, out_time = progress.get("speed"), progress.get("percent"), progress.get("outTimeSeconds")
    if not speed or speed <= 0 or percent is None:
        return None
    if total_seconds is None:
        if not out_time or percent <= 0:
            return None
        total_seconds = out_time * 100.0 / percent
    done = total_seconds * percent / 100.0
    return max(total_seconds - done, 0.0) / speed


def progress_line(job: Mapping[str, Any], *, width: int = 30) -> str:
    """One status line: phase, a bar, percent, fps, speed and ETA."""
    status = job.get("status") or {}
    phase = status.get("phase") or api.Phase.PENDING.value
    progress = status.get("progress") or {}
    percent = float(progress.get("percent") or 0.0)
    if phase == api.Phase.COMPLETED:
        percent = 100.0
    filled = int(round(width * min(max(percent, 0.0), 100.0) / 100.0))
    bar = "#" * filled + "-" * (width - filled)
    parts = [f"{phase:<10}", f"[{bar}]", f"{percent:5.1f}%"]
    if progress.get("fps") is not None:
        parts.append(f"{float(progress['fps']):6.1f} fps")
    if progress.get("speed") is not None:
        parts.append(f"{float(progress['speed']):5.2f}x")
    if phase == api.Phase.PROCESSING:
        parts.append(f"ETA {duration(eta_seconds(progress))}")
    if status.get("node"):
        parts.append(f"on {status['node']}")
    if phase in (api.Phase.FAILED, api.Phase.CANCELED) or status.get("retryAfter"):
        reason = status.get("reason") or ""
        parts.append(f"{reason}: {status.get('message') or ''}".strip(": "))
    return "  ".join(parts)


def describe_job(job: Mapping[str, Any], *, now: datetime) -> str:
    """`ffrtmp status NAME`: the fields a user checks, then the latest transitions."""
    meta, spec, status = job.get("metadata", {}), job.get("spec", {}), job.get("status") or {}
    lines = [
        f"Name:       {meta.get('namespace')}/{meta.get('name')}",
        f"Phase:      {status.get('phase') or 'Pending'}" + (f" ({status['reason']})" if status.get("reason") else ""),
    ]
    if status.get("message"):
        lines.append(f"Message:    {status['message']}")
    lines += [
        f"Queue:      {spec.get('queue', 'default')} / {spec.get('priority', 'medium')}",
        f"Node:       {status.get('node') or '-'}" + (f"  pod {status['pod']}" if status.get("pod") else ""),
        f"Encoder:    {status.get('encoder') or '-'}",
        f"Attempts:   {status.get('attempts', 0)} (max retries {spec.get('maxRetries', 3)})",
        f"Age:        {age(meta.get('creationTimestamp'), now=now)}",
        f"Progress:   {progress_line(job)}",
    ]
    result = status.get("result") or {}
    if result:
        shown = {k: v for k, v in result.items() if v not in (None, [], "")}
        lines.append("Result:     " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    transitions = status.get("transitions") or []
    if transitions:
        lines.append("Transitions:")
        for t in transitions[-8:]:
            lines.append(f"  {t.get('at', '')}  {t.get('phase', ''):<10}  {t.get('reason') or ''}")
    return "\n".join(lines)
