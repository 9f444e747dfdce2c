"""GPU check for an NVIDIA machine (not part of `make test`): run `python tests/gpu/check_gpu.py`.

Prints what the agent's probe sees (NVML GPUs, encoder capacity), the NVDEC decoders (cuvid list plus a
short decode trial with -hwaccel cuda and with h264_cuvid), and each NVENC encoder as proven or not by
the agent's own trial encode. Then it checks the labels the agent would write: an nvenc label exactly
for the proven nvenc encoders (an H200 has no NVENC: none proven, no label, ffrtmp.io/gpu=true).
Exit 0 when the labels agree with the trials, 1 when they do not. Safe on machines without a GPU.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for sub in ("api", "agent"):  # runnable from a bare checkout too
    sys.path.insert(0, str(REPO / sub))

import ffrtmp_api as api  # noqa: E402
from ffrtmp_agent.node import probe  # noqa: E402

NVENC = [enc for enc in probe.CANDIDATE_ENCODERS if enc.endswith("_nvenc")]
TIMEOUT = 60


def run(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"  {argv[0]}: {exc}")
        return None


def tail(text: str) -> str:
    return probe.summarize_error(text)


def show_gpus() -> probe.GpuProbe:
    print("== GPUs (NVML)")
    found = probe.probe_gpus()
    if not found.gpus:
        print(f"  none: {found.error or 'NVML reports no GPU'}")
    for g in found.gpus:
        mem = f"{g.memoryTotalBytes / 2**30:.0f} GiB" if g.memoryTotalBytes else "?"
        print(
            f"  [{g.index}] {g.name}, {mem}, driver {g.driverVersion}, encoder capacity {g.encoderCapacity or 'n/a'}, "
            f"sessions {g.encoderSessions}, decoder util {g.decoderUtilizationPercent}%"
        )
    if shutil.which("nvidia-smi"):
        out = run(["nvidia-smi", "-L"])
        if out is not None:
            print("  nvidia-smi -L: " + (out.stdout.strip() or out.stderr.strip()))
    return found


def show_decoders(ffmpeg: str) -> None:
    print("== NVDEC")
    out = run([ffmpeg, "-hide_banner", "-decoders"])
    cuvid = [line.split()[1] for line in (out.stdout if out else "").splitlines() if "_cuvid" in line]
    print(f"  cuvid decoders listed by ffmpeg: {', '.join(cuvid) or 'none'}")
    with tempfile.TemporaryDirectory() as tmp:
        sample = str(Path(tmp) / "sample.mp4")
        made = run(
            [
                ffmpeg,
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=25",
                "-t",
                "1",
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-y",
                sample,
            ]
        )
        if made is None or made.returncode != 0:
            print(f"  cannot make a sample with libx264: {tail(made.stderr) if made else 'ffmpeg missing'}")
            return
        trials = {
            "-hwaccel cuda": [
                ffmpeg,
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "verbose",
                "-hwaccel",
                "cuda",
                "-hwaccel_output_format",
                "cuda",
                "-i",
                sample,
                "-f",
                "null",
                "-",
            ],
            "h264_cuvid": [
                ffmpeg,
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-c:v",
                "h264_cuvid",
                "-i",
                sample,
                "-f",
                "null",
                "-",
            ],
        }
        for name, argv in trials.items():
            res = run(argv)
            # -hwaccel falls back to software decoding when CUDA cannot be set up: look for that too.
            fell_back = res is not None and (
                "Failed setup" in res.stderr or "initialisation returned error" in res.stderr
            )
            ok = res is not None and res.returncode == 0 and not fell_back
            why = "" if ok else f": {tail(res.stderr) if res else 'did not run'}"
            print(f"  NVDEC decode trial ({name}): {'proven' if ok else 'not proven'}{why}")


def main() -> int:
    ffmpeg = shutil.which("ffmpeg")
    gpus = show_gpus()
    if not ffmpeg:
        print("ffmpeg not found: no decode or encode trials")
        return 0 if not gpus.gpus else 1
    show_decoders(ffmpeg)
    print("== NVENC (the agent's trial encode)")
    listed = probe.listed_encoders(ffmpeg)
    candidates = [enc for enc in NVENC if enc in listed]
    missing = [enc for enc in NVENC if enc not in listed]
    if missing:
        print(f"  not in this ffmpeg build (not tried): {', '.join(missing)}")
    trials = probe.run_trials(candidates + ["libx264"], ffmpeg=ffmpeg)
    for t in trials:
        state = "proven" if t.ok else "not proven"
        print(f"  {t.encoder}: {state} ({t.seconds}s){': ' + t.error if t.error else ''}")
    labels = probe.node_labels(gpu=probe.has_gpu(gpus.gpus, trials), proven=probe.proven_encoders(trials))
    print("== labels the agent writes")
    for key, value in sorted(labels.items()):
        print(f"  {key}={value}")
    nvenc_labels = {k.removeprefix(api.LABEL_ENCODER_PREFIX) for k in labels if k.endswith("_nvenc")}
    proven_nvenc = {t.encoder for t in trials if t.ok and t.encoder.endswith("_nvenc")}
    consistent = nvenc_labels == proven_nvenc and labels[api.LABEL_GPU] == ("true" if gpus.gpus else "false")
    if gpus.gpus and not proven_nvenc:
        print("  => a GPU node without NVENC: not an encode node (no nvenc labels)")
    print("OK: labels match the trials" if consistent else "MISMATCH: labels do not match the trials")
    return 0 if consistent else 1


if __name__ == "__main__":
    sys.exit(main())
