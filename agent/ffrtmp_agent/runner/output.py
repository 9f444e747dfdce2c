"""The job's output file: moving the encoder's temp file (or a live job's parts, joined without
re-encoding) into place on success, and removing what a failed or canceled run left behind. Outputs that
are not files (rtmp://) need neither.
"""

from __future__ import annotations

import glob
import logging
import os
import posixpath
import subprocess

import ffrtmp_api as api

log = logging.getLogger("ffrtmp.runner")


def is_file(plan: api.ExecutionPlan) -> bool:
    return "://" not in plan.outputUrl


def place(plan: api.ExecutionPlan, parts: list[str]) -> None:
    """Moves the written parts to plan.outputUrl; raises when there is nothing to move."""
    if not plan.tempOutputUrl:
        return  # rtmp, or hls (the muxer wrote the playlist in place)
    written = [p for p in parts if os.path.exists(p) and os.path.getsize(p) > 0]
    if not written:
        raise RuntimeError("ffmpeg produced no output")
    if len(written) == 1:
        os.replace(written[0], plan.outputUrl)  # same directory: atomic
    else:
        concat(written, muxer=plan.ffmpegArgs[-2], final=plan.outputUrl)
    for part in written:
        if os.path.exists(part):
            os.remove(part)


def remove_partial(plan: api.ExecutionPlan, parts: list[str]) -> None:
    for part in parts:
        remove(part)
    if plan.outputContainer == "hls" and is_file(plan):
        remove_final(plan)


def remove_final(plan: api.ExecutionPlan) -> None:
    if not is_file(plan):
        return
    remove(plan.outputUrl)
    if plan.outputContainer == "hls":
        for segment in glob.glob(glob.escape(posixpath.splitext(plan.outputUrl)[0]) + "_*.ts"):
            remove(segment)


def concat(parts: list[str], *, muxer: str, final: str) -> None:
    """Joins a live job's parts (one per run) without re-encoding, through a hidden temp file."""
    directory, name = posixpath.split(final)
    listing = posixpath.join(directory, f".{name}.ffrtmp-concat.txt")
    joined = posixpath.join(directory, f".{name}.ffrtmp-concat{posixpath.splitext(name)[1]}")
    with open(listing, "w", encoding="utf-8") as fh:
        for part in parts:
            fh.write("file '" + part.replace("'", "'\\''") + "'\n")
    try:
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-f", "concat", "-safe", "0",
             "-protocol_whitelist", "file", "-i", "file:" + listing, "-c", "copy", "-f", muxer, "file:" + joined],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        os.replace(joined, final)
    finally:
        remove(listing)
        remove(joined)


def remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc)
