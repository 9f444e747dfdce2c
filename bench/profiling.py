"""Sampling profiles of a running process with py-spy (no restart, no code change), summarised into the
hottest functions by own time and by inclusive time, as shares of all non-idle samples."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME_LINE = re.compile(r":\d+\)$")


class PySpy:
    """`py-spy record` attached to `pid` until stop(); writes collapsed stacks to `out`."""

    def __init__(self, pid: int, out: Path, *, rate: int = 50) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("py-spy")
        if exe is None:
            self.error = "py-spy not installed (pip install py-spy)"
            return
        self.error = None
        out.parent.mkdir(parents=True, exist_ok=True)
        # --nonblocking: read the target's memory without pausing it, so profiling does not slow it down.
        # --gil: only the thread holding the GIL, i.e. where the operator's Python CPU goes (threads
        # waiting on the apiserver in an SSL read would otherwise dominate the samples).
        self.proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nonblocking",
                "--gil",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> dict[str, Any]:
        if self.proc is None:
            return {"error": self.error}
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.out.exists():
            return {"error": f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}"}
        return summarize(self.out.read_text())


def _function(frame: str) -> str:
    """'handle (kopf/_core/x.py:12)' -> 'handle (kopf/_core/x.py)': lines of one function add up."""
    frame = frame.strip()
    frame = _FRAME_LINE.sub(")", frame)
    return re.sub(r"\((?:[^()]*?)(site-packages/|/operator/|/agent/|lib/python3\.\d+/)", "(", frame)


_PLUMBING = (
    "threading.py",
    "concurrent/futures/thread.py",
    "asyncio/",
    "runpy.py",
    "<module>",
    "kopf/_core/reactor/",
    "kopf/_kits/",
    "contextvars",
)


def summarize(collapsed: str, *, top: int = 15) -> dict[str, Any]:
    """Top functions by own samples and by inclusive samples (percent of all samples) from py-spy raw
    output; `ours` is the inclusive list restricted to ffrtmp's code, plumbing frames are left out."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_function(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n

    def share(c: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "samples": n, "percent": round(100 * n / total, 1)} for f, n in c.most_common(top)]

    plumbing = Counter({f: n for f, n in inclusive.items() if not any(p in f for p in _PLUMBING)})
    ours = Counter({f: n for f, n in inclusive.items() if "ffrtmp_operator/" in f or "ffrtmp_agent/" in f})
    return {"samples": total, "self": share(own), "inclusive": share(plumbing), "ours": share(ours)}
