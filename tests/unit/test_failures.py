"""Failure classification from ffmpeg's exit code and stderr (samples captured from real ffmpeg 5.1 runs
of the plan's argv; only the pointer values were normalised)."""

from __future__ import annotations

import json

import pytest
from ffrtmp_agent.runner import failures

IN = "file:/media/in/talk.mp4"
OUT = "file:/media/out/.talk.ffrtmp-1.part.mp4"
CTX = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0c0ffee00]"

CASES = [
    (
        "given a missing file then InputError",
        IN,
        OUT,
        [f"{IN}: No such file or directory"],
        "InputError",
        "No such file or directory",
    ),
    (
        "given a zero-byte file then InputError",
        IN,
        OUT,
        [
            f"{CTX} Format mov,mp4,m4a,3gp,3g2,mj2 detected only with low score of 1, misdetection possible!",
            f"{CTX} moov atom not found",
            f"{IN}: Invalid data found when processing input",
        ],
        "InputError",
        "Invalid data",
    ),
    (
        "given an unknown host then InputError",
        "http://no-such-host.invalid/a.mp4",
        OUT,
        [
            "[tcp @ 0x55d0c0ffee00] Failed to resolve hostname no-such-host.invalid: Name or service not known",
            "http://no-such-host.invalid/a.mp4: Input/output error",
        ],
        "InputError",
        "Input/output error",
    ),
    (
        "given http 404 then InputError",
        "http://127.0.0.1:38209/missing.mp4",
        OUT,
        [
            "[http @ 0x55d0c0ffee00] HTTP error 404 File not found",
            "http://127.0.0.1:38209/missing.mp4: Server returned 404 Not Found",
        ],
        "InputError",
        "404",
    ),
    (
        "given connection refused on the input then InputError",
        "rtmp://127.0.0.1:1/live/x",
        OUT,
        [
            "[tcp @ 0x55d0c0ffee00] Connection to tcp://127.0.0.1:1?tcp_nodelay=0 failed: Connection refused",
            "[rtmp @ 0x55d0c0ffee00] Cannot open connection tcp://127.0.0.1:1?tcp_nodelay=0",
            "rtmp://127.0.0.1:1/live/x: Connection refused",
        ],
        "InputError",
        "Connection refused",
    ),
    (
        "given connection refused on the output then OutputError",
        IN,
        "rtmp://127.0.0.1:1/live/x",
        [
            "[tcp @ 0x55d0c0ffee00] Connection to tcp://127.0.0.1:1?tcp_nodelay=0 failed: Connection refused",
            "rtmp://127.0.0.1:1/live/x: Connection refused",
        ],
        "OutputError",
        "Connection refused",
    ),
    (
        "given a playlist refused by the whitelist then InputError",
        "file:/media/in/evil.m3u8",
        OUT,
        ["[hls @ 0x55d0c0ffee00] Format not on whitelist 'mov,matroska'", "file:/media/in/evil.m3u8: Invalid argument"],
        "InputError",
        "hls demuxer, which is not allowed: playlist and concat inputs need spec.input.allowPlaylists",
    ),
    (
        "given nvenc without a driver then EncoderError",
        IN,
        OUT,
        [
            "[h264_nvenc @ 0x55d0c0ffee00] Cannot load libcuda.so.1",
            "Error initializing output stream 0:0 -- Error while opening encoder for output stream #0:0 - maybe incorrect "
            "parameters such as bit_rate, rate, width or height",
            "[aac @ 0x55d0c0ffee00] 2 frames left in the queue on closing",
        ],
        "EncoderError",
        "Error while opening encoder",
    ),
    (
        "given an unknown encoder then EncoderError",
        IN,
        OUT,
        ["Unknown encoder 'nosuchenc'"],
        "EncoderError",
        "Unknown encoder",
    ),
    (
        "given a missing output directory then OutputError",
        IN,
        OUT,
        [f"{OUT}: No such file or directory"],
        "OutputError",
        "No such file or directory",
    ),
    (
        "given a codec the container refuses then OutputError",
        IN,
        OUT,
        [
            "[webm @ 0x55d0c0ffee00] Only VP8 or VP9 or AV1 video and Vorbis or Opus audio and WebVTT subtitles are supported "
            "for WebM.",
            "Could not write header for output file #0 (incorrect codec parameters ?): Invalid argument",
            "Error initializing output stream 0:0 -- ",
            "[aac @ 0x55d0c0ffee00] 2 frames left in the queue on closing",
        ],
        "OutputError",
        "Could not write header",
    ),
    (
        "given a video codec ffmpeg cannot decode then InputError",
        IN,
        OUT,
        [
            f"{CTX} Could not find codec parameters for stream 0 (Video: none, none(progressive), 160x120): unknown codec",
            "Consider increasing the value for the 'analyzeduration' (0) and 'probesize' (5000000) options",
            "Decoder (codec none) not found for input stream #0:0",
        ],
        "InputError",
        "Decoder (codec none) not found",
    ),
    (
        "given nothing recognisable then EncoderError (retryable)",
        IN,
        OUT,
        ["Conversion failed!"],
        "EncoderError",
        "code 1",
    ),
    ("given no stderr at all then EncoderError", IN, OUT, [], "EncoderError", "no error output"),
]


@pytest.mark.parametrize(("name", "input_ref", "output_ref", "stderr", "reason", "fragment"), CASES)
def test_classify(name: str, input_ref: str, output_ref: str, stderr: list[str], reason: str, fragment: str) -> None:
    failure = failures.classify(1, stderr, input_ref=input_ref, output_ref=output_ref)
    assert failure.reason == reason, name
    assert fragment in failure.message
    assert "0x55d0c0ffee00" not in failure.message  # pointer prefixes are noise to a user


def test_given_input_error_when_reported_then_message_names_the_path_not_the_protocol_prefix() -> None:
    failure = failures.classify(1, [f"{IN}: No such file or directory"], input_ref=IN, output_ref=OUT)
    assert failure.message == "cannot read the input /media/in/talk.mp4: No such file or directory"
    assert json.loads(failure.termination_message()) == {"reason": "InputError", "message": failure.message}
    assert failure.exit_code == 10


@pytest.mark.parametrize(
    ("name", "declared", "decoded", "corrupt", "expected"),
    [
        ("given a truncated file with partial-file warnings then InputError", 3.0, 1.0, True, "InputError"),
        ("given a short decode without corruption then fine", 3.0, 1.0, False, None),
        ("given corruption but full length then fine", 10.0, 9.8, True, None),
        ("given unknown declared length then fine", None, 1.0, True, None),
    ],
)
def test_truncated_input(
    name: str, declared: float | None, decoded: float, corrupt: bool, expected: str | None
) -> None:
    failure = failures.truncated_input(input_duration=declared, output_time=decoded, corruption_seen=corrupt)
    assert (failure.reason if failure else None) == expected, name


def test_timeout_is_its_own_reason_with_exit_code_13() -> None:
    failure = failures.timeout(60)
    assert failure.reason == "Timeout" and failure.exit_code == 13 and "60 s" in failure.message


def test_long_messages_are_bounded_in_the_termination_log() -> None:
    failure = failures.Failure("EncoderError", "x" * 10_000)
    assert len(json.loads(failure.termination_message())["message"]) == failures.MAX_MESSAGE
