"""ffmpeg -progress parsing and the status write throttle (pure)."""

from __future__ import annotations

import pytest
from ffrtmp_agent.runner.progress import Sample, Throttle, parse_blocks, percent, status_progress

# Two blocks exactly as ffmpeg 5.1 writes them to -progress pipe:1 (captured).
REAL = """frame=31
fps=0.00
stream_0_0_q=-1.0
bitrate= 355.2kbits/s
total_size=48
out_time_us=1000000
out_time_ms=1000000
out_time=00:00:01.000000
dup_frames=0
drop_frames=0
speed=1.98x
progress=continue
frame=60
fps=58.21
stream_0_0_q=-1.0
bitrate= 425.3kbits/s
total_size=106602
out_time_us=2005333
out_time_ms=2005333
out_time=00:00:02.005333
dup_frames=0
drop_frames=0
speed=7.06x
progress=end
""".splitlines()


def test_given_two_real_blocks_when_parsed_then_two_samples_with_units_converted() -> None:
    first, last = list(parse_blocks(REAL))
    assert first == Sample(frame=31, fps=0.0, out_time_seconds=1.0, speed=1.98, bitrate_kbps=355.2, total_size=48)
    assert last.end and last.frame == 60 and last.out_time_seconds == pytest.approx(2.005333)
    assert last.speed == 7.06 and last.bitrate_kbps == 425.3 and last.total_size == 106602


@pytest.mark.parametrize(
    ("name", "lines", "expected"),
    [
        (
            "given N/A values when parsed then None",
            ["bitrate=N/A", "speed=N/A", "out_time_us=N/A", "progress=continue"],
            Sample(),
        ),
        (
            "given only out_time_ms when parsed then microseconds too",
            ["out_time_ms=1500000", "progress=continue"],
            Sample(out_time_seconds=1.5),
        ),
        (
            "given only out_time clock when parsed then seconds",
            ["out_time=01:02:03.500000", "progress=continue"],
            Sample(out_time_seconds=3723.5),
        ),
        (
            "given a negative start time when parsed then unknown",
            ["out_time_us=-9223372036854775807", "out_time=-577014:32:22.775808", "progress=continue"],
            Sample(),
        ),
        (
            "given noise lines when parsed then ignored",
            ["garbage", "", "frame=5", "progress=end"],
            Sample(frame=5, end=True),
        ),
    ],
)
def test_parse_edge_cases(name: str, lines: list[str], expected: Sample) -> None:
    assert list(parse_blocks(lines)) == [expected], name


def test_given_partial_trailing_block_when_parsed_then_dropped() -> None:
    assert list(parse_blocks(["frame=1", "progress=continue", "frame=2"])) == [Sample(frame=1)]


@pytest.mark.parametrize(
    ("name", "out_time", "duration", "expected"),
    [
        ("given half encoded then 50", 5.0, 10.0, 50.0),
        ("given past the end then capped below 100", 10.2, 10.0, 99.9),
        ("given unknown duration then 0", 5.0, None, 0.0),
        ("given no time yet then 0", None, 10.0, 0.0),
    ],
)
def test_percent(name: str, out_time: float | None, duration: float | None, expected: float) -> None:
    assert percent(Sample(out_time_seconds=out_time), duration_seconds=duration) == expected, name


def test_given_sample_when_converted_then_api_progress_fields_without_unknowns() -> None:
    body = status_progress(
        Sample(frame=60, fps=58.21, out_time_seconds=2.0, speed=7.06), percent_done=20.0, now="2026-01-01T00:00:00Z"
    )
    assert body == {
        "percent": 20.0,
        "frame": 60,
        "fps": 58.21,
        "speed": 7.06,
        "outTimeSeconds": 2.0,
        "updatedAt": "2026-01-01T00:00:00Z",
    }


def test_given_interval_when_samples_arrive_fast_then_one_write_per_interval_and_forced_ones_pass() -> None:
    throttle = Throttle(2.0)
    passed = [t for t in (0.0, 0.5, 1.9, 2.0, 2.1, 3.9, 4.1) if throttle.ready(t)]
    assert passed == [0.0, 2.0, 4.1]
    assert throttle.ready(4.2, force=True)


def test_given_forced_start_write_when_first_frame_arrives_within_interval_then_it_passes_at_once() -> None:
    throttle = Throttle(2.0)
    assert throttle.ready(0.0, force=True, frame=None)  # the runner's write before ffmpeg starts
    passed = [
        t for t, frame in ((0.3, 0), (0.5, 12), (0.9, 24), (1.9, 55), (2.6, 75)) if throttle.ready(t, frame=frame)
    ]
    assert passed == [0.5, 2.6]  # frame 0 waits; the first frame > 0 at once; then one per interval from it


def test_given_a_frame_already_reported_when_later_samples_arrive_then_only_the_interval_lets_them_pass() -> None:
    throttle = Throttle(2.0)
    assert throttle.ready(0.0, frame=30)
    assert not throttle.ready(1.0, frame=60)
    assert throttle.ready(2.0, frame=90)
