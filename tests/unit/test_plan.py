"""Plan builder: the ffmpeg/ffprobe argv a job pod runs, built from the spec (pure, no ffmpeg needed)."""

from __future__ import annotations

from typing import Any

import ffrtmp_api as api
import pytest
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
        (
            "given auto when node has nvenc and qsv then nvidia first",
            "hevc",
            "auto",
            {"hevc_qsv", "hevc_nvenc", "libx265"},
            "hevc_nvenc",
        ),
        ("given auto when node has only software then software", "av1", "auto", {"libsvtav1"}, "libsvtav1"),
        ("given auto when node has nothing then none fits", "av1", "auto", set(), None),
        ("given nvidia when node has only software then none fits", "h264", "nvidia", {"libx264"}, None),
        ("given intel when node has qsv then qsv", "h264", "intel", {"h264_qsv"}, "h264_qsv"),
        ("given vp9 nvidia when no vp9 nvenc exists then none fits", "vp9", "nvidia", {"libvpx-vp9"}, None),
        ("given vp9 auto when vaapi proven then vaapi", "vp9", "auto", {"vp9_vaapi", "libvpx-vp9"}, "vp9_vaapi"),
        ("given codec copy when node has nothing then copy", "copy", "nvidia", set(), "copy"),
    ],
)
def test_required_encoder(name: str, video: str, accelerator: str, node: set[str], expected: str | None) -> None:
    spec = job(video={"codec": video}, hardware={"accelerator": accelerator}).spec
    assert plan.required_encoder(spec, node) == expected, name


# ------------------------------------------------------------------------------------------ the argv


def test_given_test_source_when_built_then_lavfi_inputs_bounded_and_progress_on_pipe() -> None:
    p = build(
        input={"testSource": {"pattern": "smptebars", "width": 640, "height": 360, "fps": 25, "durationSeconds": 4}}
    )
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
        (
            "given explicit container when built then it wins",
            {"url": "file:///media/o.bin", "container": "mkv"},
            "matroska",
        ),
        ("given rtmp when built then flv", {"url": "rtmp://live.example/app/key"}, "flv"),
    ],
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
    assert not {"hls", "concat", "dash", "image2", "sdp", "imf", "tty", "bin", "data", "lavfi"} & set(demuxers)
    assert value_after(p.probeArgs, "-format_whitelist") == ",".join(demuxers)


def test_given_playlists_allowed_on_a_network_input_when_built_then_hls_dash_concat_over_network_only() -> None:
    p = build(input={"url": "https://h.example/a.m3u8", "allowPlaylists": True})
    demuxers = value_after(p.ffmpegArgs, "-format_whitelist").split(",")
    assert {"hls", "dash", "concat"} <= set(demuxers)
    protocols = value_after(p.ffmpegArgs, "-protocol_whitelist").split(",")
    assert "crypto" in protocols and "file" not in protocols


def test_given_playlists_allowed_on_a_file_input_when_built_then_only_concat_in_safe_mode() -> None:
    # hls and dash playlists on a volume can name any absolute path; concat's default safe mode cannot.
    p = build(input={"url": "file:///media/in/list.txt", "allowPlaylists": True})
    demuxers = value_after(p.ffmpegArgs, "-format_whitelist").split(",")
    assert "concat" in demuxers and not {"hls", "dash", "imf"} & set(demuxers)
    assert value_after(p.ffmpegArgs, "-protocol_whitelist") == "file"
    assert "-safe" not in p.ffmpegArgs  # safe mode is concat's default; "-safe 0" would switch it off


@pytest.mark.parametrize(
    ("name", "input_", "extra"),
    [
        (
            "given forced concat without allowPlaylists then refused",
            {"url": "file:///media/in/a.txt", "format": "concat"},
            (),
        ),
        (
            "given forced hls on a file even with allowPlaylists then refused",
            {"url": "file:///media/in/a.m3u8", "format": "hls", "allowPlaylists": True},
            (),
        ),
        ("given forced tty (raw bytes) then refused", {"url": "file:///media/in/a.mp4", "format": "tty"}, ()),
        ("given forced bin then refused", {"url": "file:///media/in/a.mp4", "format": "bin"}, ()),
        ("given forced data then refused", {"url": "file:///media/in/a.mp4", "format": "data"}, ()),
        ("given forced lavfi then refused", {"url": "file:///media/in/a.mp4", "format": "lavfi"}, ()),
        ("given forced imf then refused", {"url": "file:///media/in/a.xml", "format": "imf"}, ()),
        ("given forced tracker then refused", {"url": "file:///media/in/a.mod", "format": "libopenmpt"}, ()),
        (
            "given a safe format listed before a raw one then refused",
            {"url": "file:///media/in/a", "format": "mov,tty"},
            (),
        ),
        (
            "given forced dash on http without allowPlaylists then refused",
            {"url": "http://h.example/a.mpd", "format": "dash"},
            (),
        ),
        (
            "given an admin list without the forced one then refused",
            {"url": "file:///media/in/a", "format": "tty"},
            ("hls",),
        ),
    ],
)
def test_forced_formats_off_the_whitelist_are_refused(name: str, input_: dict[str, Any], extra: tuple) -> None:
    with pytest.raises(plan.PlanError, match="spec.input.format"):
        plan.build_plan(
            job(input=input_), namespace="ns", name="n", uid="u", attempt=1, encoder="libx264", extra_formats=extra
        )


def test_given_a_forced_safe_format_when_built_then_it_narrows_and_ffprobe_gets_it_too() -> None:
    p = build(input={"url": "file:///media/in/a.bin", "format": "mpegts"})
    assert value_after(p.ffmpegArgs, "-f") == "mpegts"
    assert value_after(p.probeArgs, "-f") == "mpegts"
    assert value_after(p.ffmpegArgs, "-format_whitelist") == ",".join(plan.SAFE_DEMUXERS)


def test_given_a_forced_format_in_mixed_case_when_the_crd_was_bypassed_then_compared_lowercase() -> None:
    spec = job(input={"url": "file:///media/in/a.mp4"}).spec
    spec.input.format = "TTY"  # the CRD pattern refuses upper case; ffmpeg matches demuxer names either way
    with pytest.raises(plan.PlanError, match="'tty'"):
        plan.build_plan(
            api.TranscodeJob.model_construct(spec=spec), namespace="ns", name="n", uid="u", attempt=1, encoder="libx264"
        )


def test_given_an_admin_allowed_format_when_built_then_whitelisted_and_may_be_forced() -> None:
    p = plan.build_plan(
        job(input={"url": "file:///media/in/a.m3u8", "format": "hls"}),
        namespace="ns",
        name="n",
        uid="u",
        attempt=1,
        encoder="libx264",
        extra_formats=("hls",),
    )
    assert "hls" in value_after(p.ffmpegArgs, "-format_whitelist").split(",")
    assert value_after(p.ffmpegArgs, "-f") == "hls"


@pytest.mark.parametrize(
    "input_",
    [
        {"url": "file:///media/in/a.mov"},
        {"url": "http://h.example/a.mp4"},
        {"url": "https://h.example/a.m3u8", "allowPlaylists": True, "format": "hls"},
        {"url": "file:///media/in/a.ts", "format": "mpegts"},
    ],
)
def test_given_any_input_when_built_then_ffprobe_opens_it_with_exactly_ffmpegs_input_options(input_) -> None:
    p = build(input=input_)
    options = p.inputArgs[: p.inputArgs.index("-i")]
    probe = p.probeArgs
    assert probe[:3] == ["ffprobe", "-v", "error"]
    assert probe[3 : 3 + len(options)] == options
    assert probe[-2:] == p.inputArgs[-2:]


def test_given_file_input_when_built_then_path_decoded_and_probe_reads_it() -> None:
    p = build(input={"url": "file:///media/in/caf%C3%A9%25.mov"})
    assert p.inputUrl == "/media/in/caf\u00e9%.mov"
    assert p.inputArgs[-2:] == ["-i", "file:/media/in/caf\u00e9%.mov"]
    assert p.probeArgs[0] == "ffprobe" and p.probeArgs[-1] == "file:/media/in/caf\u00e9%.mov"


# Every spelling a tenant might use to leave the volume, or to make a path that is not what it looks like.
# The CRD's CEL rules and the models refuse them at the API; the builder refuses them again, for specs that
# were stored before those rules (or written around them), without relying on either.
ESCAPES = [
    ("dot-dot", "file:///media/../etc/passwd"),
    ("encoded dot-dot", "file:///media/%2e%2e/etc/shadow"),
    ("upper-case encoded dot-dot", "file:///media/%2E%2E/etc/shadow"),
    ("half-encoded dot-dot", "file:///media/.%2e/etc/shadow"),
    ("encoded slash", "file:///media%2f..%2fetc/passwd"),
    ("encoded backslash", "file:///media/..%5c..%5cetc/passwd"),
    ("single dot segment", "file:///media/./in/a.mp4"),
    ("trailing dot segment", "file:///media/in/."),
    ("double slash", "file:///media//in/a.mp4"),
    ("leading double slash", "file:////etc/passwd"),
    ("trailing slash", "file:///media/in/"),
    ("a sibling sharing the prefix", "file:///media2/a.mp4"),
    ("the mount point itself", "file:///media"),
    ("a host", "file://evil.example/media/a.mp4"),
    ("localhost", "file://localhost/etc/passwd"),
    ("a query", "file:///media/a.mp4?/../../etc/passwd"),
    ("a fragment", "file:///media/x#/../../etc/passwd"),
    ("encoded NUL", "file:///media/a%00.mp4"),
    ("encoded newline", "file:///media/a%0a.mp4"),
    ("encoded space", "file:///media/my%20talk.mov"),
    ("encoded tab", "file:///media/a%09b.mp4"),
    ("encoded no-break space", "file:///media/a%C2%A0b.mp4"),
    ("encoded zero-width space", "file:///media%E2%80%8B/a.mp4"),
    ("encoded bidi override", "file:///media/a%E2%80%AEvom.mp4"),
    ("overlong UTF-8 dot", "file:///media/%c0%ae%c0%ae/etc/passwd"),
    ("invalid UTF-8", "file:///media/a%ff.mp4"),
]


def _bypassing_the_api(**spec: Any) -> api.TranscodeJobSpec:
    """A spec holding values the models would refuse (as an object stored before the rules would)."""
    checked = job(input={"url": "file:///media/in/ok.mp4"}).spec
    for key, value in spec.items():
        setattr(checked, key, value)
    return checked


@pytest.mark.parametrize(("name", "url"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_given_an_escaping_or_ambiguous_file_url_then_the_models_and_the_builder_refuse_it(name: str, url: str) -> None:
    with pytest.raises(ValueError):
        job(input={"url": url})
    with pytest.raises(ValueError):
        job(output={"url": url})
    for field in ("input", "output"):
        spec = _bypassing_the_api()
        getattr(spec, field).url = url
        with pytest.raises(plan.PlanError, match=f"spec.{field}.url"):
            plan.build_plan(
                api.TranscodeJob.model_construct(spec=spec),
                namespace="ns",
                name="n",
                uid="u",
                attempt=1,
                encoder="libx264",
            )


@pytest.mark.parametrize(
    "mount",
    [
        "/",
        "//",
        "/.",
        "/./",
        "/media/",
        "/media/.",
        "/media/..",
        "//media",
        "/media//in",
        "/../media",
        "/etc",
        "/usr/lib",
        "/var/run/secrets",
        "/proc/self",
        "/me dia",
        "/media\u200b",
        "/media\n",
    ],
)
def test_given_a_mount_path_not_in_normal_form_then_the_models_and_the_builder_refuse_it(mount: str) -> None:
    with pytest.raises(ValueError):
        job(volumes=[{"name": "media", "mountPath": mount, "emptyDir": {}}])
    spec = _bypassing_the_api()
    spec.volumes[0].mountPath = mount
    with pytest.raises(plan.PlanError, match="mountPath"):
        plan.build_plan(
            api.TranscodeJob.model_construct(spec=spec), namespace="ns", name="n", uid="u", attempt=1, encoder="libx264"
        )


def test_given_unicode_dot_lookalikes_then_they_are_names_inside_the_volume() -> None:
    # U+2024 and U+FF0E are not "." to the kernel: the path stays under /media (and simply does not exist).
    p = build(input={"url": "file:///media/%E2%80%A4%E2%80%A4/%EF%BC%8E%EF%BC%8E/etc/passwd"})
    assert p.inputUrl == "/media/\u2024\u2024/\uff0e\uff0e/etc/passwd"


HOSTILE = [
    "file:///media/in/-vf=drawtext=text=pwned.mp4",
    "file:///media/in/a;rm${IFS}-rf${IFS}$HOME.mp4",
    "file:///media/in/$(touch${IFS}x)`id`.mp4",
    "file:///media/in/a'b\"c.mp4",
    "file:///media/in/concat:a|b.mp4",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_given_hostile_input_path_when_built_then_one_argv_element_pinned_to_file(url: str) -> None:
    p = build(input={"url": url})
    path = p.inputUrl
    assert path is not None and path.startswith("/media/in/")
    assert p.ffmpegArgs.count("file:" + path) == 1  # exactly one element, never split or reparsed
    assert value_after(p.ffmpegArgs, "-i") == "file:" + path
    assert not any(a.startswith("file:") and a != "file:" + path for a in p.ffmpegArgs[:-1])


def test_given_hostile_output_name_when_built_then_last_element_is_the_temp_path() -> None:
    p = build(output={"url": "file:///media/out/-y-i=x.mp4"})
    assert p.tempOutputUrl == "/media/out/.-y-i=x.ffrtmp-1.part.mp4"
    assert p.ffmpegArgs[-1] == "file:/media/out/.-y-i=x.ffrtmp-1.part.mp4"


def test_given_network_url_starting_with_dash_when_built_then_refused() -> None:
    spec = job(input={"url": "http://h.example/a.mp4"}).spec.model_copy(deep=True)
    spec.input.url = "-i/etc/passwd"  # impossible through the CRD pattern; refused anyway
    with pytest.raises(plan.PlanError):
        plan.build_plan(api.TranscodeJob(spec=spec), namespace="ns", name="n", uid="u", attempt=1, encoder="libx264")


# ---------------------------------------------------------------------------------- codecs, presets


@pytest.mark.parametrize(
    ("name", "video", "encoder", "expected"),
    [
        (
            "given x264 preset and crf then passed through",
            {"preset": "veryfast", "crf": 23},
            "libx264",
            ["-c:v", "libx264", "-crf", "23", "-preset", "veryfast"],
        ),
        (
            "given nvenc then p-preset and cq",
            {"preset": "slow", "crf": 28},
            "h264_nvenc",
            ["-c:v", "h264_nvenc", "-rc", "vbr", "-cq", "28", "-b:v", "0", "-preset", "p5"],
        ),
        (
            "given nvenc ultrafast then p1",
            {"preset": "ultrafast"},
            "hevc_nvenc",
            ["-c:v", "hevc_nvenc", "-preset", "p1"],
        ),
        ("given nvenc veryslow then p7", {"preset": "veryslow"}, "h264_nvenc", ["-c:v", "h264_nvenc", "-preset", "p7"]),
        (
            "given qsv then global_quality",
            {"crf": 25, "preset": "ultrafast"},
            "h264_qsv",
            ["-c:v", "h264_qsv", "-global_quality", "25", "-preset", "veryfast"],
        ),
        (
            "given svt-av1 then numeric preset",
            {"codec": "av1", "preset": "medium", "crf": 35},
            "libsvtav1",
            ["-c:v", "libsvtav1", "-crf", "35", "-preset", "7"],
        ),
        (
            "given vp9 crf then b:v 0",
            {"codec": "vp9", "crf": 31, "preset": "fast"},
            "libvpx-vp9",
            ["-c:v", "libvpx-vp9", "-crf", "31", "-b:v", "0", "-deadline", "good", "-cpu-used", "3", "-row-mt", "1"],
        ),
        (
            "given bitrate then capped vbv",
            {"bitrate": "2500k"},
            "libx264",
            ["-c:v", "libx264", "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k"],
        ),
        ("given gop then -g", {"gop": 60}, "libx264", ["-c:v", "libx264", "-g", "60"]),
    ],
)
def test_video_encoder_options(name: str, video: dict[str, Any], encoder: str, expected: list[str]) -> None:
    argv = build(video=video, encoder=encoder).ffmpegArgs
    start = argv.index("-c:v")
    assert argv[start : start + len(expected)] == expected, name


@pytest.mark.parametrize(
    ("name", "video", "encoder", "vf"),
    [
        (
            "given width and height then scale both",
            {"width": 640, "height": 360},
            "libx264",
            "scale=640:360,format=yuv420p",
        ),
        ("given width only then keep aspect", {"width": 640}, "libx264", "scale=640:-2,format=yuv420p"),
        ("given fps then fps filter", {"fps": 25}, "libx264", "fps=25,format=yuv420p"),
        ("given vaapi then upload", {"height": 720}, "h264_vaapi", "scale=-2:720,format=nv12,hwupload"),
    ],
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
        (
            "given opus with rate and channels",
            {"codec": "opus", "bitrate": "96k", "sampleRate": 48000, "channels": 2},
            ["-c:a", "libopus", "-b:a", "96k", "-ar", "48000", "-ac", "2"],
        ),
        ("given mp3 then lame", {"codec": "mp3"}, ["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("given copy then copy", {"codec": "copy"}, ["-c:a", "copy"]),
    ],
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
    p = build(
        queue="live",
        input={"url": "rtmp://in.example/live/cam"},
        output={"url": "file:///media/out/rec.flv"},
        live={"durationSeconds": 60, "reconnect": True},
    )
    assert value_after(p.ffmpegArgs, "-rw_timeout") == plan.NETWORK_TIMEOUT_US
    assert p.liveDurationSeconds == 60 and p.reconnect
    assert p.tempOutputUrl == "/media/out/.rec.ffrtmp-1.part.flv"


def test_given_quality_and_timeout_when_built_then_carried_in_plan() -> None:
    p = build(quality={"metrics": ["psnr", "ssim"]}, timeoutSeconds=600, video={"width": 320, "height": 240})
    assert p.qualityMetrics == ["psnr", "ssim"] and p.timeoutSeconds == 600
    assert (p.targetWidth, p.targetHeight) == (320, 240)
    assert (p.namespace, p.job, p.jobUid, p.attempt, p.encoder) == ("ns", "hello", "uid-1", 1, "libx264")


def test_given_volumes_when_built_then_the_plan_names_them_for_the_runners_real_path_checks() -> None:
    p = build(
        volumes=[
            {"name": "media", "mountPath": "/media", "readOnly": True, "emptyDir": {}},
            {"name": "scratch", "mountPath": "/scratch", "emptyDir": {}},
        ]
    )
    assert [(v.name, v.mountPath, v.readOnly) for v in p.volumes] == [
        ("media", "/media", True),
        ("scratch", "/scratch", False),
    ]
