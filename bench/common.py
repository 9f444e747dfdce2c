"""Shared benchmark helpers: the machine's description, percentiles, a peak-RSS sampler, CPU time of process
trees, and writing results JSON under bench/results/.

Kept free of Kubernetes so the transcode and scheduler benchmarks both use it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, min, p50, p90, p99, max and mean of a sample (seconds in, seconds out, rounded to 0.1 ms)."""

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {
        "count": len(values),
        "min": r(min(values)) if values else None,
        "p50": r(percentile(values, 50)),
        "p90": r(percentile(values, 90)),
        "p99": r(percentile(values, 99)),
        "max": r(max(values)) if values else None,
        "mean": r(sum(values) / len(values)) if values else None,
    }


def _run_text(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else None


def _run_lines(argv: list[str]) -> list[str] | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.splitlines()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine(*, extra_versions: dict[str, str | None] | None = None) -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, RAM, load, OS and the versions of the moving parts."""
    vm = psutil.virtual_memory()
    commit = _run_text(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(vm.total / 2**30, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "git_commit": commit,
        # Others commit to the same tree while benchmarks run: say which measured files differed from HEAD.
        "uncommitted_operator_agent_files": (
            _run_lines(["git", "-C", str(REPO), "status", "--porcelain", "--", "operator", "agent"]) or []
        ),
        "versions": {
            "kopf": _version("kopf"),
            "kubernetes_client": _version("kubernetes"),
            "pydantic": _version("pydantic"),
            "psutil": _version("psutil"),
            "ffmpeg": _run_text(["ffmpeg", "-hide_banner", "-version"]),
            **(extra_versions or {}),
        },
    }


def tree(pid: int) -> list[psutil.Process]:
    """The process and its live descendants (children can come and go; missing ones are skipped)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(procs: Iterable[psutil.Process], *, children: bool = True) -> float:
    """user+system CPU of the given processes; children=True adds their reaped children's time too."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
        if children:
            total += t.children_user + t.children_system
    return total


class RssSampler:
    """Samples the resident memory of a process tree every `interval_s` in a thread; keeps the peak and a
    thinned series. Peak sampling can miss a spike shorter than the interval, so keep it short."""

    def __init__(self, pid: int, *, interval_s: float = 0.25) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.series: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        began = time.monotonic()
        last_kept = -1.0
        while not self._stop.is_set():
            rss = 0
            for p in tree(self.pid):
                try:
                    rss += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak_bytes = max(self.peak_bytes, rss)
            now = time.monotonic() - began
            if now - last_kept >= 2.0:  # a point every 2 s is plenty for a plot
                self.series.append((round(now, 2), rss))
                last_kept = now
            self._stop.wait(self.interval_s)

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 1e6, 1)


def write_result(name: str, result: dict[str, Any], *, directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return path


def utc_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
