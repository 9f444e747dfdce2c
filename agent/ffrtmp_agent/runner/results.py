"""status.result of a finished job: the output's ffprobe facts (or, for a stream, the media time and
bytes the encoder reported), quality scores against the input, energy, and the derived scores. What
could not be measured is named in `unavailable` rather than reported as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ffrtmp_api as api

from . import ladder, quality, scores, split
from .output import is_file


def measure(
    plan: api.ExecutionPlan,
    *,
    wall_seconds: float,
    bytes_written: int,
    media_seconds: float,
    joules: float | None,
    output_ref: str | None = None,
    spawn: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`bytes_written`/`media_seconds`: the encoder's own totals, used when the output is not a file.
    `output_ref`: how ffmpeg reads the finished file (the runner's opened fd); `spawn`: env and pass_fds."""
    if ladder.is_ladder(plan):  # a folder of renditions, measured one by one
        return ladder.measure(plan, wall_seconds=wall_seconds, joules=joules, spawn=dict(spawn or {}))
    if split.owns_output(plan):  # a split job's split child (its segments) or cleanup child
        return split.measure(plan, wall_seconds=wall_seconds)
    result: dict[str, Any] = {"wallSeconds": round(wall_seconds, 3), "encoder": plan.encoder}
    unavailable: list[str] = []
    output_ref = output_ref or "file:" + plan.outputUrl
    info = quality.probe_media(output_ref, spawn=spawn) if is_file(plan) else None
    if info is not None:
        result.update(
            outputBytes=info.size_bytes,
            durationSeconds=info.duration_seconds,
            codec=info.codec,
            width=info.width,
            height=info.height,
        )
    else:
        result.update(outputBytes=bytes_written or None, durationSeconds=round(media_seconds, 3) or None)
    measured = quality.Scores()
    if plan.qualityMetrics:
        if plan.live or info is None or not info.width or not info.height or not plan.inputArgs:
            unavailable += plan.qualityMetrics  # a live stream cannot be compared frame for frame later
        else:
            measured = quality.measure(
                spawn=spawn,
                output_ref=output_ref,
                input_args=plan.inputArgs,
                metrics=plan.qualityMetrics,
                width=info.width,
                height=info.height,
            )
            unavailable += measured.unavailable
    result.update(psnr=measured.psnr, ssim=measured.ssim, vmaf=measured.vmaf)
    result["qoeScore"] = scores.qoe_score(psnr=measured.psnr, ssim=measured.ssim, vmaf=measured.vmaf)
    if joules is None:
        unavailable.append("energy")
    result["energyJoules"] = joules
    result["efficiencyScore"] = scores.efficiency_score(
        output_seconds=result.get("durationSeconds"), energy_joules=joules
    )
    result["unavailable"] = unavailable
    return {k: v for k, v in result.items() if v is not None}
