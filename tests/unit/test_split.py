"""Split and stitch, the pure parts: the API's refusals, the child jobs a split job makes (one builder per
child), the split, stitch and cleanup plans, the segment list, and the parent's decisions from its children."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import ffrtmp_api as api
import pytest
from ffrtmp_agent.runner import split as runner_split
from ffrtmp_api import split as splitting
from ffrtmp_operator import plan, split_children, split_control
from ffrtmp_operator.records import job_record
from pydantic import ValidationError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
VOLUMES = [{"name": "media", "mountPath": "/media", "emptyDir": {}}]
PARENT_SPEC: dict[str, Any] = {
    "input": {"url": "file:///media/in/film.mp4"},
    "output": {"url": "file:///media/out/film.mp4"},
    "volumes": VOLUMES,
    "video": {"codec": "h264", "preset": "veryfast", "crf": 22},
    "audio": {"codec": "aac", "bitrate": "128k"},
    "queue": "batch",
    "priority": "high",
    "nodeSelector": {"team": "a"},
    "maxRetries": 2,
    "quality": {"metrics": ["psnr"]},
    "split": {"segmentSeconds": 30},
}
PARENT = split_children.Parent("ns", "film", "uid-1", PARENT_SPEC)
WORK = "/media/out/.film.ffrtmp-split"


def after(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


# --------------------------------------------------------------------------------------- the API


@pytest.mark.parametrize(
    ("case", "change", "message"),
    [
        ("a live queue", {"queue": "live", "live": {"durationSeconds": 60}}, "live"),
        ("an rtmp input", {"input": {"url": "rtmp://example.invalid/live/key"}}, "file:// or http(s)://"),
        ("a test source", {"input": {"testSource": {"durationSeconds": 10}}}, "file:// or http(s)://"),
        ("codec copy", {"video": {"codec": "copy"}}, "copy"),
        (
            "renditions",
            {
                "renditions": [{"name": "a", "width": 320, "height": 180}],
                "output": {"url": "file:///media/out/f/", "container": "dash"},
            },
            "needs spec.output.container hls",
        ),
        (
            "ladder segments not dividing the split's",
            {
                "renditions": [{"name": "a", "width": 320, "height": 180}],
                "output": {"url": "file:///media/out/f/", "container": "hls", "segmentSeconds": 7},
            },
            "multiple of spec.output.segmentSeconds",
        ),
        ("an rtmp output", {"output": {"url": "rtmp://example.invalid/live/out"}}, "file://"),
    ],
)
def test_given_a_split_that_cannot_work_when_validated_then_refused(case: str, change: dict, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        api.TranscodeJobSpec.model_validate({**PARENT_SPEC, **change})
    assert message in str(refused.value), case


# ---------------------------------------------------------------------------------- the children


def test_given_a_parent_then_children_inherit_placement_retries_and_settings_but_not_split_or_quality() -> None:
    child = split_children.slice_child(PARENT, index=3, seconds=30.03)
    meta, spec = child["metadata"], child["spec"]
    assert meta["name"] == "film-s00003" and meta["namespace"] == "ns"
    assert (
        meta["labels"][split_children.LABEL_PARENT_UID] == "uid-1"
        and meta["labels"][split_children.LABEL_ROLE] == "slice"
    )
    assert meta["ownerReferences"][0]["uid"] == "uid-1" and meta["ownerReferences"][0]["controller"] is True
    assert (spec["queue"], spec["priority"], spec["nodeSelector"], spec["maxRetries"]) == (
        "batch",
        "high",
        {"team": "a"},
        2,
    )
    assert spec["input"] == {"url": f"file://{WORK}/src-00003.mkv"}
    assert spec["output"] == {"url": f"file://{WORK}/enc-00003.mkv", "container": "mkv"}
    assert spec["video"] == PARENT_SPEC["video"] and spec["audio"] == {"codec": "none"}
    assert "split" not in spec and "quality" not in spec
    assert spec["part"] == {"parent": "film", "role": "slice", "index": 3, "seconds": 30.03}
    api.TranscodeJobSpec.model_validate(spec)  # an ordinary job the API server accepts


def test_given_the_split_stitch_and_cleanup_children_then_none_needs_a_video_encoder() -> None:
    for child in (
        split_children.split_child(PARENT, segment_seconds=30),
        split_children.stitch_child(PARENT, segments=4, audio=True, seconds=120.0),
        split_children.cleanup_child(PARENT),
    ):
        spec = api.TranscodeJobSpec.model_validate(child["spec"])
        assert spec.video.codec == "copy" and spec.output.url == PARENT_SPEC["output"]["url"]
    stitch = split_children.stitch_child(PARENT, segments=4, audio=True, seconds=120.0)["spec"]
    assert stitch["quality"] == {"metrics": ["psnr"]}  # measured once, on the joined output


def test_given_a_long_parent_name_then_child_names_stay_label_sized_and_distinct() -> None:
    long = "a" * 70
    names = {split_children.child_name(long, f"s{i:05d}") for i in range(3)}
    assert len(names) == 3 and all(len(n) <= 63 for n in names)


# ----------------------------------------------------------------------------------------- plans


def _plan(child: dict[str, Any]) -> api.ExecutionPlan:
    job = api.TranscodeJob(spec=api.TranscodeJobSpec.model_validate(child["spec"]))
    return plan.build_plan(job, namespace="ns", name=child["metadata"]["name"], uid="u", attempt=1, encoder="copy")


def test_given_the_split_child_then_one_read_cuts_the_video_by_stream_copy_and_encodes_the_audio_once() -> None:
    built = _plan(split_children.split_child(PARENT, segment_seconds=30))
    argv = built.ffmpegArgs
    assert argv.count("-i") == 1 and after(argv, "-i") == "file:/media/in/film.mp4"
    assert after(argv, "-c:v") == "copy" and after(argv, "-f") == "segment" and after(argv, "-segment_time") == "30"
    assert after(argv, "-segment_list") == f"file:{WORK}/sources.csv" and f"file:{WORK}/src-%05d.mkv" in argv
    assert after(argv, "-c:a") == "aac" and argv[-1] == f"file:{WORK}/audio.mka"
    assert built.split == splitting.SplitPlan(role="split", workFolder=WORK, audio=True)
    assert built.optionalAudio and built.outputUrl == WORK and built.probeArgs  # probed: progress has a length
    without = splitting.without_audio_output(argv)
    assert "0:a:0" not in without and without[-1] == f"file:{WORK}/src-%05d.mkv"


def test_given_the_stitch_child_then_slices_and_audio_are_joined_by_stream_copy_into_a_temp_file() -> None:
    built = _plan(split_children.stitch_child(PARENT, segments=4, audio=True, seconds=120.0))
    argv = built.ffmpegArgs
    assert argv[argv.index("concat") - 1] == "-f" and after(argv, "-safe") == "0"
    inputs = [argv[i + 1] for i, a in enumerate(argv) if a == "-i"]
    assert inputs == [f"file:{WORK}/.stitch.txt", f"file:{WORK}/audio.mka"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-map"] == ["0:v:0", "1:a:0"]
    assert after(argv, "-c") == "copy" and "+faststart" in argv
    assert (built.outputUrl, built.tempOutputUrl) == ("/media/out/film.mp4", "/media/out/.film.ffrtmp-1.part.mp4")
    assert argv[-1] == f"file:{built.tempOutputUrl}" and built.inputDurationSeconds == 120.0
    assert built.qualityMetrics == ["psnr"] and after(built.inputArgs, "-i") == "file:/media/in/film.mp4"


def test_given_the_cleanup_child_then_the_runner_removes_the_work_folder_and_ffmpeg_has_nothing_to_read() -> None:
    built = _plan(split_children.cleanup_child(PARENT))
    assert built.split == splitting.SplitPlan(role="cleanup", workFolder=WORK)
    assert built.inputUrl is None and "file:/media/in/film.mp4" not in built.ffmpegArgs


def test_given_the_segment_muxer_s_list_then_each_segment_s_length() -> None:
    text = "/proc/self/fd/7/src-00000.mkv,0.000000,30.030000\n/proc/self/fd/7/src-00001.mkv,30.030000,52.5\n"
    assert runner_split.parse_sources(text) == [30.03, 22.47]


# ------------------------------------------------------------------------------ the parent decides


def _job(name: str, spec: dict[str, Any], **status: Any) -> Any:
    return job_record(
        {
            "metadata": {
                "namespace": "ns",
                "name": name,
                "uid": f"uid-{name}",
                "resourceVersion": "1",
                "generation": 1,
            },
            "spec": spec,
            "status": status,
        }
    )


def _parent(**status: Any) -> Any:
    return job_record(
        {
            "metadata": {"namespace": "ns", "name": "film", "uid": "uid-1", "resourceVersion": "1", "generation": 1},
            "spec": PARENT_SPEC,
            "status": status,
        }
    )


def _child(manifest: dict[str, Any], phase: str, **status: Any) -> Any:
    return _job(manifest["metadata"]["name"], manifest["spec"], phase=phase, **status)


def _children(*jobs: Any) -> split_control.Children:
    return split_control.children_of(_parent(), jobs)


def test_given_a_new_split_job_then_it_is_queued_with_its_split_child_made_and_processing_once_that_runs() -> None:
    decision = split_control.decide(_parent(), _children(), now=NOW)
    assert [s.target for s in decision.steps] == [api.Phase.QUEUED]
    assert [c["metadata"]["name"] for c in decision.create] == ["film-split"]
    queued = _parent(phase="Queued")
    waiting = _child(split_children.split_child(PARENT, segment_seconds=30), "Queued")
    assert split_control.decide(queued, _children(waiting), now=NOW).steps == []
    running = _child(split_children.split_child(PARENT, segment_seconds=30), "Processing", node="node-1")
    steps = split_control.decide(queued, _children(running), now=NOW).steps
    assert [s.target for s in steps] == [api.Phase.ASSIGNED, api.Phase.PROCESSING] and "node-1" in steps[0].message


def test_given_a_split_job_queued_then_the_scheduler_never_places_it_itself() -> None:
    from ffrtmp_operator.scheduling import schedulable

    assert not schedulable(_parent(phase="Queued"), NOW)


def test_given_the_split_child_done_then_one_slice_per_segment_is_made() -> None:
    parent = _parent(phase="Processing")
    children = _children(_child(split_children.split_child(PARENT, segment_seconds=30), "Completed"))
    assert split_control.needs_split_result(parent, children)
    decision = split_control.decide(
        parent, children, now=NOW, split_result={"segments": [30.0, 30.0, 12.5], "audio": True}
    )
    assert [c["metadata"]["name"] for c in decision.create] == ["film-s00000", "film-s00001", "film-s00002"]
    assert decision.status["segments"] == {"total": 3, "completed": 0, "nodes": []}


def _running(done: int, *, total: int = 3, percent: float = 50.0) -> tuple[Any, split_control.Children]:
    parent = _parent(phase="Processing", segments={"total": total, "completed": 0, "nodes": []})
    jobs = [_child(split_children.split_child(PARENT, segment_seconds=30), "Completed")]
    for i in range(total):
        manifest = split_children.slice_child(PARENT, index=i, seconds=30.0)
        if i < done:
            jobs.append(_child(manifest, "Completed", node=f"node-{i % 2}"))
        else:
            jobs.append(_child(manifest, "Processing", node="node-1", progress={"percent": percent}))
    return parent, _children(*jobs)


def test_given_slices_running_then_segments_name_their_nodes_and_progress_is_the_media_time_encoded() -> None:
    parent, children = _running(1)
    decision = split_control.decide(parent, children, now=NOW)
    assert decision.status["segments"] == {"total": 3, "completed": 1, "nodes": ["node-0", "node-1"]}
    assert decision.status["progress"] == {"percent": round(100 * (30 + 15 + 15) / 90, 1)}
    assert not decision.create and not decision.steps


def test_given_every_slice_done_then_the_stitch_is_made_and_its_completion_completes_the_parent() -> None:
    parent, children = _running(3)
    decision = split_control.decide(parent, children, now=NOW, split_result={"segments": [30] * 3, "audio": True})
    (stitch,) = decision.create
    assert stitch["spec"]["part"] == {"parent": "film", "role": "stitch", "segments": 3, "audio": True, "seconds": 90.0}
    done = split_control.children_of(parent, [*children.all, _child(stitch, "Completed")])
    result = {"outputBytes": 1000, "psnr": 41.5}
    final = split_control.decide(parent, done, now=NOW, stitch_result=result)
    assert [s.target for s in final.steps] == [api.Phase.COMPLETED]
    assert final.status["result"] == result and final.status["segments"]["completed"] == 3


def test_given_a_paused_parent_then_its_running_children_are_paused_and_resumed_with_it() -> None:
    _, children = _running(1)
    paused_parent = _job("film", {**PARENT_SPEC, "paused": True}, phase="Processing")
    decision = split_control.decide(paused_parent, children, now=NOW)
    assert [s.target for s in decision.steps] == [api.Phase.PAUSED]
    assert sorted(decision.patch) == [("film-s00001", {"paused": True}), ("film-s00002", {"paused": True})]


def test_given_a_canceled_parent_then_children_are_canceled_and_a_cleanup_child_made() -> None:
    _, children = _running(1)
    canceled = _job("film", {**PARENT_SPEC, "canceled": True}, phase="Processing")
    decision = split_control.decide(canceled, children, now=NOW)
    assert [s.target for s in decision.steps] == [api.Phase.CANCELED]
    assert sorted(decision.patch) == [("film-s00001", {"canceled": True}), ("film-s00002", {"canceled": True})]
    assert [c["metadata"]["name"] for c in decision.create] == ["film-cleanup"]


def test_given_a_slice_that_failed_for_good_then_the_parent_fails_with_its_reason() -> None:
    parent, children = _running(1)
    failed = _child(
        split_children.slice_child(PARENT, index=2, seconds=30.0),
        "Failed",
        reason="RetriesExhausted",
        message="3 failed run(s), last: EncoderError",
    )
    decision = split_control.decide(parent, split_control.children_of(parent, [*children.all[:-1], failed]), now=NOW)
    (step,) = decision.steps
    assert (step.target, step.reason) == (api.Phase.FAILED, "RetriesExhausted") and "film-s00002" in step.message
    assert ("film-s00001", {"canceled": True}) in decision.patch


def test_given_a_split_job_running_past_its_timeout_then_it_fails_with_timeout_and_its_children_are_stopped() -> None:
    _, children = _running(1)
    spec = {**PARENT_SPEC, "timeoutSeconds": 60}
    within = _job("film", spec, phase="Processing", activeSince="2025-12-31T23:59:30Z", activeSeconds=20)
    assert split_control.decide(within, children, now=NOW).steps == []
    # Each child is within its own timeout; together (50 s earlier + 30 s since activeSince) they are not.
    over = _job("film", spec, phase="Processing", activeSince="2025-12-31T23:59:30Z", activeSeconds=50)
    decision = split_control.decide(over, children, now=NOW)
    (step,) = decision.steps
    assert (step.target, step.reason) == (api.Phase.FAILED, api.Reason.TIMEOUT.value)
    assert "timeoutSeconds=60" in step.message
    assert sorted(decision.patch) == [("film-s00001", {"canceled": True}), ("film-s00002", {"canceled": True})]
    assert [c["metadata"]["name"] for c in decision.create] == ["film-cleanup"]


def test_given_a_paused_split_job_past_its_timeout_then_time_paused_is_not_counted() -> None:
    _, children = _running(1)
    spec = {**PARENT_SPEC, "timeoutSeconds": 60, "paused": True}
    paused = _job("film", spec, phase="Paused", pausedFrom="Processing", activeSeconds=50)
    assert all(s.target != api.Phase.FAILED for s in split_control.decide(paused, children, now=NOW).steps)
