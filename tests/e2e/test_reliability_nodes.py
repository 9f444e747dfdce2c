"""Node and encoder faults with real agents and ffmpeg: a node dies mid-encode (its job requeues with
attempts + 1 and finishes on the other node), a cordoned node gets no new jobs, an encoder SIGKILLed on
every attempt retries with backoff and then fails with the reason. Outputs live on a shared hostPath, so
the tests also watch that no half-written file ever appears under a job's final name.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support import free_port, scrape_metrics, wait_until
from tests.support.jobpods import shared_folder
from tests.support.stack import Stack, elapsed, transition_time

LEASE_S = 4  # agents' heartbeat Lease; a dead node is noticed after this (plus one scheduler tick)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    (tmp_path / "media" / "out").mkdir(parents=True)
    return shared_folder(tmp_path / "media")  # job pods run as their non-root user


def _on_media(media: Path, name: str, *, size: tuple[int, int], seconds: float, preset: str) -> dict[str, Any]:
    return {
        "input": {
            "testSource": {"width": size[0], "height": size[1], "fps": 25, "durationSeconds": seconds, "audio": False}
        },
        "output": {"url": f"file:///media/out/{name}.mp4"},
        "volumes": [{"name": "media", "mountPath": "/media", "hostPath": {"path": str(media)}}],
        "video": {"codec": "h264", "preset": preset},
    }


class FinalNameWatch:
    """Samples a job's final output path while it runs: it must not exist before the job is Completed."""

    def __init__(self, stack: Stack, job: str, path: Path) -> None:
        self.premature: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stack, job, path), daemon=True)
        self._thread.start()

    def _run(self, stack: Stack, job: str, path: Path) -> None:
        while not self._stop.wait(0.1):
            if path.exists():
                # The runner renames the finished file into place, reports the result, then exits; only
                # then is the job Completed. So the file may appear a moment before Completed, but whole.
                phase = stack.status(job).get("phase")
                if phase != "Completed" and not _ffprobe_ok(path):
                    self.premature.append(f"{path.name} unreadable while the job was {phase}")
                return

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.premature


def _ffprobe_ok(path: Path) -> bool:
    return subprocess.run(["ffprobe", "-v", "error", str(path)], capture_output=True).returncode == 0


def test_given_a_node_dies_mid_encode_then_its_job_requeues_and_completes_on_the_other_node(
    stack: Stack, media: Path
) -> None:
    first, second = (
        stack.agent(lease_seconds=LEASE_S, renew_seconds=1),
        stack.agent(lease_seconds=LEASE_S, renew_seconds=1),
    )
    stack.operator().wait_active()
    stack.wait_agents()
    stack.create("survivor", **_on_media(media, "survivor", size=(1280, 720), seconds=6, preset="medium"))
    watch = FinalNameWatch(stack, "survivor", media / "out" / "survivor.mp4")
    status = stack.wait_phase("survivor", "Processing", timeout=60)
    victim = first if status["node"] == first.node else second
    other = second if victim is first else first
    wait_until(
        lambda: any((media / "out").glob(".survivor.ffrtmp-1.part*")),
        timeout=60,
        what="the encoder writing its temp file",
    )
    stack.kill_node(victim)
    killed_at = time.time()
    requeued = stack.wait_phase("survivor", ("Queued", "Assigned", "Processing", "Completed"), timeout=LEASE_S + 20)
    final = stack.wait_phase("survivor", "Completed", timeout=120)
    assert not watch.stop(), "a half-written file appeared under the final name"
    queued_at = transition_time(final, "Queued", after=killed_at - 1)
    assert queued_at is not None, final["transitions"]
    lost = [t for t in final["transitions"] if t.get("reason") == "NodeLost"]
    assert lost and victim.node in lost[0].get("message", ""), final["transitions"]
    assert final["attempts"] == 2 and final["node"] == other.node
    assert (media / "out" / "survivor.mp4").exists() and _ffprobe_ok(media / "out" / "survivor.mp4")
    # The dead node's partial file stays under its hidden per-attempt temp name, never the final one.
    leftovers = sorted(p.name for p in (media / "out").iterdir() if p.name != "survivor.mp4")
    assert all(name.startswith(".survivor.ffrtmp-1.part") for name in leftovers), leftovers
    assert requeued
    print(
        f"\nFIGURE node_lost_requeue_s={round(queued_at - killed_at, 2)} (lease {LEASE_S}s) "
        f"node_lost_to_completed_s={elapsed(killed_at)} attempts={final['attempts']}"
    )


def test_given_a_cordoned_node_then_no_new_job_goes_there_and_its_running_job_finishes(stack: Stack) -> None:
    cordoned, open_node = stack.agent(slots=2), stack.agent(slots=2)
    stack.operator("--metrics-port", str(port := free_port())).wait_active()
    stack.wait_agents()
    stack.create(
        "already-there",
        nodeSelector={"kubernetes.io/hostname": cordoned.node},
        input={"testSource": {"width": 640, "height": 360, "durationSeconds": 8, "audio": False}},
    )
    stack.wait_phase("already-there", "Processing", timeout=60)
    stack.core.patch_node(cordoned.node, {"spec": {"unschedulable": True}})
    # The operator's node watch has the cordon once its gauge counts a cordoned node (nodes of other tests
    # are gone: each test deletes its own).
    wait_until(
        lambda: re.search(r'^ffrtmp_nodes\{status="cordoned"\} [1-9]', scrape_metrics(port) or "", re.M),
        timeout=60,
        what="the operator to see the cordon",
    )
    names = [f"after-cordon-{i}" for i in range(4)]
    for name in names:
        stack.create(name)
    final = stack.wait_all_terminal([*names, "already-there"], timeout=180)
    assert {n: j["status"]["phase"] for n, j in final.items()} == dict.fromkeys(final, "Completed")
    assert {final[n]["status"]["node"] for n in names} == {open_node.node}
    assert final["already-there"]["status"]["node"] == cordoned.node  # cordon is not drain
    assert not [
        p
        for p in stack.pods()
        if p.spec.node_name == cordoned.node and p.metadata.labels["ffrtmp.io/job"] != "already-there"
    ]
    stack.core.patch_node(cordoned.node, {"spec": {"unschedulable": False}})


def _writes(proc: psutil.Process, fragment: str) -> bool:
    """Whether `proc` has a file open whose path holds `fragment` (the runner gives ffmpeg its temp output as
    an open fd, /proc/self/fd/N, so the name is in the fd table, not the command line)."""
    folder = f"/proc/{proc.pid}/fd"
    try:  # readlink, not psutil's open_files: that drops paths that do not exist in this mount namespace
        return any(fragment in os.readlink(f"{folder}/{fd}") for fd in os.listdir(folder))
    except OSError:
        return False


def test_given_the_encoder_is_sigkilled_every_attempt_then_backoff_retries_then_failed_with_the_reason(
    stack: Stack, media: Path
) -> None:
    stack.agent(slots=1)
    stack.operator().wait_active()
    stack.wait_agents()
    stack.create("doomed", maxRetries=2, **_on_media(media, "doomed", size=(1280, 720), seconds=60, preset="medium"))
    watch = FinalNameWatch(stack, "doomed", media / "out" / "doomed.mp4")
    killed: list[tuple[int, float]] = []
    stop = threading.Event()

    def killer() -> None:  # SIGKILL every ffmpeg writing this job's temp output, once it has run 1 s
        while not stop.wait(0.1):
            for proc in psutil.process_iter(["pid", "name", "cmdline", "create_time"]):
                if proc.info["name"] == "ffmpeg" and _writes(proc, ".doomed.ffrtmp-"):
                    if proc.pid not in {k for k, _ in killed} and time.time() - proc.info["create_time"] > 1:
                        os.kill(proc.pid, signal.SIGKILL)
                        killed.append((proc.pid, time.time()))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        final = stack.wait_phase("doomed", "Failed", timeout=150)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not watch.stop()
    assert final["reason"] == "RetriesExhausted", final
    assert final["attempts"] == 3 and len(killed) == 3, (final["attempts"], killed)
    assert "EncoderError" in final["message"] and "-9" in final["message"], final["message"]
    runs = stack.runs()["doomed"]
    assert runs == {"runners": 3, "encoders": 3, "succeeded": 0}, runs
    # Backoff: each retry is admitted no earlier than its Queued stamp plus the base delay (1 s here).
    stamps = [(t["phase"], _epoch(t["at"]), t.get("reason")) for t in final["transitions"]]
    retries = [at for phase, at, reason in stamps if phase == "Queued" and reason == "EncoderError"]
    assigned = [at for phase, at, _ in stamps if phase == "Assigned"]
    assert len(retries) == 2 and len(assigned) == 3, stamps
    gaps = [round(a - q, 2) for q, a in zip(retries, assigned[1:], strict=True)]
    assert all(g >= 0.9 for g in gaps), gaps
    assert sorted(p.name for p in (media / "out").iterdir()) == [], "partial output left behind"
    print(f"\nFIGURE encoder_sigkill_attempts={final['attempts']} retry_gaps_s={gaps} reason={final['reason']}")


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
