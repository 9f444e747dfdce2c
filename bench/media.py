"""Split-and-stitch and ABR ladder costs, on the ffmpeg argv the operator's real plan builders make, run bare
(no stack: the encoders' own CPU is what is compared). `python -m bench.media [--seconds 60]`
-> bench/results/media.json.

- split: total encoder CPU of the split job (split + slices + stitch) over the unsplit job's (target <= 1.05),
  the stitch's share of the split job's serial wall time, and the wall-time speedup with K nodes, modelled
  from the measured split, slice and stitch times (slices placed longest first on K identical nodes).
- ladder: CPU of one ladder job (one decode, one audio encode) over that of one job per rendition.

CPU is user+sys of each ffmpeg (getrusage of reaped children), wall from a monotonic clock.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import ffrtmp_api as api
from ffrtmp_agent.runner.split import parse_sources
from ffrtmp_api import split as splitting
from ffrtmp_operator import plan, split_children

RESULTS = Path(__file__).resolve().parent / "results"
RENDITIONS = [
    {"name": "720p", "width": 1280, "height": 720, "bitrate": "3M"},
    {"name": "480p", "width": 854, "height": 480, "bitrate": "1500k"},
    {"name": "360p", "width": 640, "height": 360, "bitrate": "800k"},
]


def run(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ffmpeg."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def makespan(durations: list[float], nodes: int) -> float:
    """Longest-processing-time-first on `nodes` identical nodes (the scheduler's least-loaded placement of
    equally sized jobs comes close): when the last slice ends."""
    finish = [0.0] * nodes
    heapq.heapify(finish)
    for seconds in sorted(durations, reverse=True):
        heapq.heappush(finish, heapq.heappop(finish) + seconds)
    return max(finish)


def source(path: Path, seconds: int) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=1280x720:rate=25:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=300:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            str(path),
        ],
        check=True,
        timeout=1800,
    )


def _plan(spec: dict[str, Any], name: str, encoder: str = "libx264") -> api.ExecutionPlan:
    job = api.TranscodeJob(spec=api.TranscodeJobSpec.model_validate(spec))
    return plan.build_plan(job, namespace="bench", name=name, uid="bench", attempt=1, encoder=encoder)


def bench_split(work: Path, *, segment_seconds: int) -> dict[str, Any]:
    volumes = [{"name": "media", "mountPath": str(work), "emptyDir": {}}]
    spec = {
        "input": {"url": f"file://{work}/in.mp4"},
        "output": {"url": f"file://{work}/out/whole.mp4"},
        "volumes": volumes,
        "video": {"codec": "h264", "preset": "veryfast", "crf": 23},
        "audio": {"codec": "aac", "bitrate": "128k"},
    }
    (work / "out").mkdir(exist_ok=True)
    unsplit_wall, unsplit_cpu = run(_plan(spec, "whole").ffmpegArgs[:-1] + [f"file:{work}/out/whole.mp4"])

    parent = split_children.Parent(
        "bench",
        "film",
        "bench",
        {**spec, "output": {"url": f"file://{work}/out/film.mp4"}, "split": {"segmentSeconds": segment_seconds}},
    )
    folder = Path(split_children.work_folder(parent))
    folder.mkdir(parents=True, exist_ok=True)
    split_plan = _plan(
        split_children.split_child(parent, segment_seconds=segment_seconds)["spec"], "film-split", "copy"
    )
    split_wall, split_cpu = run(split_plan.ffmpegArgs)
    lengths = parse_sources((folder / splitting.SOURCE_LIST).read_text())
    slices = []
    for i, seconds in enumerate(lengths):
        child = split_children.slice_child(parent, index=i, seconds=seconds)
        slice_plan = _plan(child["spec"], child["metadata"]["name"])
        slices.append(run(slice_plan.ffmpegArgs[:-1] + [f"file:{folder}/{splitting.encoded_name(i)}"]))
    stitch = _plan(
        split_children.stitch_child(parent, segments=len(lengths), audio=True, seconds=sum(lengths))["spec"],
        "film-stitch",
        "copy",
    )
    listing = folder / f".{splitting.STITCH_LIST}"
    listing.write_text("".join(f"file '{folder / splitting.encoded_name(i)}'\n" for i in range(len(lengths))))
    argv = [f"file:{listing}" if a.endswith(f".{splitting.STITCH_LIST}") else a for a in stitch.ffmpegArgs]
    stitch_wall, stitch_cpu = run(argv[:-1] + [f"file:{work}/out/film.mp4"])

    slice_walls = [w for w, _ in slices]
    split_total_cpu = split_cpu + sum(c for _, c in slices) + stitch_cpu
    serial_wall = split_wall + sum(slice_walls) + stitch_wall
    speedup = {
        str(k): round(unsplit_wall / (split_wall + makespan(slice_walls, k) + stitch_wall), 2)
        for k in (1, 2, 4, 8, len(slices))
    }
    # The same model on CPU seconds: on a shared machine a wall time depends on what else ran meanwhile.
    slice_cpus = [c for _, c in slices]
    by_cpu = {
        str(k): round(unsplit_cpu / (split_cpu + makespan(slice_cpus, k) + stitch_cpu), 2)
        for k in (1, 2, 4, 8, len(slices))
    }
    return {
        "segment_seconds": segment_seconds,
        "segments": len(lengths),
        "modelled_speedup_by_nodes_from_cpu": by_cpu,
        "unsplit": {"wall_s": round(unsplit_wall, 2), "cpu_s": round(unsplit_cpu, 2)},
        "split": {"wall_s": round(split_wall, 2), "cpu_s": round(split_cpu, 2)},
        "slices": [{"wall_s": round(w, 2), "cpu_s": round(c, 2)} for w, c in slices],
        "stitch": {"wall_s": round(stitch_wall, 2), "cpu_s": round(stitch_cpu, 2)},
        "cpu_ratio_split_over_unsplit": round(split_total_cpu / unsplit_cpu, 3),
        "stitch_share_of_serial_wall": round(stitch_wall / serial_wall, 4),
        "modelled_speedup_by_nodes": speedup,
    }


def bench_ladder(work: Path) -> dict[str, Any]:
    volumes = [{"name": "media", "mountPath": str(work), "emptyDir": {}}]

    def ladder(renditions: list[dict[str, Any]], name: str) -> tuple[float, float]:
        spec = {
            "input": {"url": f"file://{work}/in.mp4"},
            "output": {"url": f"file://{work}/out/{name}/", "container": "hls", "segmentSeconds": 4},
            "volumes": volumes,
            "video": {"codec": "h264", "preset": "veryfast"},
            "audio": {"codec": "aac", "bitrate": "128k"},
            "renditions": renditions,
        }
        built = _plan(spec, name)
        temp = Path(built.tempOutputUrl or "")
        for folder in [r["name"] for r in renditions] + ["audio"]:
            (temp / folder).mkdir(parents=True, exist_ok=True)
        return run(built.ffmpegArgs)

    one_wall, one_cpu = ladder(RENDITIONS, "ladder")
    separate = [ladder([r], f"only-{r['name']}") for r in RENDITIONS]
    jobs = [
        {"rendition": r["name"], "wall_s": round(w, 2), "cpu_s": round(c, 2)}
        for r, (w, c) in zip(RENDITIONS, separate, strict=True)
    ]
    return {
        "renditions": [r["name"] for r in RENDITIONS],
        "one_decode": {"wall_s": round(one_wall, 2), "cpu_s": round(one_cpu, 2)},
        "separate_jobs": jobs,
        "cpu_ratio_one_decode_over_separate": round(one_cpu / sum(c for _, c in separate), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60, help="length of the 1280x720 test input")
    parser.add_argument("--segment-seconds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "media.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ffrtmp-bench-media-") as tmp:
        work = Path(tmp)
        source(work / "in.mp4", args.seconds)
        load_before = os.getloadavg()
        result = {
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "loadavg_before": load_before,
                "note": "shared machine: other jobs ran at the same time (loadavg), so walls are noisy",
            },
            "input": {"seconds": args.seconds, "size": "1280x720", "fps": 25, "gop_frames": 50},
            "split": bench_split(work, segment_seconds=args.segment_seconds),
            "ladder": bench_ladder(work),
        }
        result["machine"]["loadavg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
