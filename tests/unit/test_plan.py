"""Plan builder: the ffmpeg/ffprobe argv a job pod runs, built from the spec (pure, no ffmpeg needed)."""

from __future__ import annotations

from typing import Any

import pytest

import ffrtmp_api as api
from ffrtmp_operator import plan

VOLUMES = [{"name": "media", "mountPath": "/media", "emptyDir": {}}]


def job(**spec: Any) -> api.TranscodeJob:
    spec.setdefault("input", {"testSource": {"durationSeconds": 5}})
    spec.setdefault("output", {"url": "file:///media/out/hello.mp4"})
    spec.setdefault("volumes", VOLUMES)
    return api.TranscodeJob(spec=api.TranscodeJobSpec.model_validate(spec))


def build(encoder: str = "libx264", attempt: int = 1, **spec: Any) -> api.ExecutionPlan:
    return plan.build_plan(job(**spec), namespace="ns", name="hello", uid="uid-1", attempt=attempt, encoder=encoder)


def value_after(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def values_after(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == option]


# ------------------------------------------------------------------------------------ required_encoder


@pytest.mark.parametrize(
    ("name", "video", "accelerator", "node", "expected"),
    [
        ("given h264 none when node has libx264 then libx264", "h264", "none", {"libx264"}, "libx264"),
        ("given h264 none when node lacks libx264 then none fits", "h264", "none", {"h264_nvenc"}, None),
        ("given auto when node has nvenc then nvenc", "h264", "auto", {"libx264", "h264_nvenc"}, "h264_nvenc"),
        ("given auto when node has nvenc and qsv then nvidia first", "hevc", "auto",
         {"hevc_qsv", "hevc_nvenc", "libx265"}, "hevc_nvenc"),
        ("given auto when node has only software then software", "av1", "auto", {"libsvtav1"}, "libsvtav1"),
        ("given auto when node has nothing then none fits", "av1", "auto", set(), None),
        ("given nvidia when node has only software then none fits", "h264", "nvidia", {"libx264"}, None),
        ("given intel when node has qsv then qsv", "h264", "intel", {"h264_qsv"}, "h264_qsv"),
        ("given vp9 nvidia when no vp9 nvenc exists then none fits", "vp9", "nvidia", {"libvpx-vp9"}, None),
        ("given vp9 auto when vaapi proven then vaapi", "vp9", "auto", {"vp9_vaapi", "libvpx-vp9"}, "vp9_vaapi"),
        ("given codec copy when node has nothing then copy", "copy", "nvidia", set(), "copy"),
    ],  # fmt: skip
)
def test_required_encoder(name: str, video: str, accelerator: str, node: set[str], expected: str | None) -> None:
    spec = job(video={"codec": video}, hardware={"accelerator": accelerator}).spec
    assert plan.required_encoder(spec, node) == expected, name


# ------------------------------------------------------------------------------------------ the argv


def test_given_test_source_when_built_then_lavfi_inputs_bounded_and_progress_on_pipe() -> None:
    p = build(input={"testSource": {"pattern": "smptebars", "width": 640, "height": 360, "fps": 25,
                                    "durationSeconds": 4}})  # fmt: skip
    argv = p.ffmpegArgs
    assert argv[:4] == ["ffmpeg", "-hide_banner", "-nostdin", "-y"]
    assert values_after(argv, "-i") == ["smptebars=size=640x360:rate=25", "sine=frequency=440:sample_rate=48000"]
    assert values_after(argv, "-t")[:2] == ["4", "4"]
    assert values_after(argv, "-map") == ["0:v:0", "1:a:0"]
    assert argv[argv.index("-progress") : argv.index("-progress") + 3] == ["-progress", "pipe:1", "-nostats"]
    assert "-re" not in argv  # a file job encodes as fast as it can
    assert p.inputDurationSeconds == 4 and p.probeArgs == [] and p.inputUrl is None


def test_given_file_output_when_built_then_written_to_hidden_temp_with_same_extension() -> None:
    p = build(output={"url": "file:///media/out/hello.mp4"}, attempt=3)
    assert p.outputUrl == "/media/out/hello.mp4"
    assert p.tempOutputUrl == "/media/out/.hello.ffrtmp-3.part.mp4"
    assert p.ffmpegArgs[-3:] == ["-f", "mp4", "file:/media/out/.hello.ffrtmp-3.part.mp4"]
    assert p.outputContainer == "mp4"


@pytest.mark.parametrize(
    ("name", "output", "muxer"),
    [
        ("given .mkv when built then matroska", {"url": "file:///media/o.mkv"}, "matroska"),
        ("given .webm when built then webm", {"url": "file:///media/o.webm"}, "webm"),
        ("given .ts when built then mpegts", {"url": "file:///media/o.ts"}, "mpegts"),
        ("given .mov when built then mov", {"url": "file:///media/o.mov"}, "mov"),
        ("given unknown extension when built then mp4", {"url": "file:///media/o.bin"}, "mp4"),
        ("given explicit container when built then it wins", {"url": "file:///media/o.bin", "container": "mkv"},
         "matroska"),
        ("given rtmp when built then flv", {"url": "rtmp://live.example/app/key"}, "flv"),
    ],  # fmt: skip
)
def test_output_container(name: str, output: dict[str, str], muxer: str) -> None:
    argv = build(output=output).ffmpegArgs
    assert argv[-3:-1] == ["-f", muxer], name


def test_given_rtmp_output_when_built_then_no_temp_and_url_verbatim() -> None:
    p = build(queue="live", input={"url": "rtmp://in.example/live/cam"}, output={"url": "rtmp://out.example/live/k"})
    assert p.tempOutputUrl is None and p.outputUrl == "rtmp://out.example/live/k"
    assert p.ffmpegArgs[-1] == "rtmp://out.example/live/k"
    assert p.live and p.probeArgs == []


@pytest.mark.parametrize(
    ("name", "url", "protocols"),
    [
        ("given file input then only the file protocol", "file:///media/in/a.mov", "file"),
        ("given http input then http over tcp", "http://h.example/a.mp4", "http,tcp"),
        ("given https input then https tls tcp", "https://h.example/a.mp4", "https,http,tls,tcp"),
        ("given rtmp input then rtmp tcp", "rtmp://h.example/live/a", "rtmp,tcp"),
        ("given srt input then srt udp", "srt://h.example:9000", "srt,udp"),
    ],
)
def test_protocol_whitelist_per_scheme(name: str, url: str, protocols: str) -> None:
    p = build(input={"url": url}, queue="live" if not url.startswith("file") else "default")
    assert value_after(p.ffmpegArgs, "-protocol_whitelist") == protocols, name
    if p.probeArgs:
        assert value_after(p.probeArgs, "-protocol_whitelist") == protocols


def test_given_playlists_not_allowed_when_built_then_demuxer_whitelist_excludes_them() -> None:
    p = build(input={"url": "file:///media/in/list.m3u8"})
    demuxers = value_after(p.ffmpegArgs, "-format_whitelist").split(",")
    assert "mov" in demuxers and "matroska" in demuxers
    assert not {"hls", "concat", "dash", "image2", "sdp"} & set(demuxers)
    assert value_after(p.probeArgs, "-format_whitelist") == ",".join(demuxers)


def test_given_playlists_allowed_when_built_then_hls_and_concat_whitelisted() -> None:
    p = build(input={"url": "https://h.example/a.m3u8", "allowPlaylists": True})
    demuxers = value_after(p.ffmpegArgs, "-format_whitelist").split(",")
    assert {"hls", "concat"} <= set(demuxers)
    assert "crypto" in value_after(p.ffmpegArgs, "-protocol_whitelist").split(",")


def test_given_forced_playlist_format_without_permission_when_built_then_not_whitelisted() -> None:
    argv = build(input={"url": "file:///media/in/a.txt", "format": "concat"}).ffmpegArgs
    assert value_after(argv, "-f") == "concat"  # ffmpeg then refuses it: "Format not on whitelist"
    assert "concat" not in value_after(argv, "-format_whitelist").split(",")


def test_given_file_input_when_built_then_path_decoded_and_probe_reads_it() -> None:
    p = build(input={"url": "file:///media/in/my%20talk.mov"})
    assert p.inputUrl == "/media/in/my talk.mov"
    assert p.inputArgs[-2:] == ["-i", "file:/media/in/my talk.mov"]
    assert p.probeArgs[0] == "ffprobe" and p.probeArgs[-1] == "file:/media/in/my talk.mov"


@pytest.mark.parametrize(
    ("name", "url", "field"),
    [
        ("given dot-dot escaping the volume then refused", "file:///media/../etc/passwd", "input"),
        ("given encoded dot-dot then refused", "file:///media/%2e%2e/etc/shadow", "input"),
        ("given a host in a file url then refused", "file://evil.example/media/a.mp4", "input"),
        ("given an encoded NUL then refused", "file:///media/a%00.mp4", "input"),
        ("given an output escaping the volume then refused", "file:///media/../root/x.mp4", "output"),
    ],
)
def test_paths_outside_volumes_are_refused(name: str, url: str, field: str) -> None:
    # The CRD's CEL rules reject most of these at admission; the builder must not rely on that.
    spec: dict[str, Any] = {"output": {"url": url}} if field == "output" else {"input": {"url": url}}
    with pytest.raises(plan.PlanError):
        build(**spec)


HOSTILE = [
    "file:///media/in/-vf drawtext=text=pwned.mp4",
    "file:///media/in/a;rm -rf $HOME.mp4",
    "file:///media/in/$(touch x)`id`.mp4",
    "file:///media/in/a'b\"c.mp4",
    "file:///media/in/concat:a|b.mp4",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_given_hostile_input_path_when_built_then_one_argv_element_pinned_to_file(url: str) -> None:
    p = build(input={"url": url.replace(" ", "%20")})
    path = p.inputUrl
    assert path is not None and path.startswith("/media/in/")
    assert p.ffmpegArgs.count("file:" + path) == 1  # exactly one element, never split or reparsed
    assert value_after(p.ffmpegArgs, "-i") == "file:" + path
    assert not any(a.startswith("file:") and a != "file:" + path for a in p.ffmpegArgs[:-1])


def test_given_hostile_output_name_when_built_then_last_element_is_the_temp_path() -> None:
    p = build(output={"url": "file:///media/out/-y%20-i%20x.mp4"})
    assert p.tempOutputUrl == "/media/out/.-y -i x.ffrtmp-1.part.mp4"
    assert p.ffmpegArgs[-1] == "file:/media/out/.-y -i x.ffrtmp-1.part.mp4"


def test_given_network_url_starting_with_dash_when_built_then_refused() -> None:
    spec = job(input={"url": "http://h.example/a.mp4"}).spec.model_copy(deep=True)
    spec.input.url = "-i/etc/passwd"  # impossible through the CRD pattern; refused anyway
    with pytest.raises(plan.PlanError):
        plan.build_plan(api.TranscodeJob(spec=spec), namespace="ns", name="n", uid="u", attempt=1, encoder="libx264")


# ---------------------------------------------------------------------------------- codecs, presets


@pytest.mark.parametrize(
    ("name", "video", "encoder", "expected"),
    [
        ("given x264 preset and crf then passed through", {"preset": "veryfast", "crf": 23}, "libx264",
         ["-c:v", "libx264", "-crf", "23", "-preset", "veryfast"]),
        ("given nvenc then p-preset and cq", {"preset": "slow", "crf": 28}, "h264_nvenc",
         ["-c:v", "h264_nvenc", "-rc", "vbr", "-cq", "28", "-b:v", "0", "-preset", "p5"]),
        ("given nvenc ultrafast then p1", {"preset": "ultrafast"}, "hevc_nvenc", ["-c:v", "hevc_nvenc", "-preset", "p1"]),
        ("given nvenc veryslow then p7", {"preset": "veryslow"}, "h264_nvenc", ["-c:v", "h264_nvenc", "-preset", "p7"]),
        ("given qsv then global_quality", {"crf": 25, "preset": "ultrafast"}, "h264_qsv",
         ["-c:v", "h264_qsv", "-global_quality", "25", "-preset", "veryfast"]),
        ("given svt-av1 then numeric preset", {"codec": "av1", "preset": "medium", "crf": 35}, "libsvtav1",
         ["-c:v", "libsvtav1", "-crf", "35", "-preset", "7"]),
        ("given vp9 crf then b:v 0", {"codec": "vp9", "crf": 31, "preset": "fast"}, "libvpx-vp9",
         ["-c:v", "libvpx-vp9", "-crf", "31", "-b:v", "0", "-deadline", "good", "-cpu-used", "3", "-row-mt", "1"]),
        ("given bitrate then capped vbv", {"bitrate": "2500k"}, "libx264",
         ["-c:v", "libx264", "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k"]),
        ("given gop then -g", {"gop": 60}, "libx264", ["-c:v", "libx264", "-g", "60"]),
    ],  # fmt: skip
)
def test_video_encoder_options(name: str, video: dict[str, Any], encoder: str, expected: list[str]) -> None:
    argv = build(video=video, encoder=encoder).ffmpegArgs
    start = argv.index("-c:v")
    assert argv[start : start + len(expected)] == expected, name


@pytest.mark.parametrize(
    ("name", "video", "encoder", "vf"),
    [
        ("given width and height then scale both", {"width": 640, "height": 360}, "libx264",
         "scale=640:360,format=yuv420p"),
        ("given width only then keep aspect", {"width": 640}, "libx264", "scale=640:-2,format=yuv420p"),
        ("given fps then fps filter", {"fps": 25}, "libx264", "fps=25,format=yuv420p"),
        ("given vaapi then upload", {"height": 720}, "h264_vaapi", "scale=-2:720,format=nv12,hwupload"),
    ],  # fmt: skip
)
def test_video_filters(name: str, video: dict[str, Any], encoder: str, vf: str) -> None:
    assert value_after(build(video=video, encoder=encoder).ffmpegArgs, "-vf") == vf, name


def test_given_codec_copy_when_built_then_no_filters_and_no_target_size() -> None:
    p = build(video={"codec": "copy", "width": 640, "height": 360}, encoder="copy")
    assert value_after(p.ffmpegArgs, "-c:v") == "copy" and "-vf" not in p.ffmpegArgs
    assert p.targetWidth is None and p.targetHeight is None


@pytest.mark.parametrize(
    ("name", "audio", "expected"),
    [
        ("given aac default then 128k", {}, ["-c:a", "aac", "-b:a", "128k"]),
        ("given opus with rate and channels", {"codec": "opus", "bitrate": "96k", "sampleRate": 48000, "channels": 2},
         ["-c:a", "libopus", "-b:a", "96k", "-ar", "48000", "-ac", "2"]),
        ("given mp3 then lame", {"codec": "mp3"}, ["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("given copy then copy", {"codec": "copy"}, ["-c:a", "copy"]),
    ],  # fmt: skip
)
def test_audio_options(name: str, audio: dict[str, Any], expected: list[str]) -> None:
    argv = build(audio=audio).ffmpegArgs
    start = argv.index("-c:a")
    assert argv[start : start + len(expected)] == expected, name


def test_given_audio_none_when_built_then_an_and_no_sine_input() -> None:
    argv = build(audio={"codec": "none"}, input={"testSource": {"durationSeconds": 2, "audio": True}}).ffmpegArgs
    assert "-an" in argv and values_after(argv, "-map") == ["0:v:0"]


# --------------------------------------------------------------------------------------------- live


def test_given_live_test_source_when_built_then_paced_endless_and_zerolatency() -> None:
    p = build(queue="live", input={"testSource": {"durationSeconds": 0}}, output={"url": "rtmp://o.example/live/k"})
    argv = p.ffmpegArgs
    assert argv.count("-re") == 2 and "-t" not in argv
    assert value_after(argv, "-tune") == "zerolatency"
    assert p.live and p.inputDurationSeconds is None


def test_given_live_rtmp_input_when_built_then_network_timeout_and_live_settings() -> None:
    p = build(queue="live", input={"url": "rtmp://in.example/live/cam"}, output={"url": "file:///media/out/rec.flv"},
              live={"durationSeconds": 60, "reconnect": True})  # fmt: skip
    assert value_after(p.ffmpegArgs, "-rw_timeout") == plan.NETWORK_TIMEOUT_US
    assert p.liveDurationSeconds == 60 and p.reconnect
    assert p.tempOutputUrl == "/media/out/.rec.ffrtmp-1.part.flv"


def test_given_quality_and_timeout_when_built_then_carried_in_plan() -> None:
    p = build(quality={"metrics": ["psnr", "ssim"]}, timeoutSeconds=600, video={"width": 320, "height": 240})
    assert p.qualityMetrics == ["psnr", "ssim"] and p.timeoutSeconds == 600
    assert (p.targetWidth, p.targetHeight) == (320, 240)
    assert (p.namespace, p.job, p.jobUid, p.attempt, p.encoder) == ("ns", "hello", "uid-1", 1, "libx264")
