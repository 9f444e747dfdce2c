"""ABR ladder plans (operator ladder_plan): one ffmpeg, one decode, a scaled branch per rendition, aligned
keyframes, HLS or DASH into a hidden temp folder; and the API's refusals of ladders that cannot work."""

from __future__ import annotations

from typing import Any

import ffrtmp_api as api
import pytest
from ffrtmp_api import ladder
from ffrtmp_operator import plan
from pydantic import ValidationError

VOLUMES = [{"name": "media", "mountPath": "/media", "emptyDir": {}}]
RENDITIONS = [
    {"name": "240p", "width": 426, "height": 240, "bitrate": "400k"},
    {"name": "360p", "width": 640, "height": 360, "bitrate": "800k", "maxrate": "1M"},
    {"name": "720p", "width": 1280, "height": 720, "crf": 21},
]


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "input": {"url": "file:///media/in/talk.mp4"},
        "output": {"url": "file:///media/out/talk/", "container": "hls", "segmentSeconds": 2},
        "volumes": VOLUMES,
        "video": {"codec": "h264", "preset": "veryfast", "crf": 23},
        "renditions": RENDITIONS,
    }
    base.update(overrides)
    return base


def build(encoder: str = "libx264", attempt: int = 1, **overrides: Any) -> api.ExecutionPlan:
    job = api.TranscodeJob(spec=api.TranscodeJobSpec.model_validate(spec(**overrides)))
    return plan.build_plan(job, namespace="ns", name="talk", uid="uid-1", attempt=attempt, encoder=encoder)


def after(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def test_given_an_hls_ladder_then_one_ffmpeg_decodes_once_and_scales_one_branch_per_rendition() -> None:
    built = build()
    argv = built.ffmpegArgs
    assert argv.count("-i") == 1  # one input, decoded once
    assert after(argv, "-filter_complex") == (
        "[0:v]split=3[s0][s1][s2];"
        "[s0]scale=426:240,setsar=1,format=yuv420p[v0];"
        "[s1]scale=640:360,setsar=1,format=yuv420p[v1];"
        "[s2]scale=1280:720,setsar=1,format=yuv420p[v2]"
    )
    maps = [argv[i + 1] for i, a in enumerate(argv) if a == "-map"]
    assert maps == ["[v0]", "[v1]", "[v2]", "0:a:0?"]  # the audio once, shared by every variant
    assert argv.count("-c:v") == 1 and after(argv, "-c:v") == "libx264"


def test_given_renditions_then_each_gets_its_own_rate_control_by_stream_specifier() -> None:
    argv = build().ffmpegArgs
    assert (after(argv, "-b:v:0"), after(argv, "-maxrate:v:0"), after(argv, "-bufsize:v:0")) == ("400k", "400k", "800k")
    assert (after(argv, "-b:v:1"), after(argv, "-maxrate:v:1"), after(argv, "-bufsize:v:1")) == ("800k", "1M", "2M")
    assert after(argv, "-crf:v:2") == "21" and "-b:v:2" not in argv


def test_given_a_rendition_without_rate_control_then_it_takes_spec_video_s() -> None:
    argv = build(renditions=[{"name": "low", "width": 320, "height": 180}]).ffmpegArgs
    assert after(argv, "-crf:v:0") == "23"


def test_given_a_known_frame_rate_then_keyframes_are_forced_at_every_segment_boundary_in_every_rendition() -> None:
    argv = build(input={"testSource": {"fps": 25, "durationSeconds": 8}}).ffmpegArgs
    assert after(argv, "-force_key_frames:v") == "expr:gte(t,n_forced*2)"
    assert after(argv, "-g:v") == after(argv, "-keyint_min:v") == "50"  # fps x segment seconds
    assert after(argv, "-sc_threshold:v") == "0"  # no scene-cut keyframes one rendition has and another not


def test_given_an_unknown_frame_rate_then_keyframes_are_still_forced_by_time() -> None:
    argv = build().ffmpegArgs
    assert after(argv, "-force_key_frames:v") == "expr:gte(t,n_forced*2)" and "-g:v" not in argv


def test_given_hls_then_variant_streams_master_playlist_and_segments_go_to_the_hidden_temp_folder() -> None:
    built = build(attempt=3)
    argv = built.ffmpegArgs
    temp = "/media/out/.talk.ffrtmp-3.part"
    assert (built.outputUrl, built.tempOutputUrl, built.outputContainer) == ("/media/out/talk", temp, "hls")
    assert after(argv, "-f") == "hls" and after(argv, "-hls_time") == "2"
    assert after(argv, "-master_pl_name") == "master.m3u8"
    assert after(argv, "-var_stream_map") == (
        "v:0,agroup:audio,name:240p v:1,agroup:audio,name:360p v:2,agroup:audio,name:720p a:0,agroup:audio,name:audio"
    )
    assert after(argv, "-hls_segment_filename") == f"file:{temp}/%v/seg_%05d.ts"
    assert argv[-1] == f"file:{temp}/%v/index.m3u8"
    assert [(r.name, r.stream, r.playlist) for r in built.renditions] == [
        ("240p", 0, "240p/index.m3u8"),
        ("360p", 1, "360p/index.m3u8"),
        ("720p", 2, "720p/index.m3u8"),
    ]
    assert (built.targetWidth, built.targetHeight) == (1280, 720)
    assert built.optionalAudio  # a file may have no audio: the runner probes


def test_given_dash_then_one_manifest_with_a_video_and_an_audio_adaptation_set() -> None:
    built = build(output={"url": "file:///media/out/talk/", "container": "dash"})
    argv = built.ffmpegArgs
    assert after(argv, "-f") == "dash" and after(argv, "-seg_duration") == str(ladder.DEFAULT_SEGMENT_SECONDS)
    assert after(argv, "-adaptation_sets") == "id=0,streams=v id=1,streams=a"
    assert argv[-1] == "file:/media/out/.talk.ffrtmp-1.part/manifest.mpd"
    assert not built.optionalAudio  # the dash muxer copes with an absent optional audio map


def test_given_a_test_source_without_audio_then_no_audio_rendition() -> None:
    built = build(input={"testSource": {"durationSeconds": 4, "audio": False}})
    argv = built.ffmpegArgs
    assert "-an" in argv and "a:0" not in after(argv, "-var_stream_map")
    assert not built.optionalAudio


def test_given_a_synthetic_audio_track_then_it_is_mapped_from_the_second_input() -> None:
    argv = build(input={"testSource": {"durationSeconds": 4}}).ffmpegArgs
    assert argv.count("-i") == 2 and "1:a:0" in argv


def test_given_the_ladder_argv_when_the_audio_is_taken_out_then_it_equals_the_plan_without_audio() -> None:
    with_audio = build(input={"testSource": {"durationSeconds": 4, "audio": True}}).ffmpegArgs
    without = build(input={"testSource": {"durationSeconds": 4, "audio": False}}).ffmpegArgs
    lavfi_audio = with_audio.index("sine=frequency=440:sample_rate=48000")
    stripped = ladder.without_audio(with_audio[: lavfi_audio - 5] + with_audio[lavfi_audio + 1 :])
    assert stripped == without


def test_given_an_nvenc_ladder_then_keyframes_are_idr_and_scene_cuts_off() -> None:
    argv = build(encoder="h264_nvenc").ffmpegArgs
    assert after(argv, "-forced-idr:v") == "1" and after(argv, "-no-scenecut:v") == "1"


# ----------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("case", "overrides", "message"),
    [
        ("renditions into an mp4", {"output": {"url": "file:///media/out/talk/", "container": "mp4"}}, "hls or dash"),
        ("renditions without a container", {"output": {"url": "file:///media/out/talk/"}}, "hls or dash"),
        (
            "renditions into a file URL",
            {"output": {"url": "file:///media/out/talk.m3u8", "container": "hls"}},
            "end the URL with '/'",
        ),
        ("a folder URL without renditions", {"renditions": None}, "is for spec.renditions"),
        ("odd width", {"renditions": [{"name": "odd", "width": 427, "height": 240}]}, "even"),
        ("odd height", {"renditions": [{"name": "odd", "width": 426, "height": 241}]}, "even"),
        ("duplicate names", {"renditions": [RENDITIONS[0], {**RENDITIONS[1], "name": "240p"}]}, "unique"),
        ("bitrate and crf", {"renditions": [{**RENDITIONS[0], "crf": 20}]}, "at most one"),
        ("a rendition named audio", {"renditions": [{**RENDITIONS[0], "name": "audio"}]}, "audio"),
        ("copy", {"video": {"codec": "copy"}}, "copy"),
        (
            "dash without renditions",
            {"output": {"url": "file:///media/out/a.mpd", "container": "dash"}, "renditions": None},
            "dash needs",
        ),
    ],
)
def test_given_a_ladder_that_cannot_work_when_validated_then_refused_naming_the_field(
    case: str, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        api.TranscodeJobSpec.model_validate(spec(**overrides))
    assert message in str(refused.value), case


def test_given_a_folder_url_then_it_must_lie_under_a_volume() -> None:
    with pytest.raises(ValidationError):
        api.TranscodeJobSpec.model_validate(spec(output={"url": "file:///elsewhere/talk/", "container": "hls"}))
