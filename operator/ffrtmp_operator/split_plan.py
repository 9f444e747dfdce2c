"""ExecutionPlans of a split job's split, stitch and cleanup children (slices are ordinary encodes). Pure,
like plan.py, whose input and container parts they use.

- split: one read of the input: the video cut at the first keyframe after each segmentSeconds into source
  segments by stream copy (ffmpeg's segment muxer, which also lists each segment's start and end), and the
  audio encoded once, whole, into the work folder.
- stitch: the encoded slices joined by the concat demuxer with stream copy, the audio muxed beside them,
  into a temp file renamed to spec.output.url; quality is measured against the original input.
- cleanup: removes the work folder of a failed or canceled split job (the runner does it; ffmpeg idles).

An HLS ladder's split child writes the audio as HLS instead, and its stitch reads no media: the runner joins
the slices' playlists (_stitch_ladder below; the slices are ladder_plan's, with an -output_ts_offset).
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection

import ffrtmp_api as api
from ffrtmp_api import ladder
from ffrtmp_api import split as splitting

from . import ladder_plan
from . import plan as single
from .plan import PlanError


def work_folder(spec: api.TranscodeJobSpec) -> str:
    """The parent's work folder, from a child's spec (its output is the parent's, or lies in the folder)."""
    part = spec.part
    assert part is not None
    url = spec.output.url.removesuffix("/")  # a ladder's folder
    output = single._confined_path(url, spec.volumes, field="spec.output.url")
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
    # Input options, volumes, probe and timeouts as an ordinary job of this spec would have them (a ladder's
    # folder standing in for a file of that name, as ladder_plan does).
    plain = spec.model_copy(update={"part": None})
    if spec.renditions:
        output = spec.output.model_copy(update={"url": spec.output.url.removesuffix("/"), "container": "mp4"})
        plain = plain.model_copy(update={"renditions": None, "output": output})
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
    if part.role == "stitch" and spec.renditions:
        return _stitch_ladder(spec, base, work=work, attempt=attempt)
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
        argv += ["-map", "0:a:0", "-vn", "-sn", "-dn", *single._audio_args(spec)]
        argv += _hls_audio(spec, work=work) if spec.renditions else ["-f", "matroska", f"{work}/{splitting.AUDIO_FILE}"]
        argv[-1] = single._ffmpeg_path(argv[-1])
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


def _hls_audio(spec: api.TranscodeJobSpec, *, work: str) -> list[str]:
    """A ladder's audio rendition, whole, as HLS in the work folder (no subfolder: the hls muxer makes none
    for a file: URL); the stitch takes its playlist and segments as they are."""
    seconds = spec.output.segmentSeconds or ladder.DEFAULT_SEGMENT_SECONDS
    return [
        "-output_ts_offset",
        str(splitting.TS_LEAD_SECONDS),  # as the slices' video (ladder_plan)
        "-f",
        "hls",
        "-hls_time",
        str(seconds),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "mpegts",
        "-hls_segment_filename",
        single._ffmpeg_path(f"{work}/{splitting.AUDIO_SEGMENTS}"),
        f"{work}/{splitting.AUDIO_PLAYLIST}",
    ]


def _stitch_ladder(
    spec: api.TranscodeJobSpec, base: api.ExecutionPlan, *, work: str, attempt: int
) -> api.ExecutionPlan:
    """A split ladder's stitch re-encodes and copies nothing: the runner links the slices' segments into the
    ladder's temp folder and joins their media playlists (ladder.place), then measures the ladder (quality
    against the original input, which is why the input stays in the plan). ffmpeg idles, as a cleanup's does."""
    part = spec.part
    assert part is not None and spec.renditions
    if not part.segments:
        raise PlanError("spec.part.segments: a stitch needs the number of slices")
    folder = base.outputUrl
    parent, leaf = posixpath.split(folder)
    plan = _cleanup(base, work=work)
    return plan.model_copy(
        update={
            "outputUrl": folder,
            "tempOutputUrl": posixpath.join(parent, f".{leaf}.ffrtmp-{attempt}.part"),
            "outputContainer": "hls",
            "renditions": ladder_plan.plan_renditions(spec.renditions, container="hls"),
            "inputUrl": base.inputUrl,
            "inputArgs": base.inputArgs,
            "inputDurationSeconds": part.seconds or None,
            "qualityMetrics": base.qualityMetrics,
            "split": splitting.SplitPlan(
                role="stitch", workFolder=work, segments=part.segments, audio=bool(part.audio)
            ),
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
