"""What the `ffrtmp` CLI prints: kubectl-style tables and ages, a job's row, the progress line with its
ETA, and the `status` page. Plain data in, text out; no API calls, so they are unit-tested directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import ffrtmp_api as api
from ffrtmp_api import parse_time

TERMINAL = {p.value for p in api.TERMINAL_PHASES}


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
    filled = round(width * min(max(percent, 0.0), 100.0) / 100.0)
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
    if (phase in (api.Phase.FAILED, api.Phase.CANCELED) or status.get("retryAfter")) and (text := why(status)):
        parts.append(text)
    return "  ".join(parts)


def why(status: Mapping[str, Any]) -> str:
    """`Reason: message` on one line. A pod's message can be many lines (a log tail ending in a traceback):
    its last line is the one that says what went wrong; the `status` page shows all of it."""
    reason = status.get("reason") or ""
    lines = [line.strip() for line in str(status.get("message") or "").splitlines() if line.strip()]
    message = lines[-1] if len(lines) > 1 else (lines[0] if lines else "")
    if reason and message.startswith(reason):  # the message names it already
        reason = ""
    return f"{reason}: {message}".strip(": ")


def describe_job(job: Mapping[str, Any], *, now: datetime) -> str:
    """`ffrtmp status NAME`: the fields a user checks, then the latest transitions."""
    meta, spec, status = job.get("metadata", {}), job.get("spec", {}), job.get("status") or {}
    lines = [
        f"Name:       {meta.get('namespace')}/{meta.get('name')}",
        f"Phase:      {status.get('phase') or 'Pending'}" + (f" ({status['reason']})" if status.get("reason") else ""),
    ]
    if status.get("message"):
        lines.append("Message:    " + "\n            ".join(str(status["message"]).splitlines()))
    waiting = next((c for c in status.get("conditions") or [] if c.get("type") == "Scheduled"), {})
    if status.get("phase") == api.Phase.QUEUED and waiting.get("status") == "False" and waiting.get("message"):
        lines.append(f"Waiting:    {waiting.get('reason')}: {waiting['message']}")  # why it is not placed yet
    lines += [
        f"Queue:      {spec.get('queue', 'default')} / {spec.get('priority', 'medium')}",
        f"Node:       {status.get('node') or '-'}" + (f"  pod {status['pod']}" if status.get("pod") else ""),
        f"Encoder:    {status.get('encoder') or '-'}",
        f"Attempts:   {status.get('attempts', 0)} (failed {status.get('failures', 0)} of max retries "
        f"{spec.get('maxRetries', 3)}, disrupted {status.get('disruptions', 0)})",
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
