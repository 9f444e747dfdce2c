"""Split and stitch end to end on the local stack with two agents and real media with audio: the segments
run on both nodes and the output is what the unsplit job makes (exact frame count, duration within a
frame, the audio's duration, monotonic timestamps, a clean decode, PSNR within 0.3 dB); a segment whose
encoder is killed is retried alone; a split job canceled mid-way leaves no output and no work folder."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import psutil
import pytest

from tests.support import wait_until
from tests.support.jobpods import traversable
from tests.support.media import facts, probe
from tests.support.runner import make_media
from tests.support.stack import Stack

FPS = 25


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A hostPath folder the job pods' user (65532) may write to, with a 24 s input (2 s GOP, audio)."""
    (tmp_path / "media" / "in").mkdir(parents=True)
    (tmp_path / "media").chmod(0o777)
    make_media(tmp_path / "media" / "in" / "film.mp4", seconds=24, size="640x360", extra=["-g", str(2 * FPS)])
    return traversable(tmp_path / "media")


def _spec(media: Path, name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "input": {"url": "file:///media/in/film.mp4"},
        "output": {"url": f"file:///media/out/{name}.mp4"},
        "volumes": [{"name": "media", "mountPath": "/media", "hostPath": {"path": str(media)}}],
        "video": {"codec": "h264", "preset": "veryfast", "crf": 23},
        "audio": {"codec": "aac", "bitrate": "96k"},
        **overrides,
    }


def _monotonic(path: Path) -> bool:
    for stream in ("v:0", "a:0"):
        packets = probe(str(path), "-select_streams", stream, "-show_entries", "packet=dts")["packets"]
        dts = [int(p["dts"]) for p in packets if p.get("dts") is not None]
        if any(b <= a for a, b in itertools.pairwise(dts)):
            return False
    return True


def _decodes_cleanly(path: Path) -> str:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.stderr.strip() if done.returncode == 0 else f"exit {done.returncode}: {done.stderr}"


def _children(stack: Stack, parent: str) -> dict[str, dict[str, Any]]:
    return {n: j for n, j in stack.jobs().items() if ((j["spec"].get("part") or {}).get("parent")) == parent}


def test_given_a_split_job_on_two_nodes_then_segments_ran_on_both_and_the_output_equals_the_unsplit_one(
    stack: Stack, media: Path
) -> None:
    first, second = stack.agent(slots=2), stack.agent(slots=2)
    stack.operator().wait_active()
    stack.wait_agents()
    stack.create("whole", **_spec(media, "whole", quality={"metrics": ["psnr"]}))
    stack.create("film", **_spec(media, "film", split={"segmentSeconds": 4}, quality={"metrics": ["psnr"]}))
    split = stack.wait_phase("film", ("Completed", "Failed", "Canceled"), timeout=300)
    whole = stack.wait_phase("whole", ("Completed", "Failed"), timeout=300)
    assert (split["phase"], whole["phase"]) == ("Completed", "Completed"), (split.get("message"), whole.get("message"))

    segments = split["segments"]
    assert segments["total"] == 6 and segments["completed"] == 6, segments  # 24 s cut every 4 s at keyframes
    assert set(segments["nodes"]) == {first.node, second.node}, segments
    children = _children(stack, "film")
    assert sorted(c["spec"]["part"]["role"] for c in children.values()) == ["slice"] * 6 + ["split", "stitch"]
    assert all(c["status"]["phase"] == "Completed" for c in children.values())
    assert split["progress"]["percent"] == 100.0

    source, joined, reference = (
        facts(str(media / "in" / "film.mp4")),
        facts(str(media / "out" / "film.mp4")),
        facts(str(media / "out" / "whole.mp4")),
    )
    assert joined["frames"] == source["frames"] == 24 * FPS, (joined, source)
    assert abs(joined["video"] - source["video"]) <= 1 / FPS, (joined, source)
    assert abs(joined["audio"] - reference["audio"]) <= 0.05, (joined, reference)  # the same audio encode
    assert _monotonic(media / "out" / "film.mp4")
    assert _decodes_cleanly(media / "out" / "film.mp4") == ""
    assert abs(split["result"]["psnr"] - whole["result"]["psnr"]) <= 0.3, (split["result"], whole["result"])
    assert sorted(p.name for p in (media / "out").iterdir()) == ["film.mp4", "whole.mp4"]  # work folder removed


def _encoder_of(job: str) -> psutil.Process | None:
    """The ffmpeg a job's runner started (found by the job name in the runner's plan)."""
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] != "ffmpeg":
                continue
            parent = proc.parent()
            plan = (parent.environ() if parent else {}).get(api.ENV_PLAN, "")
            if f'"job":"{job}"' in plan:
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def test_given_a_segment_s_encoder_killed_then_that_segment_alone_is_retried(stack: Stack, media: Path) -> None:
    stack.agent(slots=2)
    stack.operator().wait_active()
    stack.wait_agents()
    stack.create(
        "film",
        **_spec(media, "film", split={"segmentSeconds": 4}, video={"codec": "h264", "preset": "slow", "crf": 23}),
    )
    victim = "film-s00001"
    encoder = wait_until(lambda: _encoder_of(victim), timeout=180, interval=0.1, what=f"{victim}'s encoder")
    encoder.kill()
    status = stack.wait_phase("film", ("Completed", "Failed", "Canceled"), timeout=400)
    assert status["phase"] == "Completed", status.get("message")
    slices = {n: c["status"] for n, c in _children(stack, "film").items() if c["spec"]["part"]["role"] == "slice"}
    assert len(slices) == 6, sorted(slices)
    # The kill is the job's one counted failure, on the victim alone: no other segment was retried for it.
    failures = {n: s.get("failures", 0) for n, s in slices.items()}
    assert failures == {n: int(n == victim) for n in slices}, slices
    # Every pod beyond a segment's first is its retry or a disruption the product reports (a heartbeat Lease
    # renewed late under load requeues a run without using a retry), never an unexplained run.
    for name, s in slices.items():
        assert s["attempts"] == 1 + s.get("failures", 0) + s.get("disruptions", 0), (name, s)
    runs = stack.runs()
    assert runs[victim]["encoders"] >= 2, runs  # killed, then run again
    assert all(runs[n]["succeeded"] == 1 for n in slices), runs


def test_given_a_split_job_canceled_mid_way_then_no_output_and_no_work_folder_remain(stack: Stack, media: Path) -> None:
    stack.agent(slots=2)
    stack.operator().wait_active()
    stack.wait_agents()
    stack.create(
        "film",
        **_spec(media, "film", split={"segmentSeconds": 4}, video={"codec": "h264", "preset": "slow", "crf": 23}),
    )
    wait_until(
        lambda: _encoder_of("film-s00000") or _encoder_of("film-s00001"),
        timeout=180,
        interval=0.1,
        what="a slice encoding",
    )
    stack.custom.patch_namespaced_custom_object(
        api.GROUP, api.VERSION, stack.ns, api.PLURAL, "film", {"spec": {"canceled": True}}
    )
    assert stack.wait_phase("film", "Canceled", timeout=60)["phase"] == "Canceled"

    def settled() -> bool:
        children = _children(stack, "film")
        cleanup = children.get("film-cleanup", {}).get("status", {}).get("phase")
        return cleanup == "Completed" and all(
            (c.get("status") or {}).get("phase") in ("Completed", "Canceled") for c in children.values()
        )

    wait_until(settled, timeout=120, what="children canceled and the cleanup done")
    out = media / "out"
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == [], list(out.iterdir())
    assert not any(p.info["name"] == "ffmpeg" and _encoder_of("film-s00000") for p in psutil.process_iter(["name"]))


def test_given_a_split_job_running_past_its_timeout_then_it_fails_with_timeout_and_its_children_stop(
    stack: Stack, media: Path
) -> None:
    """spec.timeoutSeconds bounds the whole split job (a Kubernetes Job's activeDeadlineSeconds), not each
    child: twelve short slices on one slot take longer together than the limit, though none alone does."""
    stack.agent(slots=1)
    stack.operator().wait_active()
    stack.wait_agents()
    video = {"codec": "h264", "preset": "slow", "crf": 23}
    stack.create("film", **_spec(media, "film", split={"segmentSeconds": 2}, video=video, timeoutSeconds=12))
    status = stack.wait_phase("film", ("Completed", "Failed", "Canceled"), timeout=180)
    assert (status["phase"], status.get("reason")) == ("Failed", "Timeout"), status.get("message")
    assert "timeoutSeconds=12" in status["message"], status["message"]

    def settled() -> bool:
        children = _children(stack, "film")
        cleanup = children.get("film-cleanup", {}).get("status", {}).get("phase")
        return cleanup == "Completed" and all(
            (c.get("status") or {}).get("phase") in api.TERMINAL_PHASES for c in children.values()
        )

    wait_until(settled, timeout=120, what="children stopped and the cleanup done")
    roles = [c["spec"]["part"]["role"] for c in _children(stack, "film").values()]
    assert "stitch" not in roles, roles  # stopped before the slices were all encoded
    out = media / "out"
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == [], list(out.iterdir())
