"""Classifies a failed ffmpeg/ffprobe run into the runner's failure reasons from its exit code and the
last lines of its stderr: InputError (final: the input cannot be read or is not media), EncoderError,
OutputError. Pure; the patterns are checked against stderr captured from real ffmpeg runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import NamedTuple

import ffrtmp_api as api

INPUT_ERROR = api.Reason.INPUT_ERROR.value
ENCODER_ERROR = api.Reason.ENCODER_ERROR.value
OUTPUT_ERROR = api.Reason.OUTPUT_ERROR.value
TIMEOUT = api.Reason.TIMEOUT.value
MAX_MESSAGE = 1024  # the termination message stays well inside the kubelet's 4 KiB

# Phrases that name the input as the culprit wherever they appear (demuxer, decoder, network).
_INPUT_PATTERNS = [
    r"moov atom not found",
    r"Format not on whitelist",
    r"Protocol not on whitelist",
    r"Invalid data found when processing input",
    r"Failed to resolve hostname",
    r"Server returned [45]\d\d",
    r"HTTP error [45]\d\d",
    r"does not contain any stream",
    r"Stream map '.*' matches no streams",
    r"Output file #0 does not contain any stream",
    r"Unknown input format",
    r"input is truncated",
    r"Decoder \(codec [^)]*\) not found",  # a codec this ffmpeg cannot decode: retrying cannot help
]
_ENCODER_PATTERNS = [
    r"Unknown encoder",
    r"Error while opening encoder",
    r"Error initializing output stream .*encoder",
    r"Cannot load libcuda",
    r"No NVENC capable devices found",
    r"OpenEncodeSessionEx failed",
    r"Failed to initialise VAAPI",
    r"Error creating a MFX session",
    r"Encoder did not produce proper pts",
]
_OUTPUT_PATTERNS = [
    r"Could not write header",
    r"Error writing trailer",
    r"No space left on device",
    r"Error submitting a packet to the muxer",
    r"av_interleaved_write_frame\(\)",
    r"Broken pipe",
]


class Failure(NamedTuple):
    reason: str
    message: str

    def termination_message(self) -> str:
        """JSON {"reason", "message"} as the runner writes it to $FFRTMP_TERMINATION_LOG."""
        return json.dumps({"reason": self.reason, "message": self.message[:MAX_MESSAGE]})

    @property
    def exit_code(self) -> int:
        return api.RUNNER_EXIT_CODES[self.reason]


def classify(exit_code: int, stderr_tail: Sequence[str], *, input_ref: str | None, output_ref: str) -> Failure:
    """Why ffmpeg (or ffprobe, with output_ref "") exited `exit_code` != 0.

    ffmpeg's last line usually names the URL that failed ("<url>: <strerror>"); that decides input
    versus output. Otherwise the first known phrase, searched from the newest line back, decides.
    Anything unrecognised is an EncoderError, which retries (the safe default for a transient fault).
    """
    lines = [line.strip() for line in stderr_tail if line.strip()]
    if refused := next((line for line in lines if "Format not on whitelist" in line), None):
        demuxer = re.match(r"^\[(\S+) @", refused)
        return Failure(
            INPUT_ERROR,
            f"the input is read by the {demuxer.group(1) if demuxer else 'a'} demuxer, which "
            "is not allowed: playlist and concat inputs need spec.input.allowPlaylists",
        )
    for line in reversed(lines):
        if input_ref and line.startswith(input_ref + ":"):
            return Failure(INPUT_ERROR, _message("cannot read the input", line, input_ref))
        if output_ref and line.startswith(output_ref + ":"):
            return Failure(OUTPUT_ERROR, _message("cannot write the output", line, output_ref))
    for line in reversed(lines):
        for reason, patterns in (
            (INPUT_ERROR, _INPUT_PATTERNS),
            (ENCODER_ERROR, _ENCODER_PATTERNS),
            (OUTPUT_ERROR, _OUTPUT_PATTERNS),
        ):
            if any(re.search(p, line) for p in patterns):
                return Failure(reason, _strip_context(line))
    last = _strip_context(lines[-1]) if lines else "no error output"
    return Failure(ENCODER_ERROR, f"ffmpeg exited with code {exit_code}: {last}")


def truncated_input(
    *, input_duration: float | None, output_time: float | None, corruption_seen: bool
) -> Failure | None:
    """ffmpeg exits 0 on a truncated file whose index survived (moov first): it warns "partial file",
    decodes what is there and stops early. That output is not the user's media, so it is an InputError."""
    if not corruption_seen or not input_duration or output_time is None:
        return None
    if output_time >= input_duration - max(1.0, 0.05 * input_duration):
        return None
    return Failure(
        INPUT_ERROR,
        f"input is truncated or corrupt: it declares {input_duration:.1f} s "
        f"but only {output_time:.1f} s could be decoded",
    )


CORRUPTION_MARKERS = ("partial file", "Invalid data found when processing input", "Error while decoding stream")


def timeout(seconds: int) -> Failure:
    return Failure(TIMEOUT, f"the job ran longer than spec.timeoutSeconds ({seconds} s)")


def _message(what: str, line: str, ref: str) -> str:
    detail = line[len(ref) + 1 :].strip()
    return f"{what} {_display(ref)}: {detail}"


def _display(ref: str) -> str:
    return ref.removeprefix("file:")


def _strip_context(line: str) -> str:
    """Drops ffmpeg's "[mov,mp4 @ 0x55...]" context prefix (a pointer, useless to a user)."""
    return re.sub(r"^\[[^\]]+ @ 0x[0-9a-f]+\]\s*", "", line)
