"""ExecutionPlans of a split job's split, stitch and cleanup children (slices are ordinary encodes). Pure,
like plan.py, whose input and container parts they use.

- split: one read of the input: the video cut at the first keyframe after each segmentSeconds into source
  segments by stream copy (ffmpeg's segment muxer, which also lists each segment's start and end), and the
  audio encoded once, whole, into the work folder.
- stitch: the encoded slices joined by the concat demuxer with stream copy, the audio muxed beside them,
  into a temp file renamed to spec.output.url; quality is measured against the original input.
- cleanup: removes the work folder of a failed or canceled split job (the runner does it; ffmpeg idles).
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection

import ffrtmp_api as api
from ffrtmp_api import split as splitting

from . import plan as single
from .plan import PlanError


def work_folder(spec: api.TranscodeJobSpec) -> str:
    """The parent's work folder, from a child's spec (its output is the parent's, or lies in the folder)."""
    part = spec.part
    assert part is not None
    output = single._confined_path(spec.output.url, spec.volumes, field="spec.output.url")
    if part.role == "slice":
        return posixpath.dirname(output)
    return splitting.work_folder(output, part.parent)


def build_part_plan(
    job: api.TranscodeJob,
    *,
    namespace: str,
    name: str,
    uid: str,
    attempt: int,
    encoder: str,
    extra_formats: Collection[str] = (),
) -> api.ExecutionPlan:
    spec = job.spec
    part = spec.part
    assert part is not None and part.role != "slice"
    # Input options, volumes, probe and timeouts as an ordinary job of this spec would have them.
    plain = spec.model_copy(update={"part": None})
    base = single.build_plan(
        job.model_copy(update={"spec": plain}),
        namespace=namespace,
        name=name,
        uid=uid,
        attempt=attempt,
        encoder=encoder,
        extra_formats=extra_formats,
    )
    work = work_folder(spec)
    if part.role == "split":
        return _split(spec, base, work=work, extra_formats=extra_formats)
    if part.role == "stitch":
        return _stitch(spec, base, work=work)
    if part.role == "cleanup":
        return _cleanup(base, work=work)
    raise PlanError(f"spec.part.role {part.role!r} is not one the operator makes")


def _head() -> list[str]:
    return ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "warning", "-progress", "pipe:1", "-nostats"]


def _split(
    spec: api.TranscodeJobSpec, base: api.ExecutionPlan, *, work: str, extra_formats: Collection[str]
) -> api.ExecutionPlan:
    part = spec.part
    assert part is not None
    source = single._input(spec, live=False, extra_formats=extra_formats)
    seconds = part.segmentSeconds or 60
    argv = _head() + source.args
    argv += [
        "-map",
        "0:v:0",
        "-c:v",
        "copy",
        "-an",
        "-sn",
        "-dn",
        "-f",
        "segment",
        "-segment_time",
        str(seconds),
        "-segment_list_type",
        "csv",
        "-segment_list",
        single._ffmpeg_path(f"{work}/{splitting.SOURCE_LIST}"),
        "-reset_timestamps",
        "1",
        "-segment_format",
        "matroska",
        single._ffmpeg_path(f"{work}/{splitting.SOURCE_PATTERN}"),
    ]
    audio = spec.audio.codec != "none"
    if audio:  # last, so that the runner can drop it for an input without audio (split.without_audio_output)
        argv += [
            "-map",
            "0:a:0",
            "-vn",
            "-sn",
            "-dn",
            *single._audio_args(spec),
            "-f",
            "matroska",
            single._ffmpeg_path(f"{work}/{splitting.AUDIO_FILE}"),
        ]
    return base.model_copy(
        update={
            "ffmpegArgs": argv,
            "outputUrl": work,
            "tempOutputUrl": None,
            "outputContainer": "mkv",
            "encoder": "copy",
            "optionalAudio": audio,
            "qualityMetrics": [],
            "targetWidth": None,
            "targetHeight": None,
            "split": splitting.SplitPlan(role="split", workFolder=work, audio=audio),
        }
    )


def _stitch(spec: api.TranscodeJobSpec, base: api.ExecutionPlan, *, work: str) -> api.ExecutionPlan:
    part = spec.part
    assert part is not None
    if not part.segments:
        raise PlanError("spec.part.segments: a stitch needs the number of slices")
    container = base.outputContainer
    # The runner writes the concat list (one opened slice per line) and names it and the audio by fd.
    argv = _head() + [
        "-f",
        "concat",
        "-safe",
        "0",
        "-protocol_whitelist",
        "file",
        "-i",
        single._ffmpeg_path(f"{work}/.{splitting.STITCH_LIST}"),
    ]
    if part.audio:
        argv += ["-i", single._ffmpeg_path(f"{work}/{splitting.AUDIO_FILE}")]
    argv += ["-map", "0:v:0", *(["-map", "1:a:0"] if part.audio else []), "-c", "copy"]
    argv += single._container_args(container, final_path=base.outputUrl)
    argv += ["-f", single.MUXERS[container], single._ffmpeg_path(base.tempOutputUrl or base.outputUrl)]
    return base.model_copy(
        update={
            "ffmpegArgs": argv,
            "encoder": "copy",
            "probeArgs": [],
            "inputDurationSeconds": part.seconds or None,
            "split": splitting.SplitPlan(
                role="stitch", workFolder=work, segments=part.segments, audio=bool(part.audio)
            ),
        }
    )


def _cleanup(base: api.ExecutionPlan, *, work: str) -> api.ExecutionPlan:
    argv = _head() + ["-f", "lavfi", "-i", "nullsrc=s=16x16:r=1:d=1", "-f", "null", "-"]
    return base.model_copy(
        update={
            "ffmpegArgs": argv,
            "inputUrl": None,
            "inputArgs": [],
            "probeArgs": [],
            "testSource": None,
            "inputDurationSeconds": 1.0,
            "outputUrl": work,
            "tempOutputUrl": None,
            "encoder": "copy",
            "qualityMetrics": [],
            "split": splitting.SplitPlan(role="cleanup", workFolder=work),
        }
    )
