"""Hardware probe: CPU, memory, NVIDIA GPUs (NVML) and the encoders this node can really run.

An encoder counts only once a ~1 s trial encode with it succeeded: ffmpeg lists h264_nvenc on a GPU
without NVENC (an H200) and on machines with no GPU at all. Pure parts (parsing, trial argv, the
hardware document and the node labels) are plain functions; the `probe_*` functions touch the machine.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import ffrtmp_api as api
import psutil

# Encoders worth a trial: everything the scheduler can ask for (api.ENCODERS) plus libaom-av1, the
# software AV1 encoder most distro builds carry instead of SVT-AV1.
CANDIDATE_ENCODERS: tuple[str, ...] = tuple(
    dict.fromkeys([enc for by_accel in api.ENCODERS.values() for enc in by_accel.values()] + ["libaom-av1"])
)
TRIAL_SECONDS = 1.0
TRIAL_TIMEOUT_SECONDS = 30.0  # a software AV1 trial on a slow, busy 2-core box takes several seconds
TRIAL_PARALLELISM = 2  # trials are CPU-heavy; more in parallel only makes each one slower
_ERROR_CHARS = 300


@dataclass
class Trial:
    """The outcome of one trial encode."""

    encoder: str
    ok: bool
    seconds: float
    error: str | None = None


@dataclass
class GpuInfo:
    index: int
    name: str
    uuid: str | None = None
    memoryTotalBytes: int | None = None
    driverVersion: str | None = None
    # NVML encoder capacity (percent of one session's worth the GPU can still take) per codec.
    encoderCapacity: dict[str, int] = field(default_factory=dict)
    encoderSessions: int | None = None
    encoderUtilizationPercent: int | None = None
    decoderUtilizationPercent: int | None = None


@dataclass
class GpuProbe:
    gpus: list[GpuInfo]
    error: str | None = None  # why NVML gave nothing ("no NVML library", "driver not loaded", ...)


# ------------------------------------------------------------------------------------------- pure


def parse_encoders(text: str) -> list[str]:
    """Video encoder names from `ffmpeg -encoders` output (the lines after the ------ legend)."""
    names: list[str] = []
    in_table = False
    for line in text.splitlines():
        stripped = line.strip()
        if not in_table:
            in_table = stripped.startswith("------")
            continue
        parts = stripped.split(None, 2)
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] == "V":
            names.append(parts[1])
    return names


def trial_candidates(listed: list[str]) -> list[str]:
    """Candidates the ffmpeg build lists, in CANDIDATE_ENCODERS order; a trial runs only for these."""
    present = set(listed)
    return [enc for enc in CANDIDATE_ENCODERS if enc in present]


def trial_argv(encoder: str, *, ffmpeg: str = "ffmpeg", render_node: str | None = None) -> list[str]:
    """ffmpeg argv encoding TRIAL_SECONDS of a small test pattern with `encoder` to the null muxer.

    320x240 is above every hardware encoder's minimum frame size. VAAPI needs the frames uploaded to a
    render node first; NVENC and QSV take system-memory frames.
    """
    rate = 25
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    if encoder.endswith("_vaapi"):
        argv += ["-vaapi_device", render_node or "/dev/dri/renderD128"]
    argv += ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={rate}", "-t", str(TRIAL_SECONDS)]
    if encoder.endswith("_vaapi"):
        argv += ["-vf", "format=nv12,hwupload"]
    elif encoder.endswith("_qsv"):
        argv += ["-pix_fmt", "nv12"]
    else:
        argv += ["-pix_fmt", "yuv420p"]
    argv += ["-c:v", encoder]
    if encoder == "libaom-av1":
        argv += ["-cpu-used", "8", "-row-mt", "1"]  # the default speed takes minutes even for a second
    elif encoder == "libsvtav1":
        argv += ["-preset", "12"]
    elif encoder == "libvpx-vp9":
        argv += ["-deadline", "realtime", "-cpu-used", "8"]
    argv += ["-f", "null", "-"]
    return argv


def summarize_error(stderr: str) -> str:
    """The last meaningful lines of ffmpeg's stderr, bounded for the annotation."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    text = " | ".join(lines[-3:]) if lines else "ffmpeg failed without a message"
    return text[-_ERROR_CHARS:]


def has_gpu(gpus: list[GpuInfo], trials: list[Trial]) -> bool:
    """A node is a GPU node when NVML sees a GPU or a hardware encoder proved itself (an Intel iGPU)."""
    hardware_ok = any(t.ok and not t.encoder.startswith("lib") for t in trials)
    return bool(gpus) or hardware_ok


def proven_encoders(trials: list[Trial]) -> list[str]:
    return sorted(t.encoder for t in trials if t.ok)


def node_labels(*, gpu: bool, proven: list[str]) -> dict[str, str]:
    """The ffrtmp labels the node should carry (see api.LABEL_*); nothing else is ours."""
    labels = {api.LABEL_WORKER: "true", api.LABEL_GPU: "true" if gpu else "false"}
    labels.update({api.LABEL_ENCODER_PREFIX + enc: "true" for enc in proven})
    return labels


def is_ours(key: str) -> bool:
    return key in (api.LABEL_WORKER, api.LABEL_GPU) or key.startswith(api.LABEL_ENCODER_PREFIX)


def labels_patch(current: dict[str, str], desired: dict[str, str]) -> dict[str, str | None]:
    """Label changes to reach `desired` for our keys: set what differs, null our keys no longer wanted.

    Empty when nothing changes, so the caller writes nothing (API writes stay low).
    """
    patch: dict[str, str | None] = {k: v for k, v in desired.items() if current.get(k) != v}
    patch.update({k: None for k in current if is_ours(k) and k not in desired})
    return patch


def hardware_document(
    *,
    cpu: dict[str, Any],
    memory: dict[str, Any],
    gpu_probe: GpuProbe,
    trials: list[Trial],
    listed: list[str],
    ffmpeg_version: str | None,
    render_nodes: list[str],
    slots: int,
    probed_at: datetime,
) -> dict[str, Any]:
    """The ffrtmp.io/hardware annotation: what was found, which encoders were tried, and why any failed."""
    return {
        "probedAt": api.stamp_seconds(probed_at),
        "cpu": cpu,
        "memory": memory,
        "gpu": has_gpu(gpu_probe.gpus, trials),
        "gpus": [asdict(g) for g in gpu_probe.gpus],
        "gpuError": gpu_probe.error,
        "renderNodes": render_nodes,
        "ffmpeg": ffmpeg_version,
        "encoders": {
            "listed": [enc for enc in CANDIDATE_ENCODERS if enc in set(listed)],
            "proven": proven_encoders(trials),
            "trials": [asdict(t) for t in trials],
        },
        "slots": slots,
    }


def cpu_model(cpuinfo: str) -> str | None:
    """The CPU model from /proc/cpuinfo text (x86 "model name", Arm "Model"/"CPU part" fallbacks)."""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in cpuinfo.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return None


# ------------------------------------------------------------------------------------- impure probes


def probe_cpu() -> dict[str, Any]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = cpu_model(f.read())
    except OSError:
        model = None
    load1, load5, load15 = os.getloadavg()
    return {
        "cores": os.cpu_count() or 1,
        "physicalCores": psutil.cpu_count(logical=False),
        "model": model or platform.processor() or None,
        "arch": platform.machine(),
        "load1": round(load1, 2),
        "load5": round(load5, 2),
        "load15": round(load15, 2),
    }


def probe_memory() -> dict[str, Any]:
    vm = psutil.virtual_memory()
    return {"totalBytes": vm.total, "availableBytes": vm.available}


def probe_gpus() -> GpuProbe:
    """NVIDIA GPUs through NVML. No library, no driver or no GPU is an empty list, never an exception."""
    try:
        import pynvml
    except ImportError:
        return GpuProbe([], "pynvml (nvidia-ml-py) is not installed")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, OSError, ...
        return GpuProbe([], f"NVML unavailable: {exc}")
    try:
        driver = _nvml(pynvml.nvmlSystemGetDriverVersion)
        gpus = [_probe_gpu(pynvml, i, driver) for i in range(pynvml.nvmlDeviceGetCount())]
        return GpuProbe(gpus)
    except Exception as exc:
        return GpuProbe([], f"NVML query failed: {exc}")
    finally:
        _nvml(pynvml.nvmlShutdown)


def _nvml(fn: Any, *args: Any) -> Any:
    """One NVML call; None where the GPU or driver does not support it."""
    try:
        value = fn(*args)
    except Exception:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _probe_gpu(pynvml: Any, index: int, driver: str | None) -> GpuInfo:
    h = pynvml.nvmlDeviceGetHandleByIndex(index)
    mem = _nvml(pynvml.nvmlDeviceGetMemoryInfo, h)
    info = GpuInfo(
        index=index,
        name=_nvml(pynvml.nvmlDeviceGetName, h) or "unknown",
        uuid=_nvml(pynvml.nvmlDeviceGetUUID, h),
        memoryTotalBytes=int(mem.total) if mem is not None else None,
        driverVersion=driver,
    )
    for codec, query in (
        ("h264", "NVML_ENCODER_QUERY_H264"),
        ("hevc", "NVML_ENCODER_QUERY_HEVC"),
        ("av1", "NVML_ENCODER_QUERY_AV1"),
    ):
        if hasattr(pynvml, query):
            capacity = _nvml(pynvml.nvmlDeviceGetEncoderCapacity, h, getattr(pynvml, query))
            if capacity is not None:
                info.encoderCapacity[codec] = int(capacity)
    stats = _nvml(pynvml.nvmlDeviceGetEncoderStats, h)
    info.encoderSessions = int(stats[0]) if stats else None
    enc = _nvml(pynvml.nvmlDeviceGetEncoderUtilization, h)
    info.encoderUtilizationPercent = int(enc[0]) if enc else None
    dec = _nvml(pynvml.nvmlDeviceGetDecoderUtilization, h)
    info.decoderUtilizationPercent = int(dec[0]) if dec else None
    return info


def render_nodes() -> list[str]:
    return sorted(glob.glob("/dev/dri/renderD*"))


def ffmpeg_version(ffmpeg: str) -> str | None:
    try:
        out = subprocess.run([ffmpeg, "-hide_banner", "-version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.removeprefix("ffmpeg version ").split(" Copyright")[0] or None


def listed_encoders(ffmpeg: str) -> list[str]:
    try:
        out = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_encoders(out.stdout)


def run_trial(encoder: str, *, ffmpeg: str, render_node: str | None, timeout: float) -> Trial:
    if encoder.endswith("_vaapi") and render_node is None:
        return Trial(encoder, False, 0.0, "no /dev/dri render node")
    argv = trial_argv(encoder, ffmpeg=ffmpeg, render_node=render_node)
    start = time.monotonic()
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Trial(encoder, False, round(time.monotonic() - start, 2), f"trial timed out after {timeout:.0f}s")
    except OSError as exc:
        return Trial(encoder, False, 0.0, f"cannot run ffmpeg: {exc}")
    seconds = round(time.monotonic() - start, 2)
    if out.returncode == 0:
        return Trial(encoder, True, seconds)
    return Trial(encoder, False, seconds, f"exit {out.returncode}: {summarize_error(out.stderr)}")


def run_trials(
    candidates: list[str], *, ffmpeg: str, timeout: float = TRIAL_TIMEOUT_SECONDS, parallel: int = TRIAL_PARALLELISM
) -> list[Trial]:
    node = next(iter(render_nodes()), None)
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(run_trial, enc, ffmpeg=ffmpeg, render_node=node, timeout=timeout) for enc in candidates]
        return [f.result() for f in futures]


@dataclass
class Probe:
    """Everything the agent learned about its node at start."""

    hardware: dict[str, Any]
    labels: dict[str, str]
    gpus: list[GpuInfo]
    trials: list[Trial]


def probe_node(*, slots: int, ffmpeg: str | None = None, now: datetime | None = None) -> Probe:
    """Probe this machine: a few seconds, most of it the trial encodes."""
    ffmpeg = ffmpeg or shutil.which("ffmpeg") or "ffmpeg"
    listed = listed_encoders(ffmpeg)
    trials = run_trials(trial_candidates(listed), ffmpeg=ffmpeg)
    gpu_probe = probe_gpus()
    hardware = hardware_document(
        cpu=probe_cpu(),
        memory=probe_memory(),
        gpu_probe=gpu_probe,
        trials=trials,
        listed=listed,
        ffmpeg_version=ffmpeg_version(ffmpeg),
        render_nodes=render_nodes(),
        slots=slots,
        probed_at=now or datetime.now(UTC),
    )
    labels = node_labels(gpu=hardware["gpu"], proven=proven_encoders(trials))
    return Probe(hardware=hardware, labels=labels, gpus=gpu_probe.gpus, trials=trials)
