"""Builds a job's ExecutionPlan: the complete ffmpeg and ffprobe argv a job pod runs, as lists.

Pure: the job spec and the placement in, an `api.ExecutionPlan` out. Every user string stays exactly one
argv element, inputs are confined by protocol and demuxer whitelists that ffmpeg and ffprobe both get (a
crafted playlist or concat list cannot pull other files or URLs in), paths are confined to the job's volumes
(ffrtmp_api.paths), and file outputs go to a hidden temp name the runner renames.
"""
# Over 400 lines on purpose: the ffmpeg and ffprobe argv for every input kind and container come from one builder.

from __future__ import annotations

import posixpath
from collections.abc import Collection
from typing import NamedTuple
from urllib.parse import urlsplit

import ffrtmp_api as api
from ffrtmp_api import paths


class PlanError(ValueError):
    """The spec cannot be turned into a safe plan (the operator fails the job with InputError)."""


# Protocols each input scheme may use, nested ones included (https = http over tls over tcp).
PROTOCOLS: dict[str, str] = {
    "file": "file",
    "http": "http,tcp",
    "https": "https,http,tls,tcp",
    "rtmp": "rtmp,tcp",
    "rtmps": "rtmps,rtmp,tls,tcp",
    "srt": "srt,udp",
}
# Demuxers a plain media input may use: each reads the one input it is given and nothing else. Left out,
# and refused even when forced with spec.input.format, unless an admin adds them (jobPolicy.inputFormats):
# raw-bytes demuxers (tty, bin, data, rawvideo, ...: they turn any file, a token or a key, into "media"),
# demuxers that open other files or URLs named inside the input (hls, dash, concat, imf, image2 patterns,
# sdp, rtsp, ffmetadata), tracker formats (libopenmpt, libmodplug), and lavfi, avisynth and vapoursynth
# (filter graphs and scripts that read any file or run code).
SAFE_DEMUXERS = (
    "mov",
    "matroska",
    "webm",
    "flv",
    "live_flv",
    "mpegts",
    "avi",
    "asf",
    "mpeg",
    "ogg",
    "wav",
    "mp3",
    "aac",
    "flac",
    "h264",
    "hevc",
    "m4v",
    "ivf",
    "mjpeg",
    "mpegvideo",
    "yuv4mpegpipe",
)
# What spec.input.allowPlaylists (the tenant's own flag) adds. Each stays inside what the input may reach:
# concat runs in ffmpeg's default safe mode (only relative names without "." or ".." components, so a
# list reaches files in its own folder, or on its own host); hls and dash only on network inputs, whose
# protocol whitelist holds no file protocol, so their segments come from the network like the input.
# HLS or DASH playlists on a volume can name any absolute path: only an admin can allow them.
FILE_PLAYLIST_DEMUXERS = ("concat",)
NETWORK_PLAYLIST_DEMUXERS = ("concat", "hls", "dash")
PLAYLIST_PROTOCOLS = ("crypto", "data")  # AES-128 HLS segments (crypto+<allowed protocol>), inline data: URIs
_FORMAT_NAME = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")

CONTAINER_BY_EXTENSION = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mkv": "mkv",
    ".mov": "mov",
    ".webm": "webm",
    ".flv": "flv",
    ".ts": "mpegts",
    ".m2ts": "mpegts",
    ".m3u8": "hls",
}
MUXERS = {"mp4": "mp4", "mkv": "matroska", "mov": "mov", "webm": "webm", "flv": "flv", "mpegts": "mpegts", "hls": "hls"}
AUDIO_ENCODERS = {"aac": "aac", "opus": "libopus", "mp3": "libmp3lame"}

# x264 preset names (the spec's vocabulary) mapped onto each encoder family's own presets.
_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
NVENC_PRESETS = dict(zip(_X264_PRESETS, ("p1", "p2", "p3", "p3", "p4", "p4", "p5", "p6", "p7"), strict=True))
_QSV = ("veryfast", "veryfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
QSV_PRESETS = dict(zip(_X264_PRESETS, _QSV, strict=True))
SVTAV1_PRESETS = dict(zip(_X264_PRESETS, ("12", "11", "10", "9", "8", "7", "5", "4", "2"), strict=True))
# libvpx-vp9: (deadline, cpu-used).
VP9_PRESETS = dict(
    zip(
        _X264_PRESETS,
        (
            ("realtime", "8"),
            ("realtime", "7"),
            ("good", "5"),
            ("good", "4"),
            ("good", "3"),
            ("good", "2"),
            ("good", "1"),
            ("good", "0"),
            ("best", "0"),
        ),
        strict=True,
    )
)
NETWORK_TIMEOUT_US = "15000000"  # a stalled network input makes ffmpeg exit (the runner reconnects live jobs)
VAAPI_DEVICE = "/dev/dri/renderD128"


def required_encoder(spec: api.TranscodeJobSpec, node_encoders: Collection[str]) -> str | None:
    """The ffmpeg encoder `spec` needs on a node that proved `node_encoders`; None when none fits.

    accelerator none -> software; nvidia/intel/vaapi -> that family's encoder; auto -> the first of
    api.HARDWARE_ACCELERATORS whose encoder the node proved, else software. Codec copy needs no encoder.
    """
    codec = spec.video.codec
    if codec == "copy":
        return "copy"
    family = api.ENCODERS[codec]
    accelerator = spec.hardware.accelerator
    if accelerator == "auto":
        for hardware in api.HARDWARE_ACCELERATORS:
            if family.get(hardware) in node_encoders:
                return family[hardware]
        accelerator = "none"
    encoder = family.get(accelerator)
    return encoder if encoder is not None and encoder in node_encoders else None


class InputPlan(NamedTuple):
    args: list[str]  # input options ending with "-i" and the input, for the main (video) input
    audio_args: list[str]  # a second input for a synthetic audio track, or []
    ffmpeg_url: str | None  # the input as ffmpeg opens it (None for test sources)
    path_or_url: str | None  # ExecutionPlan.inputUrl: a path for file:// inputs, else the URL
    probe_args: list[str]


def build_plan(
    job: api.TranscodeJob,
    *,
    namespace: str,
    name: str,
    uid: str,
    attempt: int,
    encoder: str,
    extra_formats: Collection[str] = (),
) -> api.ExecutionPlan:
    """The ExecutionPlan for one attempt of `job`, run with `encoder` (from `required_encoder`).
    `extra_formats`: demuxers an admin allows beyond SAFE_DEMUXERS (operator setting, chart value)."""
    spec = job.spec
    if spec.part is not None and spec.part.role != "slice":  # a split job's split, stitch or cleanup child
        from .split_plan import build_part_plan

        return build_part_plan(
            job, namespace=namespace, name=name, uid=uid, attempt=attempt, encoder=encoder, extra_formats=extra_formats
        )
    if spec.renditions:  # an ABR ladder: its own builder (imported here: it builds on this module)
        from .ladder_plan import build_ladder_plan

        return build_ladder_plan(
            job, namespace=namespace, name=name, uid=uid, attempt=attempt, encoder=encoder, extra_formats=extra_formats
        )
    live = spec.queue == "live"
    source = _input(spec, live=live, extra_formats=extra_formats)
    output_url, temp_url, container = _output(spec, attempt=attempt)
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "warning"]
    argv += source.args + source.audio_args
    argv += _maps(spec, synthetic_audio=bool(source.audio_args))
    argv += _video_args(spec, encoder=encoder, live=live)
    argv += _audio_args(spec)
    argv += _container_args(container, final_path=output_url)
    argv += ["-progress", "pipe:1", "-nostats"]
    argv += ["-f", MUXERS[container], _ffmpeg_path(temp_url) if temp_url else _output_target(output_url)]
    test = spec.input.testSource
    copy = spec.video.codec == "copy"
    return api.ExecutionPlan(
        namespace=namespace,
        job=name,
        jobUid=uid,
        attempt=attempt,
        live=live,
        liveDurationSeconds=spec.live.durationSeconds if spec.live else 0,
        reconnect=spec.live.reconnect if spec.live else True,
        volumes=[api.PlanVolume(name=v.name, mountPath=v.mountPath, readOnly=v.readOnly) for v in spec.volumes],
        inputUrl=source.path_or_url,
        inputArgs=source.args,
        testSource=test,
        inputDurationSeconds=test.durationSeconds if test and test.durationSeconds > 0 else None,
        outputUrl=output_url,
        tempOutputUrl=temp_url,
        outputContainer=container,
        ffmpegArgs=argv,
        probeArgs=source.probe_args,
        encoder=encoder,
        targetWidth=None if copy else spec.video.width,
        targetHeight=None if copy else spec.video.height,
        qualityMetrics=list(spec.quality.metrics) if spec.quality else [],
        timeoutSeconds=spec.timeoutSeconds,
    )


# ------------------------------------------------------------------------------------------- input


def _input(spec: api.TranscodeJobSpec, *, live: bool, extra_formats: Collection[str] = ()) -> InputPlan:
    test = spec.input.testSource
    if test is not None:
        return _test_source(test, live=live)
    url = spec.input.url or ""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in PROTOCOLS:
        raise PlanError(f"spec.input.url: unsupported scheme {scheme!r}")
    network = scheme != "file"
    demuxers = allowed_demuxers(network=network, playlists=spec.input.allowPlaylists, extra=extra_formats)
    protocols = PROTOCOLS[scheme]
    if spec.input.allowPlaylists and network:
        protocols += "," + ",".join(PLAYLIST_PROTOCOLS)
    forced = _forced_format(spec.input.format, demuxers)
    if network:
        ffmpeg_url = path_or_url = _network_url(url, field="spec.input.url")
    else:
        path = _confined_path(url, spec.volumes, field="spec.input.url")
        ffmpeg_url, path_or_url = _ffmpeg_path(path), path
    options = ["-protocol_whitelist", protocols, "-format_whitelist", ",".join(demuxers)]
    if network:
        options += ["-rw_timeout", NETWORK_TIMEOUT_US]
    if scheme in ("http", "https"):
        options += ["-reconnect", "1", "-reconnect_delay_max", "10"]
        if live:
            options += ["-reconnect_streamed", "1"]
    if forced:
        options += ["-f", forced]
    # ffprobe opens the input with exactly the options ffmpeg gets: the same whitelists, the same forced
    # demuxer, the same timeouts. A probe is an open like any other.
    probe = (
        []
        if live
        else [
            "ffprobe",
            "-v",
            "error",
            *options,
            "-show_entries",
            "format=duration",
            "-of",
            "default=noprint_wrappers=1:nokey=1",
            "-i",
            ffmpeg_url,
        ]
    )
    return InputPlan(options + ["-i", ffmpeg_url], [], ffmpeg_url, path_or_url, probe)


def allowed_demuxers(*, network: bool, playlists: bool, extra: Collection[str] = ()) -> list[str]:
    """The -format_whitelist of an input: the safe demuxers, those an admin added, and the playlist
    demuxers spec.input.allowPlaylists enables for this kind of input."""
    demuxers = list(SAFE_DEMUXERS)
    if playlists:
        demuxers += NETWORK_PLAYLIST_DEMUXERS if network else FILE_PLAYLIST_DEMUXERS
    demuxers += [d.lower() for d in extra]
    return list(dict.fromkeys(demuxers))


def _forced_format(format_: str | None, allowed: list[str]) -> str | None:
    """The demuxer spec.input.format forces, refused unless it is on the input's whitelist: forcing only
    narrows what the input may be (ffmpeg would otherwise open a forced demuxer that probing never picks)."""
    if not format_:
        return None
    names = [f for f in format_.lower().split(",") if f]
    for forced in names:
        if not set(forced) <= _FORMAT_NAME or forced not in allowed:
            raise PlanError(
                f"spec.input.format: demuxer {forced!r} is not allowed for this input: a forced demuxer must be "
                "on the safe list (playlist demuxers need spec.input.allowPlaylists, others an admin's "
                "jobPolicy.inputFormats)"
            )
    return names[0] if names else None


def _test_source(test: api.TestSource, *, live: bool) -> InputPlan:
    # -t as an input option bounds every lavfi pattern (mandelbrot and color have no duration option).
    bound = ["-t", _num(test.durationSeconds)] if test.durationSeconds > 0 else []
    realtime = ["-re"] if live else []  # a live test source is paced like a camera, not as fast as possible
    colour = "c=blue:" if test.pattern == "color" else ""
    graph = f"{test.pattern}={colour}size={test.width}x{test.height}:rate={test.fps}"
    video = [*realtime, *bound, "-f", "lavfi", "-i", graph]
    audio = [*realtime, *bound, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] if test.audio else []
    return InputPlan(video, audio, None, None, [])


def _confined_path(url: str, volumes: list[api.VolumeSpec], *, field: str) -> str:
    """The local path of a file:// URL, refused unless it is in normal form and lies strictly under the
    mountPath of one of `volumes` (os.path.commonpath, not a string prefix). The CRD's CEL rules refuse the
    same; this holds for specs stored before those rules or written around them."""
    try:
        path = paths.file_url_path(url)
    except paths.PathError as exc:
        raise PlanError(f"{field}: {exc}") from None
    for volume in volumes:
        problem = paths.mount_path_problem(volume.mountPath)
        if problem:
            raise PlanError(f"spec.volumes[{volume.name}].mountPath {problem}")
    if not any(paths.under(path, v.mountPath) for v in volumes):
        raise PlanError(f"{field}: {path} is not under the mountPath of one of spec.volumes")
    return path


def _ffmpeg_path(path: str) -> str:
    # "file:" pins the file protocol: the path is never read as another protocol's URL or as an option.
    return "file:" + path


def _network_url(url: str, *, field: str) -> str:
    if url.startswith("-") or paths.bad_character(url):
        raise PlanError(f"{field}: not a URL (control or whitespace characters)")
    return url


# ------------------------------------------------------------------------------------------ output


def _output(spec: api.TranscodeJobSpec, *, attempt: int) -> tuple[str, str | None, str]:
    """(final output, temp output or None, container)."""
    url = spec.output.url
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("rtmp", "rtmps"):
        return _network_url(url, field="spec.output.url"), None, spec.output.container or "flv"
    path = _confined_path(url, spec.volumes, field="spec.output.url")
    directory, filename = posixpath.split(path)
    stem, extension = posixpath.splitext(filename)
    container = spec.output.container or CONTAINER_BY_EXTENSION.get(extension.lower(), "mp4")
    if container == "hls":
        return path, None, container  # the hls muxer writes its playlist atomically itself (temp_file)
    # Hidden, per-attempt, same extension: a retry never appends to a previous attempt's partial file.
    temp = posixpath.join(directory, f".{stem}.ffrtmp-{attempt}.part{extension}")
    return path, temp, container


def _output_target(url: str) -> str:
    return url if "://" in url else _ffmpeg_path(url)


def _container_args(container: str, *, final_path: str) -> list[str]:
    if container in ("mp4", "mov"):
        return ["-movflags", "+faststart"]
    if container == "flv":
        return ["-flvflags", "no_duration_filesize"]
    if container == "hls":
        stem = posixpath.splitext(final_path)[0]
        return [
            "-hls_playlist_type",
            "vod",
            "-hls_time",
            "4",
            "-hls_flags",
            "temp_file",
            "-hls_segment_filename",
            _ffmpeg_path(stem + "_%05d.ts"),
        ]
    return []


# ------------------------------------------------------------------------------------ video, audio


def _maps(spec: api.TranscodeJobSpec, *, synthetic_audio: bool) -> list[str]:
    maps = ["-map", "0:v:0"]
    if spec.audio.codec == "none":
        return maps
    return maps + (["-map", "1:a:0"] if synthetic_audio else ["-map", "0:a:0?"])


def _video_args(spec: api.TranscodeJobSpec, *, encoder: str, live: bool) -> list[str]:
    video = spec.video
    if video.codec == "copy" or encoder == "copy":
        return ["-c:v", "copy"]
    filters = []
    if video.width or video.height:
        filters.append(f"scale={video.width or -2}:{video.height or -2}")
    if video.fps:
        filters.append(f"fps={_num(video.fps)}")
    if encoder.endswith("_vaapi"):
        filters += ["format=nv12", "hwupload"]
    elif encoder.endswith("_qsv"):
        filters.append("format=nv12")
    else:
        filters.append("format=yuv420p")  # 4:2:0 plays everywhere; rgb test patterns would give 4:4:4
    args = ["-vaapi_device", VAAPI_DEVICE] if encoder.endswith("_vaapi") else []
    args += ["-vf", ",".join(filters), "-c:v", encoder]
    args += _rate_control(encoder, crf=video.crf, bitrate=video.bitrate)
    args += _preset(encoder, video.preset)
    if video.gop:
        args += ["-g", str(video.gop)]
    if live and encoder in ("libx264", "libx265"):
        args += ["-tune", "zerolatency"]
    return args


def _rate_control(encoder: str, *, crf: int | None, bitrate: str | None) -> list[str]:
    if bitrate:
        # maxrate/bufsize cap peaks so a live RTMP stream stays within its bitrate.
        return ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", _double(bitrate)]
    if crf is None:
        return []
    if encoder.endswith("_nvenc"):
        return ["-rc", "vbr", "-cq", str(min(crf, 51)), "-b:v", "0"]
    if encoder.endswith("_qsv"):
        return ["-global_quality", str(max(crf, 1))]
    if encoder.endswith("_vaapi"):
        return ["-rc_mode", "CQP", "-qp", str(min(crf, 51))]
    if encoder == "libvpx-vp9":
        return ["-crf", str(crf), "-b:v", "0"]  # constant quality mode needs -b:v 0
    if encoder in ("libx264", "libx265"):
        return ["-crf", str(min(crf, 51))]
    return ["-crf", str(crf)]


def _preset(encoder: str, preset: str | None) -> list[str]:
    if preset is None:
        return ["-row-mt", "1"] if encoder == "libvpx-vp9" else []
    if encoder in ("libx264", "libx265"):
        return ["-preset", preset]
    if encoder.endswith("_nvenc"):
        return ["-preset", NVENC_PRESETS[preset]]
    if encoder.endswith("_qsv"):
        return ["-preset", QSV_PRESETS[preset]]
    if encoder == "libsvtav1":
        return ["-preset", SVTAV1_PRESETS[preset]]
    if encoder == "libvpx-vp9":
        deadline, cpu_used = VP9_PRESETS[preset]
        return ["-deadline", deadline, "-cpu-used", cpu_used, "-row-mt", "1"]
    return []  # vaapi: no preset vocabulary


def _audio_args(spec: api.TranscodeJobSpec) -> list[str]:
    audio = spec.audio
    if audio.codec == "none":
        return ["-an"]
    if audio.codec == "copy":
        return ["-c:a", "copy"]
    args = ["-c:a", AUDIO_ENCODERS[audio.codec]]
    if audio.bitrate:
        args += ["-b:a", audio.bitrate]
    if audio.sampleRate:
        args += ["-ar", str(audio.sampleRate)]
    if audio.channels:
        args += ["-ac", str(audio.channels)]
    return args


def _double(bitrate: str) -> str:
    unit = bitrate[-1] if bitrate[-1] in "kM" else ""
    value = float(bitrate[: len(bitrate) - len(unit)]) * 2
    return f"{_num(value)}{unit}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
