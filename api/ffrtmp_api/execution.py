"""The execution plan: what a job pod runs, built by the operator at placement and read by the runner from
$FFRTMP_PLAN. It is the contract between the operator's plan builder and the agent's runner.
"""

from __future__ import annotations

from pydantic import Field

from .base import Model as _Model
from .job import TestSource
from .ladder import PlanRendition
from .split import SplitPlan


class PlanVolume(_Model):
    """A volume of the job pod, as the runner confines paths to it (real paths stay under mountPath)."""

    name: str
    mountPath: str
    readOnly: bool = False


class ExecutionPlan(_Model):
    """What a job pod runs: built by the operator at placement, read by the runner from $FFRTMP_PLAN."""

    namespace: str
    job: str
    jobUid: str
    attempt: int = Field(..., ge=1)
    live: bool = False
    liveDurationSeconds: int = 0
    reconnect: bool = True
    volumes: list[PlanVolume] = Field(
        default_factory=list,
        description="The job's volumes as mounted in the pod: every file path of the plan lies under one of them "
        "(ffrtmp_api.paths), and the runner checks real paths against them after mounting.",
    )
    inputUrl: str | None = Field(None, description="The input as ffmpeg sees it (file:// stripped to a path).")
    inputArgs: list[str] = Field(
        default_factory=list,
        description="ffmpeg options for the main input ending with -i and the input (whitelists included); "
        "the runner reuses them to read the input again for quality metrics.",
    )
    testSource: TestSource | None = None
    inputDurationSeconds: float | None = Field(None, description="Known without probing (test sources).")
    outputUrl: str = Field(..., description="Final output (a path for file outputs).")
    tempOutputUrl: str | None = Field(None, description="File outputs are written here and renamed on success.")
    outputContainer: str = Field(
        "mp4", description="mp4, mkv, mov, webm, flv, mpegts or hls (hls: segments beside it)."
    )
    ffmpegArgs: list[str] = Field(..., description="Full ffmpeg argv, including -progress pipe:1 -nostats.")
    probeArgs: list[str] = Field(default_factory=list, description="ffprobe argv for the input duration.")
    encoder: str = Field(..., description="The ffmpeg encoder used (libx264, h264_nvenc, ...).")
    targetWidth: int | None = None
    targetHeight: int | None = None
    qualityMetrics: list[str] = Field(default_factory=list)
    timeoutSeconds: int | None = None
    optionalAudio: bool = Field(
        False,
        description="An HLS ladder from a file or network input, which may have no audio stream: the runner "
        "probes it and, without one, runs ffmpegArgs with the audio rendition taken out (ladder.without_audio).",
    )
    renditions: list[PlanRendition] = Field(
        default_factory=list,
        description="An ABR ladder (outputContainer hls or dash): outputUrl and tempOutputUrl are folders, "
        "renamed as a whole on success; the runner writes the master playlist and measures each rendition.",
    )
    split: SplitPlan | None = Field(None, description="A split job's child: the runner's part beyond the encode.")
    progressIntervalSeconds: float = Field(2.0, gt=0, description="At most one progress write per interval.")
    egressAllow: list[str] = Field(
        default_factory=list,
        description="CIDRs and host names an admin allows beyond public addresses (jobPolicy.egress.allow); "
        "everything else loopback, link-local, private or reserved is refused (ffrtmp_api.egress).",
    )
