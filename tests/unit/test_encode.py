"""Encode: the reader thread's wake-ups for the runner's loop and the encoder's own CPU (a real child process
printing ffmpeg's -progress blocks stands in for ffmpeg)."""

from __future__ import annotations

from ffrtmp_agent.runner.encode import Encode

BLOCKS = "frame=0\\nprogress=continue\\nframe=3\\nprogress=continue\\nframe=6\\nprogress=end\\n"


def test_given_progress_blocks_when_the_encoder_runs_then_woken_at_the_first_frame_and_at_the_end() -> None:
    wakes: list[str] = []
    enc = Encode(["sh", "-c", f"printf '{BLOCKS}'"], on_progress=lambda: wakes.append("wake"))
    assert enc.finish() == 0
    assert len(wakes) == 2  # the first frame > 0 and the end of output; not frame 0, not every block
    assert enc.latest is not None and enc.latest.end and enc.latest.frame == 6


def test_given_a_finished_encoder_when_reaped_then_its_own_cpu_seconds_are_known() -> None:
    enc = Encode(["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
    assert enc.cpu_seconds is None
    assert enc.finish() == 0
    assert enc.cpu_seconds is not None and enc.cpu_seconds > 0
