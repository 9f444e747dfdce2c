"""The ExecutionPlan of an ABR ladder (spec.renditions): one ffmpeg that decodes the input once, splits
the frames into one scaled branch per rendition, encodes each with aligned keyframes (a forced keyframe
every segment, no scene-cut keyframes), encodes the audio once, and muxes HLS (one media playlist per
rendition plus a shared audio rendition) or DASH (one manifest) into a hidden per-attempt temp folder
that the runner renames into place. Pure, like plan.py, whose input, rate-control and audio parts it uses.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection

import ffrtmp_api as api
from ffrtmp_api import ladder
from ffrtmp_api import split as splitting

from . import plan as single
from .plan import PlanError

SEGMENT_PATTERN = "seg_%05d.ts"
MEDIA_PLAYLIST = "index.m3u8"
DASH_INIT = "init-$RepresentationID$.m4s"
DASH_MEDIA = "chunk-$RepresentationID$-$Number%05d$.m4s"


def build_ladder_plan(
    job: api.TranscodeJob,
    *,
    namespace: str,
    name: str,
    uid: str,
    attempt: int,
    encoder: str,
    extra_formats: Collection[str] = (),
) -> api.ExecutionPlan:
    """The plan for one attempt of a ladder job; raises PlanError for one that cannot be run."""
    spec = job.spec
    renditions = spec.renditions or []
    container = spec.output.container
    if container not in ladder.LADDER_CONTAINERS:
        raise PlanError("spec.renditions need spec.output.container hls or dash")
    if encoder == "copy" or spec.video.codec == "copy":
        raise PlanError("spec.renditions re-encode the video: spec.video.codec copy cannot make them")
    # Everything but the output (input whitelists, volumes, probe, timeouts) as for a single file output:
    # the folder stands in for a file of that name.
    folder_url = spec.output.url.removesuffix("/")
    as_file = spec.model_copy(
        update={
            "output": spec.output.model_copy(update={"url": folder_url, "container": "mp4"}),
            "renditions": None,
        }
    )
    base = single.build_plan(
        job.model_copy(update={"spec": as_file}),
        namespace=namespace,
        name=name,
        uid=uid,
        attempt=attempt,
        encoder=encoder,
        extra_formats=extra_formats,
    )
    folder = base.outputUrl
    parent, leaf = posixpath.split(folder)
    temp = posixpath.join(parent, f".{leaf}.ffrtmp-{attempt}.part")
    source = single._input(spec, live=False, extra_formats=extra_formats)
    seconds = spec.output.segmentSeconds or ladder.DEFAULT_SEGMENT_SECONDS
    synthetic = bool(source.audio_args)
    audio = spec.audio.codec != "none" and (synthetic or spec.input.testSource is None)

    def argv(with_audio: bool) -> list[str]:
        args = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "warning"]
        args += source.args + (source.audio_args if with_audio else [])
        args += ["-filter_complex", filter_graph(spec, encoder=encoder)]
        for i in range(len(renditions)):
            args += ["-map", f"[v{i}]"]
        if with_audio:
            args += ["-map", "1:a:0" if synthetic else "0:a:0?"]
        args += ["-vaapi_device", single.VAAPI_DEVICE] if encoder.endswith("_vaapi") else []
        args += ["-c:v", encoder, *single._preset(encoder, spec.video.preset)]
        for i, rendition in enumerate(renditions):
            args += rate_control(encoder, rendition, spec.video, index=i)
        args += keyframes(encoder, seconds=seconds, fps=frame_rate(spec))
        args += single._audio_args(spec) if with_audio else ["-an"]
        args += ["-progress", "pipe:1", "-nostats"]
        if spec.part is not None:  # a split ladder's slice: its segments follow the previous slice's
            offset = round((spec.part.start or 0.0) + splitting.TS_LEAD_SECONDS, 6)
            args += ["-output_ts_offset", single._num(offset)]
        return args + muxer(container, temp=temp, renditions=renditions, seconds=seconds, audio=with_audio)

    return base.model_copy(
        update={
            "ffmpegArgs": argv(audio),
            # A file or network input may have no audio stream; only the runner's probe can tell. The dash
            # muxer takes an absent optional audio map in its stride, the hls one's -var_stream_map does not.
            "optionalAudio": audio and not synthetic and container == "hls",
            "outputUrl": folder,
            "tempOutputUrl": temp,
            "outputContainer": container,
            "renditions": plan_renditions(renditions, container=container),
            "targetWidth": max(renditions, key=lambda r: r.width * r.height).width,
            "targetHeight": max(renditions, key=lambda r: r.width * r.height).height,
        }
    )


def plan_renditions(renditions: list[api.ladder.Rendition], *, container: str) -> list[api.ladder.PlanRendition]:
    return [
        ladder.PlanRendition(
            name=r.name,
            width=r.width,
            height=r.height,
            stream=i,
            playlist=f"{r.name}/{MEDIA_PLAYLIST}" if container == "hls" else None,
        )
        for i, r in enumerate(renditions)
    ]


def frame_rate(spec: api.TranscodeJobSpec) -> float | None:
    """The output frame rate where the spec tells it (spec.video.fps, a test source), else None."""
    if spec.video.fps:
        return spec.video.fps
    return float(spec.input.testSource.fps) if spec.input.testSource else None


def filter_graph(spec: api.TranscodeJobSpec, *, encoder: str) -> str:
    """Decode once: [0:v] -> (fps) -> split -> one scale per rendition -> [v0], [v1], ..."""
    renditions = spec.renditions or []
    head = [f"fps={single._num(spec.video.fps)}"] if spec.video.fps else []
    if encoder.endswith("_vaapi"):
        tail = "format=nv12,hwupload"
    elif encoder.endswith("_qsv"):
        tail = "format=nv12"
    else:
        tail = "format=yuv420p"
    labels = "".join(f"[s{i}]" for i in range(len(renditions)))
    graph = [f"[0:v]{','.join([*head, f'split={len(renditions)}'])}{labels}"]
    # setsar=1: square pixels in every rendition (426x240 of a 16:9 source would get a 640:639 SAR).
    graph += [f"[s{i}]scale={r.width}:{r.height},setsar=1,{tail}[v{i}]" for i, r in enumerate(renditions)]
    return ";".join(graph)


def rate_control(encoder: str, rendition: api.ladder.Rendition, video: api.VideoSpec, *, index: int) -> list[str]:
    """plan's rate control for one output stream (each option gets the :v:<index> specifier); the
    rendition's bitrate or crf, else spec.video's; maxrate and bufsize override the derived caps."""
    if rendition.bitrate or rendition.crf is not None:
        bitrate, crf = rendition.bitrate, rendition.crf
    else:
        bitrate, crf = video.bitrate, video.crf
    args = single._rate_control(encoder, crf=crf, bitrate=bitrate)
    options = dict(zip(args[::2], args[1::2], strict=True))
    if rendition.maxrate:
        options["-maxrate"] = rendition.maxrate
        options["-bufsize"] = single._double(rendition.maxrate)
    if rendition.bufsize:
        options["-bufsize"] = rendition.bufsize
    out: list[str] = []
    for option, value in options.items():
        out += [f"{option}:{index}" if option.endswith(":v") else f"{option}:v:{index}", value]
    return out


def keyframes(encoder: str, *, seconds: int, fps: float | None) -> list[str]:
    """A keyframe at every segment boundary in every rendition, and none elsewhere that one rendition
    would have and another not (scene cuts are decided per encoder instance, so they are switched off)."""
    args = ["-force_key_frames:v", f"expr:gte(t,n_forced*{seconds})"]
    if fps:
        gop = str(max(1, round(fps * seconds)))
        args += ["-g:v", gop, "-keyint_min:v", gop]
    if encoder == "libx264":
        args += ["-sc_threshold:v", "0"]
    elif encoder == "libx265":
        args += ["-x265-params", "scenecut=0"]
    elif encoder.endswith("_nvenc"):
        args += ["-forced-idr:v", "1", "-no-scenecut:v", "1"]
    return args


def muxer(container: str, *, temp: str, renditions: list[api.ladder.Rendition], seconds: int, audio: bool) -> list[str]:
    if container == "hls":
        group = ",agroup:audio" if audio else ""
        streams = [f"v:{i}{group},name:{r.name}" for i, r in enumerate(renditions)]
        if audio:
            streams.append(f"a:0{group},name:{ladder.AUDIO_FOLDER}")
        return [
            "-f",
            "hls",
            "-hls_time",
            str(seconds),
            "-hls_playlist_type",
            "vod",
            "-hls_segment_type",
            "mpegts",
            "-hls_flags",
            "independent_segments",
            "-master_pl_name",
            ladder.MANIFESTS["hls"],
            "-hls_segment_filename",
            single._ffmpeg_path(f"{temp}/%v/{SEGMENT_PATTERN}"),
            "-var_stream_map",
            " ".join(streams),
            single._ffmpeg_path(f"{temp}/%v/{MEDIA_PLAYLIST}"),
        ]
    sets = "id=0,streams=v" + (" id=1,streams=a" if audio else "")
    return [
        "-f",
        "dash",
        "-seg_duration",
        str(seconds),
        "-use_template",
        "1",
        "-use_timeline",
        "1",
        "-adaptation_sets",
        sets,
        "-init_seg_name",
        DASH_INIT,
        "-media_seg_name",
        DASH_MEDIA,
        single._ffmpeg_path(f"{temp}/{ladder.MANIFESTS['dash']}"),
    ]
