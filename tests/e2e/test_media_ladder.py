"""ABR ladders end to end on the local stack (operator, standalone agent, real ffmpeg): an HLS ladder from a
real file with audio whose playlists a player would read are parsed and whose renditions are probed (sizes,
aligned keyframes, the same segment count and durations in every rendition), and a DASH ladder whose manifest
is validated by parsing it as XML."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from ffrtmp_agent.runner import playlists

from tests.support.jobpods import traversable
from tests.support.runner import make_media
from tests.support.stack import Stack

MPD = "{urn:mpeg:dash:schema:mpd:2011}"


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A hostPath folder the job pods' user (65532) may write to."""
    (tmp_path / "media" / "in").mkdir(parents=True)
    (tmp_path / "media").chmod(0o777)
    return traversable(tmp_path / "media")


def _volumes(media: Path) -> list[dict[str, Any]]:
    return [{"name": "media", "mountPath": "/media", "hostPath": {"path": str(media)}}]


def _probe(path: Path, *entries: str) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", *entries, "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def _starts_with_keyframe(segment: Path) -> bool:
    frames = _probe(segment, "-select_streams", "v", "-read_intervals", "%+#1", "-show_entries", "frame=key_frame")
    return frames["frames"][0]["key_frame"] == 1


def test_given_an_hls_ladder_of_a_real_file_then_master_media_playlists_and_renditions_are_what_a_player_needs(
    stack: Stack, media: Path
) -> None:
    make_media(media / "in" / "talk.mp4", seconds=8, size="640x360")
    stack.agent()
    stack.operator().wait_active()
    stack.wait_agents()
    stack.create(
        "ladder",
        input={"url": "file:///media/in/talk.mp4"},
        output={"url": "file:///media/out/talk/", "container": "hls", "segmentSeconds": 2},
        volumes=_volumes(media),
        video={"codec": "h264", "preset": "veryfast"},
        audio={"codec": "aac", "bitrate": "64k"},
        renditions=[
            {"name": "240p", "width": 426, "height": 240, "bitrate": "300k"},
            {"name": "360p", "width": 640, "height": 360, "crf": 24},
        ],
        quality={"metrics": ["psnr", "ssim"]},
    )
    status = stack.wait_phase("ladder", ("Completed", "Failed"), timeout=240)
    assert status["phase"] == "Completed", (status.get("reason"), status.get("message"))

    out = media / "out" / "talk"
    assert sorted(p.name for p in (media / "out").iterdir()) == ["talk"]  # the temp folder was renamed, nothing left
    master = (out / "master.m3u8").read_text()
    variants = playlists.master_variants(master)
    assert [v.uri for v in variants] == ["240p/index.m3u8", "360p/index.m3u8"]
    for variant, size in zip(variants, ("426x240", "640x360"), strict=True):
        attrs = variant.attributes
        assert attrs["RESOLUTION"] == size
        assert attrs["CODECS"].startswith("avc1.") and attrs["CODECS"].endswith(",mp4a.40.2"), attrs
        assert int(attrs["BANDWIDTH"]) >= int(attrs["AVERAGE-BANDWIDTH"]) > 64_000, attrs  # video + the audio
        assert attrs["AUDIO"] == "audio"
    assert [m["URI"] for m in playlists.master_media(master)] == ["audio/index.m3u8"]

    segments = {v.uri: playlists.media_segments((out / v.uri).read_text()) for v in variants}
    counts = {uri: len(s) for uri, s in segments.items()}
    assert len(set(counts.values())) == 1 and counts["240p/index.m3u8"] == 4, counts  # 8 s in 2 s segments
    durations = [[round(s.seconds, 3) for s in segs] for segs in segments.values()]
    assert durations[0] == durations[1], durations  # the same boundaries in every rendition
    assert abs(sum(durations[0]) - 8) < 0.1
    for uri, segs in segments.items():
        folder = out / uri.split("/")[0]
        stream = next(
            s
            for s in _probe(folder / segs[0].uri, "-show_entries", "stream=codec_type,width,height")["streams"]
            if s["codec_type"] == "video"
        )
        assert f"{stream['width']}x{stream['height']}" == ("426x240" if uri.startswith("240p") else "640x360")
        assert all(_starts_with_keyframe(folder / s.uri) for s in segs), uri  # every segment opens on a keyframe
    audio = playlists.media_segments((out / "audio" / "index.m3u8").read_text())
    assert abs(sum(s.seconds for s in audio) - 8) < 0.1

    result = stack.status("ladder")["result"]
    renditions = {r["name"]: r for r in result["renditions"]}
    assert set(renditions) == {"240p", "360p"}
    for name, (width, height) in (("240p", (426, 240)), ("360p", (640, 360))):
        entry = renditions[name]
        assert (entry["width"], entry["height"], entry["codec"], entry["segments"]) == (width, height, "h264", 4)
        assert entry["bitrateKbps"] > 0 and entry["peakBitrateKbps"] >= entry["bitrateKbps"]
        assert 25 < entry["psnr"] < 100 and 0.7 < entry["ssim"] <= 1, entry
    assert 200 < renditions["240p"]["bitrateKbps"] < 450, renditions["240p"]  # held near its 300k target
    assert result["psnr"] == renditions["360p"]["psnr"]  # the top level is the highest rendition's
    assert result["outputBytes"] == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def test_given_a_dash_ladder_then_the_manifest_parses_and_names_every_representation_and_segment(
    stack: Stack, media: Path
) -> None:
    stack.agent()
    stack.operator().wait_active()
    stack.wait_agents()
    stack.create(
        "dash",
        input={"testSource": {"width": 640, "height": 360, "fps": 25, "durationSeconds": 6, "audio": True}},
        output={"url": "file:///media/out/show/", "container": "dash", "segmentSeconds": 2},
        volumes=_volumes(media),
        video={"codec": "h264", "preset": "ultrafast", "crf": 26},
        audio={"codec": "aac", "bitrate": "64k"},
        renditions=[{"name": "low", "width": 320, "height": 180}, {"name": "high", "width": 640, "height": 360}],
    )
    status = stack.wait_phase("dash", ("Completed", "Failed"), timeout=240)
    assert status["phase"] == "Completed", (status.get("reason"), status.get("message"))

    out = media / "out" / "show"
    root = ET.fromstring((out / "manifest.mpd").read_text())
    assert root.tag == f"{MPD}MPD" and root.get("type") == "static"
    sets = {a.get("contentType"): a for a in root.iter(f"{MPD}AdaptationSet")}
    assert set(sets) == {"video", "audio"}
    video = sets["video"].findall(f"{MPD}Representation")
    assert [(r.get("width"), r.get("height")) for r in video] == [("320", "180"), ("640", "360")]
    timelines = []
    for rep in [*video, *sets["audio"].findall(f"{MPD}Representation")]:
        assert rep.get("codecs") and int(rep.get("bandwidth", "0")) > 0
        template = rep.find(f"{MPD}SegmentTemplate")
        assert template is not None
        durations = [(int(s.get("d")), int(s.get("r", "0"))) for s in template.iter(f"{MPD}S")]
        count = sum(r + 1 for _, r in durations)
        media_name = template.get("media").replace("$RepresentationID$", rep.get("id"))
        for number in range(int(template.get("startNumber", "1")), count + 1):
            assert (out / media_name.replace("$Number%05d$", f"{number:05d}")).is_file()
        assert (out / template.get("initialization").replace("$RepresentationID$", rep.get("id"))).is_file()
        if rep in video:
            timelines.append((template.get("timescale"), durations))
    assert timelines[0] == timelines[1]  # aligned: the same segment timeline in every video representation
    result = stack.status("dash")["result"]
    assert [(r["name"], r["segments"]) for r in result["renditions"]] == [("low", 3), ("high", 3)]
    assert not list((media / "out").glob(".show.ffrtmp-*"))


def test_given_an_input_without_audio_then_the_hls_ladder_has_no_audio_rendition(stack: Stack, media: Path) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=4",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(media / "in" / "silent.mp4"),
        ],
        check=True,
        timeout=120,
    )
    stack.agent()
    stack.operator().wait_active()
    stack.wait_agents()
    stack.create(
        "silent",
        input={"url": "file:///media/in/silent.mp4"},
        output={"url": "file:///media/out/silent/", "container": "hls", "segmentSeconds": 2},
        volumes=_volumes(media),
        audio={"codec": "aac"},
        renditions=[{"name": "a", "width": 160, "height": 120}, {"name": "b", "width": 320, "height": 240}],
    )
    status = stack.wait_phase("silent", ("Completed", "Failed"), timeout=240)
    assert status["phase"] == "Completed", (status.get("reason"), status.get("message"))
    master = (media / "out" / "silent" / "master.m3u8").read_text()
    assert playlists.master_media(master) == []
    assert all(
        "mp4a" not in v.attributes["CODECS"] and "AUDIO" not in v.attributes for v in playlists.master_variants(master)
    )


def _decode_errors(playlist: Path) -> tuple[str, int]:
    """ffmpeg's errors decoding a whole HLS playlist, and the frames it decoded."""
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(playlist), "-map", "0:v:0", "-f", "null", "-", "-progress", "pipe:1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    frames = [int(line.split("=", 1)[1]) for line in done.stdout.splitlines() if line.startswith("frame=")]
    return (done.stderr.strip() if done.returncode == 0 else f"exit {done.returncode}: {done.stderr}"), max(
        frames, default=0
    )


def test_given_an_hls_ladder_split_into_segments_then_its_joined_playlists_play_as_one_encode(
    stack: Stack, media: Path
) -> None:
    """Each slice encodes its time range into every rendition; the stitch only joins playlists."""
    fps, seconds = 25, 24
    make_media(media / "in" / "film.mp4", seconds=seconds, size="640x360", extra=["-g", str(2 * fps)])
    stack.agent(slots=2)
    stack.operator().wait_active()
    stack.wait_agents()
    stack.create(
        "film",
        input={"url": "file:///media/in/film.mp4"},
        output={"url": "file:///media/out/film/", "container": "hls", "segmentSeconds": 4},
        volumes=_volumes(media),
        video={"codec": "h264", "preset": "veryfast"},
        audio={"codec": "aac", "bitrate": "64k"},
        split={"segmentSeconds": 8},
        renditions=[
            {"name": "180p", "width": 320, "height": 180, "crf": 28},
            {"name": "360p", "width": 640, "height": 360, "crf": 24},
        ],
        quality={"metrics": ["psnr"]},
    )
    status = stack.wait_phase("film", ("Completed", "Failed", "Canceled"), timeout=300)
    assert status["phase"] == "Completed", (status.get("reason"), status.get("message"))
    assert status["segments"]["total"] == 3 and status["segments"]["completed"] == 3, status["segments"]

    out = media / "out" / "film"
    assert sorted(p.name for p in (media / "out").iterdir()) == ["film"]  # no work or temp folder left
    master = (out / "master.m3u8").read_text()
    variants = playlists.master_variants(master)
    assert [v.uri for v in variants] == ["180p/index.m3u8", "360p/index.m3u8"]
    assert [m["URI"] for m in playlists.master_media(master)] == ["audio/index.m3u8"]
    segments = {v.uri: playlists.media_segments((out / v.uri).read_text()) for v in variants}
    durations = [[round(s.seconds, 3) for s in segs] for segs in segments.values()]
    assert durations[0] == durations[1], durations  # the same count and boundaries in every rendition
    assert len(durations[0]) == 6, durations  # 3 slices of 8 s in 4 s segments
    assert abs(sum(durations[0]) - seconds) <= 1 / fps, durations
    for variant in variants:
        text = (out / variant.uri).read_text()
        assert text.count("#EXT-X-TARGETDURATION:") == 1 and text.rstrip().endswith("#EXT-X-ENDLIST"), text
        errors, frames = _decode_errors(out / variant.uri)
        assert errors == "", (variant.uri, errors)
        assert frames == seconds * fps, (variant.uri, frames)  # continuous: every frame once
        folder = out / variant.uri.split("/")[0]
        assert all(_starts_with_keyframe(folder / s.uri) for s in segments[variant.uri]), variant.uri
    audio = playlists.media_segments((out / "audio" / "index.m3u8").read_text())
    assert abs(sum(s.seconds for s in audio) - seconds) < 0.1
    # In sync: audio and video start together, as they do in one encode (the AAC priming apart).
    starts = {
        kind: float(_probe(out / folder / first.uri, "-show_entries", "format=start_time")["format"]["start_time"])
        for kind, folder, first in (("video", "360p", segments["360p/index.m3u8"][0]), ("audio", "audio", audio[0]))
    }
    assert abs(starts["audio"] - starts["video"]) < 1 / fps, starts
    result = stack.status("film")["result"]
    assert sorted(r["name"] for r in result["renditions"]) == ["180p", "360p"]
    assert all(r["segments"] == 6 for r in result["renditions"]), result["renditions"]
    assert all(25 < r["psnr"] < 100 for r in result["renditions"]), result["renditions"]  # against the input
