"""Split-and-stitch in the TranscodeJob API: `spec.split` on a job (the parent), `spec.part` on the child jobs
the operator makes for it (Clustercode's split, slice and merge), `status.segments`, and the file names the
children share in the parent's hidden work folder beside its output.

The parent runs no pod: a split child cuts the input at keyframes into source segments with stream copy and
encodes the audio once; one slice child per segment encodes it, placed by the scheduler like any job; a
stitch child joins the slices with the audio by stream copy into spec.output.url. A cleanup child removes
the work folder when the parent fails or is canceled (the stitch removes it on success).

An HLS ladder (spec.renditions) splits too: each slice encodes its range into every rendition as HLS, its
timestamps offset to follow the slice before; the split child encodes the audio once as HLS; the stitch
hard-links the segments into the ladder's folder and joins the media playlists. DASH ladders do not split.
"""

from __future__ import annotations

import posixpath
from typing import Any, Literal

from pydantic import Field

from .base import Model, cel
from .ladder import DEFAULT_SEGMENT_SECONDS

__all__ = [
    "AUDIO_FILE",
    "ALIGNED",
    "AUDIO_PLAYLIST",
    "NO_DASH",
    "PART_ROLES",
    "SOURCE_LIST",
    "SPEC_RULES",
    "STITCH_LIST",
    "PartSpec",
    "SegmentsStatus",
    "SplitPlan",
    "SplitResult",
    "SplitSpec",
    "check",
    "encoded_folder",
    "encoded_name",
    "source_name",
    "without_audio_output",
    "work_folder",
]

PART_ROLES = ("split", "slice", "stitch", "cleanup")
PartRole = Literal["split", "slice", "stitch", "cleanup"]
SOURCE_PATTERN = "src-%05d.mkv"  # the split child's stream-copied source segments
ENCODED_PATTERN = "enc-%05d.mkv"  # the slice children's encodes
LADDER_PATTERN = "hls-%05d"  # a ladder's slice children's output folders
AUDIO_PLAYLIST = "audio.m3u8"  # a ladder's audio, encoded once by the split child as HLS (audio-%05d.ts)
AUDIO_SEGMENTS = "audio-%05d.ts"
# A split ladder's timestamps all start this much later, so that no encode's first packets (B-frame delay,
# AAC priming) fall below zero: ffmpeg would shift those of the first slice alone, and its frames would
# overlap the next slice's. Every stream gets the same lead, so sync is as one encode's.
TS_LEAD_SECONDS = 10
SOURCE_LIST = "sources.csv"  # the segment muxer's list: name, start, end of each source segment
AUDIO_FILE = "audio.mka"  # the whole input's audio, encoded once by the split child
STITCH_LIST = "stitch.txt"  # the stitch's concat list, written by its runner (hidden: a leading ".")
MAX_SEGMENTS = 500


def source_name(index: int) -> str:
    return SOURCE_PATTERN % index


def encoded_name(index: int) -> str:
    return ENCODED_PATTERN % index


def encoded_folder(index: int) -> str:
    """A ladder slice's output folder in the work folder: one HLS media playlist per rendition."""
    return LADDER_PATTERN % index


def work_folder(output_path: str, parent: str) -> str:
    """The parent's hidden work folder: beside its output (a ladder's folder too, never in it), one per parent."""
    return posixpath.join(posixpath.dirname(output_path.rstrip("/")), f".{parent}.ffrtmp-split")


class SplitSpec(Model):
    segmentSeconds: int = Field(
        60,
        ge=2,
        le=3600,
        description="Target segment length: the input is cut at the first keyframe after each multiple of it.",
    )


class PartSpec(Model):
    """Set by the operator on the child jobs of a split job; not for users."""

    parent: str = Field(..., max_length=253, description="The split job this child works for.")
    role: PartRole = Field(..., description="split, slice (one segment), stitch or cleanup.")
    index: int | None = Field(None, ge=0, le=MAX_SEGMENTS, description="slice: the segment's number.")
    seconds: float | None = Field(None, ge=0, description="slice: the segment's media length (for progress).")
    start: float | None = Field(
        None, ge=0, description="slice of a ladder: the segment's start in the input, its timestamps' offset."
    )
    segments: int | None = Field(None, ge=1, le=MAX_SEGMENTS, description="stitch: how many slices to join.")
    audio: bool | None = Field(None, description="stitch: whether the split child wrote an audio track.")
    segmentSeconds: int | None = Field(None, ge=2, le=3600, description="split: the target segment length.")


class SegmentsStatus(Model):
    """status.segments of a split job."""

    total: int | None = Field(None, ge=0, description="Segments the input was cut into.")
    completed: int = Field(0, ge=0, description="Segments encoded so far.")
    nodes: list[str] = Field(default_factory=list, max_length=256, description="Nodes that ran segments.")


class SplitResult(Model):
    """status.result.split of a split child: what the parent needs to make its slices."""

    segments: list[float] = Field(default_factory=list, max_length=MAX_SEGMENTS, description="Each segment's seconds.")
    audio: bool = Field(False, description="Whether the input had audio (encoded once into the work folder).")


class SplitPlan(Model):
    """ExecutionPlan.split: what the runner does beyond an ordinary encode for a split job's child."""

    role: PartRole
    workFolder: str = Field(..., description="The parent's work folder (a path on one of the job's volumes).")
    segments: int | None = None
    audio: bool = False


# Why a DASH ladder is not split: its manifest's SegmentTimeline and init segments would have to be rebuilt
# from every slice's; an HLS ladder's media playlists join by listing the slices' segments in order.
NO_DASH = (
    "spec.split with spec.renditions needs spec.output.container hls (each slice writes every rendition's HLS "
    "segments, the stitch joins their playlists); a dash ladder runs unsplit: drop spec.split or use hls"
)
ALIGNED = "spec.split.segmentSeconds must be a multiple of spec.output.segmentSeconds (default 4) for a ladder"

# CEL rules on TranscodeJobSpec (job.py adds them). "Live" inputs: the live queue, rtmp/srt, test sources.
SPEC_RULES: list[dict[str, str]] = [
    cel(
        "!has(self.split) || (self.queue != 'live' && has(self.input.url) && "
        "self.input.url.matches('^(file|https?)://'))",
        "spec.split needs a file:// or http(s):// input outside the live queue (a live stream cannot be cut ahead)",
        ".split",
    ),
    cel(
        "!has(self.split) || !has(self.video) || !has(self.video.codec) || self.video.codec != 'copy'",
        "spec.split re-encodes the video: spec.video.codec copy cannot be split",
        ".split",
    ),
    cel(
        "!has(self.split) || !has(self.renditions) || (has(self.output.container) && self.output.container == 'hls')",
        NO_DASH,
        ".split",
    ),
    cel(
        "!has(self.split) || !has(self.renditions) || !has(self.split.segmentSeconds) || "
        "self.split.segmentSeconds % (has(self.output.segmentSeconds) ? self.output.segmentSeconds : 4) == 0",
        ALIGNED,
        ".split.segmentSeconds",
    ),
    cel(
        "!has(self.split) || has(self.renditions) || (self.output.url.startsWith('file:///') && "
        "!self.output.url.endsWith('/') && !(has(self.output.container) && self.output.container in ['hls', 'dash']))",
        "spec.split writes one file: spec.output.url must be a file:// file (not a folder, hls or dash)",
        ".output.url",
    ),
]


def check(spec: Any) -> None:
    """SPEC_RULES for pydantic, on a TranscodeJobSpec (duck-typed). Raises ValueError naming the field."""
    if getattr(spec, "split", None) is None:
        return
    url = spec.input.url or ""
    if spec.queue == "live" or not url.lower().startswith(("file://", "http://", "https://")):
        raise ValueError("spec.split needs a file:// or http(s):// input outside the live queue")
    if spec.video.codec == "copy":
        raise ValueError("spec.split re-encodes the video: spec.video.codec copy cannot be split")
    out = spec.output
    if getattr(spec, "renditions", None):  # a ladder's own rules (ladder.py) hold its folder URL
        if out.container != "hls":
            raise ValueError(NO_DASH)
        if spec.split.segmentSeconds % (out.segmentSeconds or DEFAULT_SEGMENT_SECONDS):
            raise ValueError(ALIGNED)
        return
    if not out.url.startswith("file:///") or out.url.endswith("/") or out.container in ("hls", "dash"):
        raise ValueError(
            "spec.split writes one file: spec.output.url must be a file:// file (not a folder, hls or dash)"
        )


def without_audio_output(argv: list[str]) -> list[str]:
    """A split child's argv (operator split_plan) without its audio output, the last one, for an input that
    turns out to have no audio stream."""
    for i in range(len(argv) - 1):
        if argv[i] == "-map" and argv[i + 1] == "0:a:0":
            return argv[:i]
    return list(argv)
