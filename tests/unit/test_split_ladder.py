"""An HLS ladder split into segments: each slice child encodes its time range into every rendition with
timestamps that follow the previous slice's, the split child encodes the audio once as HLS, and the stitch
only hard-links the slices' segments into the ladder's folder and joins their media playlists."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ffrtmp_api as api
from ffrtmp_agent.runner import playlists
from ffrtmp_agent.runner import split as runner_split
from ffrtmp_api import split as splitting
from ffrtmp_operator import plan, split_children, split_control
from ffrtmp_operator.records import job_record

from tests.unit.test_split import NOW, after

LADDER_SPEC: dict[str, Any] = {
    "input": {"url": "file:///media/in/film.mp4"},
    "output": {"url": "file:///media/out/film/", "container": "hls", "segmentSeconds": 4},
    "volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {}}],
    "video": {"codec": "h264", "preset": "veryfast"},
    "audio": {"codec": "aac", "bitrate": "64k"},
    "split": {"segmentSeconds": 8},
    "renditions": [
        {"name": "180p", "width": 320, "height": 180, "crf": 28},
        {"name": "360p", "width": 640, "height": 360, "crf": 24},
    ],
}
LADDER = split_children.Parent("ns", "film", "uid-1", LADDER_SPEC)
WORK = "/media/out/.film.ffrtmp-split"  # beside the ladder's folder, never in it (its rename would take it)


def _plan(child: dict[str, Any], encoder: str = "copy") -> api.ExecutionPlan:
    job = api.TranscodeJob.model_validate({"spec": child["spec"]})
    return plan.build_plan(job, namespace="ns", name=child["metadata"]["name"], uid="u", attempt=1, encoder=encoder)


def test_given_an_hls_ladder_with_split_when_validated_then_accepted() -> None:
    spec = api.TranscodeJobSpec.model_validate(LADDER_SPEC)
    assert spec.split is not None and spec.renditions


def test_given_the_split_child_of_a_ladder_then_the_audio_is_encoded_once_as_hls_in_the_work_folder() -> None:
    built = _plan(split_children.split_child(LADDER, segment_seconds=8))
    argv = built.ffmpegArgs
    assert after(argv, "-segment_time") == "8" and after(argv, "-c:a") == "aac"
    assert (
        argv[-1] == f"file:{WORK}/audio.m3u8" and after(argv, "-hls_segment_filename") == f"file:{WORK}/audio-%05d.ts"
    )
    assert after(argv, "-hls_time") == "4"
    assert after(argv, "-output_ts_offset") == str(splitting.TS_LEAD_SECONDS)  # as every slice's video
    assert not built.renditions and built.split == splitting.SplitPlan(role="split", workFolder=WORK, audio=True)


def test_given_a_ladder_s_slice_then_it_encodes_every_rendition_as_hls_with_timestamps_after_the_last_slice() -> None:
    child = split_children.slice_child(LADDER, index=1, seconds=8.0, start=8.0)
    assert child["spec"]["output"] == {"url": f"file://{WORK}/hls-00001/", "container": "hls", "segmentSeconds": 4}
    assert child["spec"]["part"]["start"] == 8.0 and child["spec"]["audio"] == {"codec": "none"}
    built = _plan(child, encoder="libx264")
    argv = built.ffmpegArgs
    assert after(argv, "-i") == f"file:{WORK}/src-00001.mkv" and "-an" in argv
    assert after(argv, "-output_ts_offset") == str(8 + splitting.TS_LEAD_SECONDS)
    assert after(argv, "-force_key_frames:v") == "expr:gte(t,n_forced*4)" and after(argv, "-hls_time") == "4"
    assert [r.name for r in built.renditions] == ["180p", "360p"]


def test_given_a_ladder_s_stitch_then_ffmpeg_reads_no_media_and_the_runner_lays_out_the_ladder_s_folder() -> None:
    parent = split_children.Parent("ns", "film", "uid-1", {**LADDER_SPEC, "quality": {"metrics": ["psnr"]}})
    built = _plan(split_children.stitch_child(parent, segments=3, audio=True, seconds=24.0))
    assert after(built.ffmpegArgs, "-f") == "lavfi" and built.ffmpegArgs.count("-i") == 1 and built.encoder == "copy"
    assert built.inputUrl == "/media/in/film.mp4" and built.qualityMetrics == ["psnr"]  # measured against it
    assert (built.outputUrl, built.tempOutputUrl, built.outputContainer) == (
        "/media/out/film",
        "/media/out/.film.ffrtmp-1.part",
        "hls",
    )
    assert [r.playlist for r in built.renditions] == ["180p/index.m3u8", "360p/index.m3u8"]
    assert built.split == splitting.SplitPlan(role="stitch", workFolder=WORK, segments=3, audio=True)


def test_given_a_ladder_s_split_done_then_each_slice_starts_where_the_ones_before_it_end() -> None:
    parent = job_record(
        {
            "metadata": {"namespace": "ns", "name": "film", "uid": "uid-1", "resourceVersion": "1", "generation": 1},
            "spec": LADDER_SPEC,
            "status": {"phase": "Processing"},
        }
    )
    split = split_children.split_child(LADDER, segment_seconds=8)
    record = job_record(
        {
            "metadata": {"namespace": "ns", "name": "film-split", "uid": "u2", "resourceVersion": "1", "generation": 1},
            "spec": split["spec"],
            "status": {"phase": "Completed"},
        }
    )
    children = split_control.children_of(parent, [record])
    decision = split_control.decide(parent, children, now=NOW, split_result={"segments": [8.0, 8.04, 7.96]})
    assert [c["spec"]["part"]["start"] for c in decision.create] == [0.0, 8.0, 16.04]


def test_given_segments_of_several_slices_then_one_playlist_lists_them_in_order_with_one_target_duration() -> None:
    text = playlists.joined_media_playlist(
        [playlists.Segment("seg_00000.ts", 4.0), playlists.Segment("seg_00001.ts", 4.04)]
    )
    assert text.count("#EXT-X-TARGETDURATION:5") == 1 and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert [s.uri for s in playlists.media_segments(text)] == ["seg_00000.ts", "seg_00001.ts"]


def _slice_playlist(folder: Path, durations: list[float]) -> None:
    folder.mkdir(parents=True)
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:4"]
    for i, seconds in enumerate(durations):
        (folder / f"seg_{i:05d}.ts").write_bytes(b"ts" * (i + 1))
        lines += [f"#EXTINF:{seconds},", f"seg_{i:05d}.ts"]
    (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n")


def test_given_slices_written_when_the_stitch_joins_them_then_segments_are_linked_in_order_not_copied(
    tmp_path: Path,
) -> None:
    work = tmp_path / "out" / ".film.ffrtmp-split"
    for i in range(2):
        for rendition in ("180p", "360p"):
            _slice_playlist(work / f"hls-{i:05d}" / rendition, [4.0, 4.0])
    (work / "audio-00000.ts").write_bytes(b"aac")
    (work / "audio.m3u8").write_text("#EXTM3U\n#EXTINF:16.0,\naudio-00000.ts\n#EXT-X-ENDLIST\n")
    temp = tmp_path / "out" / ".film.ffrtmp-1.part"
    for name in ("180p", "360p", "audio"):
        (temp / name).mkdir(parents=True)
    built = api.ExecutionPlan.model_validate(
        {
            "job": "film-stitch",
            "namespace": "ns",
            "jobUid": "u",
            "attempt": 1,
            "ffmpegArgs": ["ffmpeg"],
            "encoder": "copy",
            "outputUrl": str(tmp_path / "out" / "film"),
            "volumes": [{"name": "media", "mountPath": str(tmp_path)}],
            "renditions": [
                {"name": n, "width": 2, "height": 2, "stream": i, "playlist": f"{n}/index.m3u8"}
                for i, n in enumerate(("180p", "360p"))
            ],
            "split": {"role": "stitch", "workFolder": str(work), "segments": 2, "audio": True},
        }
    )
    fd = os.open(temp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        runner_split.join_ladder(built, fd)
    finally:
        os.close(fd)
    joined = playlists.media_segments((temp / "360p" / "index.m3u8").read_text())
    assert [s.uri for s in joined] == [f"seg_{i:05d}.ts" for i in range(4)]
    # Slice 1's first segment became the third, the same file (a link), not a copy.
    assert os.path.samefile(temp / "360p" / "seg_00002.ts", work / "hls-00001" / "360p" / "seg_00000.ts")
    assert [s.uri for s in playlists.media_segments((temp / "audio" / "index.m3u8").read_text())] == ["seg_00000.ts"]
    assert (temp / "master.m3u8").exists()


def test_given_a_failed_split_ladder_then_its_cleanup_removes_the_work_folder_beside_the_ladder_s_folder() -> None:
    built = _plan(split_children.cleanup_child(LADDER))
    assert built.split == splitting.SplitPlan(role="cleanup", workFolder=WORK) and not built.renditions
