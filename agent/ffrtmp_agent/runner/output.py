"""The job's output file: moving the encoder's temp file (or a live job's parts, joined without
re-encoding) into place on success, and removing what a failed or canceled run left behind. Outputs that
are not files (rtmp://) need neither. Every name is handled inside the output folder the runner opened
(confine.OutputFolder): a rename or removal never follows a link.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import subprocess

import ffrtmp_api as api

from . import ladder, split
from .confine import OutputFolder, fd_path


def is_file(plan: api.ExecutionPlan) -> bool:
    return "://" not in plan.outputUrl


def place(plan: api.ExecutionPlan, folder: OutputFolder, parts: dict[str, int], *, env: dict[str, str]) -> int | None:
    """Moves the written parts (name -> open fd) to plan.outputUrl; raises when there is nothing to move.
    Returns an fd of the final file (for measuring it), or None for outputs the muxer placed itself."""
    if ladder.is_ladder(plan):  # a folder: renamed as a whole (ladder.py)
        ladder.place(plan, folder)
        return None
    if split.owns_output(plan):  # a split job's split or cleanup child: nothing to rename (split.py)
        split.place(plan, folder)
        return None
    if not plan.tempOutputUrl:
        return None  # hls: the muxer wrote the playlist in place
    final = posixpath.basename(plan.outputUrl)
    written = {name: fd for name, fd in parts.items() if folder.size(name) > 0}
    if not written:
        raise RuntimeError("ffmpeg produced no output")
    if len(written) == 1:
        name, fd = next(iter(written.items()))
        folder.rename(name, final)  # same folder: atomic
    else:
        fd = concat(folder, written, muxer=plan.ffmpegArgs[-2], final=final, env=env)
    for name in parts:
        folder.remove(name)
    if split.role(plan) == "stitch":  # the split job's output is whole: its work folder has served
        split.remove_work(plan)
    return fd


def remove_partial(plan: api.ExecutionPlan, folder: OutputFolder | None, parts: dict[str, int]) -> None:
    if ladder.is_ladder(plan):
        return ladder.remove_partial(plan, folder)
    if split.owns_output(plan):
        return None  # the work folder stays for a retry; a cleanup child removes it if the split job fails
    if folder is None:
        return
    for name in parts:
        folder.remove(name)
    if plan.outputContainer == "hls" and is_file(plan):
        remove_final(plan, folder)


def remove_final(plan: api.ExecutionPlan, folder: OutputFolder | None) -> None:
    if ladder.is_ladder(plan):
        return ladder.remove_final(plan, folder)
    if split.owns_output(plan):
        return None
    if folder is None or not is_file(plan):
        return
    final = posixpath.basename(plan.outputUrl)
    folder.remove(final)
    if plan.outputContainer == "hls":
        stem = posixpath.splitext(final)[0]
        for name in folder.listing():
            if name.startswith(stem + "_") and name.endswith(".ts"):
                folder.remove(name)


def concat(folder: OutputFolder, parts: dict[str, int], *, muxer: str, final: str, env: dict[str, str]) -> int:
    """Joins a live job's parts (one per run) without re-encoding, through hidden temp files created in the
    output folder; each part is read through the fd it was written to. Returns an fd of the joined file."""
    listing_name, joined_name = f".{final}.ffrtmp-concat.txt", f".{final}.ffrtmp-concat{posixpath.splitext(final)[1]}"
    listing = folder.create(listing_name)
    joined = folder.create(joined_name)
    try:
        with os.fdopen(os.dup(listing), "w", encoding="utf-8") as fh:
            for fd in parts.values():
                fh.write(f"file '{fd_path(fd)}'\n")
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-nostdin",
                "-y",
                "-loglevel",
                "error",
                "-f",
                "concat",
                "-safe",
                "0",
                "-protocol_whitelist",
                "file",
                "-i",
                "file:" + fd_path(listing),
                "-c",
                "copy",
                "-f",
                muxer,
                "file:" + fd_path(joined),
            ],
            check=True,
            capture_output=True,
            timeout=600,
            env=env,
            pass_fds=(listing, joined, *parts.values()),
        )
        folder.rename(joined_name, final)
    except BaseException:
        folder.remove(joined_name)
        with contextlib.suppress(OSError):
            os.close(joined)
        raise
    finally:
        folder.remove(listing_name)
        os.close(listing)
    return joined
