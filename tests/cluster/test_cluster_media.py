"""The media features on a real cluster, as job pods in namespaces that enforce Pod Security "restricted",
with the output on a PersistentVolume checked from a pod: split and stitch (segments on the nodes, the output
the input's length to the frame), an HLS ladder (master and media playlists a player would read) and a
TranscodePreset in the job's namespace (its settings resolved into the job's status and output)."""

from __future__ import annotations

import re
from typing import Any

import ffrtmp_api as api
from ffrtmp_agent.runner import playlists

from tests.support.media import facts, media_argv

from .kit import MEDIA_VOLUME, Kube, ffprobe, run_pod, wait_until

TERMINAL = ("Completed", "Failed", "Canceled")
FPS = 25


def _finished(kube: Kube, ns: str, name: str, *, timeout: float) -> dict[str, Any]:
    wait_until(
        lambda: kube.status(ns, name).get("phase") in TERMINAL, timeout=timeout, what=f"{name} to finish", interval=1
    )
    status = kube.status(ns, name)
    assert status["phase"] == "Completed", (status.get("reason"), status.get("message"))
    return status


def _files(kube: Kube, ns: str, folder: str, *names: str) -> dict[str, str]:
    """The text of files under folder on the media claim, read by one pod (head's "==> name <==" headers)."""
    log = run_pod(kube, ns, ["sh", "-c", f'cd {folder} && head -n 100000 "$@"', "sh", *names])
    parts = re.split(r"^==> (.+) <==$", log, flags=re.MULTILINE)
    return {name: text.strip("\n") + "\n" for name, text in zip(parts[1::2], parts[2::2], strict=True)}


def test_given_a_split_job_then_every_segment_completes_and_the_output_has_the_input_s_frames(
    kube: Kube, media_ns: str
) -> None:
    # A 12 s input with audio and a keyframe every 2 s: cut every 4 s, three segments.
    run_pod(kube, media_ns, media_argv("/media/film.mp4", seconds=12, size="640x360", extra=["-g", str(2 * FPS)]))
    kube.create_job(
        media_ns,
        "film",
        {
            "input": {"url": "file:///media/film.mp4"},
            "output": {"url": "file:///media/out/film.mp4"},
            "split": {"segmentSeconds": 4},
            "video": {"codec": "h264", "preset": "veryfast", "crf": 23},
            "audio": {"codec": "aac", "bitrate": "96k"},
            "volumes": MEDIA_VOLUME,
        },
    )
    status = _finished(kube, media_ns, "film", timeout=420)

    segments = status["segments"]
    assert segments["total"] >= 3 and segments["completed"] == segments["total"], segments
    assert segments["nodes"], segments

    def in_pod(argv: list[str]) -> str:
        return run_pod(kube, media_ns, argv)

    source, joined = facts("/media/film.mp4", run=in_pod), facts("/media/out/film.mp4", run=in_pod)
    assert abs(joined["frames"] - source["frames"]) <= 1, (joined, source)
    assert abs(joined["video"] - source["video"]) <= 1 / FPS, (joined, source)
    assert abs(joined["audio"] - source["audio"]) <= 0.1, (joined, source)
    listing = run_pod(kube, media_ns, ["ls", "-A", "/media/out"]).split()
    assert listing == ["film.mp4"], listing  # the stitch removed the work folder


def test_given_an_hls_ladder_then_the_master_lists_both_renditions_with_aligned_media_playlists(
    kube: Kube, media_ns: str
) -> None:
    kube.create_job(
        media_ns,
        "ladder",
        {
            "input": {"testSource": {"width": 640, "height": 360, "fps": FPS, "durationSeconds": 6, "audio": True}},
            "output": {"url": "file:///media/out/talk/", "container": "hls", "segmentSeconds": 2},
            "video": {"codec": "h264", "preset": "veryfast"},
            "audio": {"codec": "aac", "bitrate": "64k"},
            "renditions": [
                {"name": "240p", "width": 426, "height": 240, "bitrate": "300k"},
                {"name": "360p", "width": 640, "height": 360, "crf": 24},
            ],
            "volumes": MEDIA_VOLUME,
        },
    )
    status = _finished(kube, media_ns, "ladder", timeout=300)

    files = _files(kube, media_ns, "/media/out/talk", "master.m3u8", "240p/index.m3u8", "360p/index.m3u8")
    variants = playlists.master_variants(files["master.m3u8"])
    assert [v.uri for v in variants] == ["240p/index.m3u8", "360p/index.m3u8"]
    for variant, size in zip(variants, ("426x240", "640x360"), strict=True):
        assert variant.attributes["RESOLUTION"] == size
        assert int(variant.attributes["BANDWIDTH"]) > 64_000, variant.attributes  # video plus the audio
    segments = {v.uri: playlists.media_segments(files[v.uri]) for v in variants}
    counts = {uri: len(s) for uri, s in segments.items()}
    assert counts == {"240p/index.m3u8": 3, "360p/index.m3u8": 3}, counts  # 6 s in 2 s segments
    assert [r["segments"] for r in status["result"]["renditions"]] == [3, 3], status["result"]


def test_given_a_preset_in_the_job_s_namespace_then_the_job_resolves_it_and_encodes_with_its_settings(
    kube: Kube, media_ns: str
) -> None:
    preset = {
        "video": {"codec": "h264", "preset": "ultrafast", "crf": 30, "width": 320, "height": 180},
        "audio": {"codec": "aac", "bitrate": "64k"},
        "output": {"container": "mkv"},
    }
    kube.custom.create_namespaced_custom_object(
        api.GROUP,
        api.VERSION,
        media_ns,
        api.PRESET_PLURAL,
        {"apiVersion": api.API_VERSION, "kind": api.PRESET_KIND, "metadata": {"name": "small"}, "spec": preset},
    )
    kube.create_job(
        media_ns,
        "uses",
        {
            "input": {"testSource": {"width": 640, "height": 360, "fps": 10, "durationSeconds": 2, "audio": True}},
            "output": {"url": "file:///media/out/uses.mkv"},
            "preset": "small",
            "volumes": MEDIA_VOLUME,
        },
    )
    status = _finished(kube, media_ns, "uses", timeout=180)

    resolved = status["resolvedPreset"]
    assert (resolved["name"], resolved["namespace"], resolved["generation"]) == ("small", media_ns, 1), resolved
    assert resolved["spec"]["video"]["crf"] == 30 and resolved["spec"]["output"]["container"] == "mkv", resolved
    probe = ffprobe(kube, media_ns, "/media/out/uses.mkv")
    streams = {s["codec_type"]: s for s in probe["streams"]}
    assert (streams["video"]["codec_name"], streams["video"]["width"], streams["video"]["height"]) == (
        "h264",
        320,
        180,
    )
    assert streams["audio"]["codec_name"] == "aac"
