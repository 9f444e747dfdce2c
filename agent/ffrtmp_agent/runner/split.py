"""A split job's children in the runner (plans with `split`; slices are ordinary encodes): the work folder
opened on its volume for the split child (source segments, their list and the audio written there by fd,
the audio output dropped for an input without audio), the stitch's inputs opened one by one and listed for
the concat demuxer by fd, the work folder removed after a stitch or by a cleanup child, and the split
child's result (each segment's length, whether there is audio) read from the segment muxer's list. A split
HLS ladder's stitch instead links its slices' segments into the ladder's folder (join_ladder, from ladder.place).

As launch.py and ladder.py: every file is reached through an opened folder with O_NOFOLLOW.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import stat
from typing import Any

import ffrtmp_api as api
from ffrtmp_api import split as splitting

from . import ladder
from .confine import Confined, OutputFolder, fd_path, open_folder

log = logging.getLogger("ffrtmp.runner")
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
MEDIA_PLAYLIST, SEGMENT_PATTERN = "index.m3u8", "seg_%05d.ts"  # as a ladder's (operator ladder_plan) names them


def role(plan: api.ExecutionPlan) -> str | None:
    return plan.split.role if plan.split is not None else None


def owns_output(plan: api.ExecutionPlan) -> bool:
    """The split and cleanup children write no ordinary output file (the stitch does: launch.py's path)."""
    return role(plan) in ("split", "cleanup")


def _mounts(plan: api.ExecutionPlan) -> list[str]:
    return [v.mountPath for v in plan.volumes]


def _rewrite(argv: list[str], written: str, given: str) -> list[str]:
    """Every argument naming `written` (a path, with or without a file under it) named by `given` instead."""
    return [given + a[len(written) :] if a == written or a.startswith(written + "/") else a for a in argv]


# ---------------------------------------------------------------------------------------- launch


def launch_output(plan: api.ExecutionPlan, launch: Any) -> api.ExecutionPlan:
    """For launch.py: the split child's work folder opened (made) and named by fd; a cleanup child's removed."""
    split = plan.split
    assert split is not None
    if split.role == "cleanup":
        remove_work(plan)
        return plan
    folder = launch.folder = OutputFolder(split.workFolder, _mounts(plan))
    folder.remove_links(folder.listing())  # the segment muxer opens names: none of them may be a planted link
    given = "file:" + fd_path(launch.keep(os.dup(folder.fd)))  # ffmpeg inherits the kept fds only
    argv = _rewrite(plan.ffmpegArgs, "file:" + split.workFolder, given)
    launch.shown[given] = split.workFolder
    if plan.optionalAudio and not ladder.has_audio(plan.probeArgs, env=launch.env, pass_fds=launch.pass_fds):
        log.info("the input has no audio stream: the split job is joined without audio")
        argv = splitting.without_audio_output(argv)
    return plan.model_copy(update={"ffmpegArgs": argv})


def launch_inputs(plan: api.ExecutionPlan, launch: Any) -> api.ExecutionPlan:
    """For launch.py: a stitch's slices and audio opened in the work folder, the slices listed by fd in a
    new concat list there; the argv names the list and the audio by fd. Raises Confined."""
    split = plan.split
    if split is None or split.role != "stitch":
        return plan
    folder = launch.keep(open_folder(split.workFolder, _mounts(plan), what="the split job's work folder"))
    slices = [launch.keep(_open(folder, splitting.encoded_name(i))) for i in range(split.segments or 0)]
    listing = f".{splitting.STITCH_LIST}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(listing, dir_fd=folder)
    try:
        list_fd = launch.keep(
            os.open(listing, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
        )
    except OSError as exc:
        raise Confined(f"cannot write the concat list in {split.workFolder}: {exc.strerror}", final=False) from None
    with os.fdopen(os.dup(list_fd), "w", encoding="utf-8") as fh:
        fh.writelines(f"file '{fd_path(fd)}'\n" for fd in slices)
    argv = _rewrite(plan.ffmpegArgs, "file:" + posixpath.join(split.workFolder, listing), "file:" + fd_path(list_fd))
    if split.audio:
        audio = launch.keep(_open(folder, splitting.AUDIO_FILE))
        argv = _rewrite(
            argv, "file:" + posixpath.join(split.workFolder, splitting.AUDIO_FILE), "file:" + fd_path(audio)
        )
    launch.shown["file:" + fd_path(list_fd)] = posixpath.join(split.workFolder, "enc-*.mkv")
    return plan.model_copy(update={"ffmpegArgs": argv})


def _open(folder: int, name: str) -> int:
    try:
        fd = os.open(name, _FILE, dir_fd=folder)
    except FileNotFoundError:
        raise Confined(f"{name} is missing from the split job's work folder", final=False) from None
    except OSError as exc:
        raise Confined(f"{name} in the split job's work folder: {exc.strerror} (links are not followed)") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Confined(f"{name} in the split job's work folder is not a regular file")
    return fd


# ------------------------------------------------------------------------------------- outputs


def place(plan: api.ExecutionPlan, folder: OutputFolder | None) -> None:
    """The split child's outputs are in place already: check that the segment muxer listed some."""
    if role(plan) == "split" and (folder is None or folder.size(splitting.SOURCE_LIST) <= 0):
        raise RuntimeError("ffmpeg wrote no source segments")


def remove_work(plan: api.ExecutionPlan) -> None:
    """Removes the work folder (after a stitch, or a cleanup child's whole job): by name in its opened
    parent folder, links unlinked, never followed."""
    split = plan.split
    assert split is not None
    parent, name = posixpath.split(split.workFolder)
    try:
        fd = open_folder(parent, _mounts(plan), what="the split job's output folder")
    except Confined as exc:
        log.warning("cannot remove the work folder: %s", exc)
        return
    try:
        ladder.remove_tree(fd, name)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------- a split ladder


def join_ladder(plan: api.ExecutionPlan, temp_fd: int) -> None:
    """A split ladder's stitch (ladder.place, before the master playlist): each rendition's segments of
    every slice, and the audio's, hard-linked in order into the ladder's temp folder (no media is read or
    copied; the work folder lies beside the output, on its volume) under one numbering, with one media
    playlist each. Raises RuntimeError or OSError (a slice's playlist missing: the stitch fails, retried)."""
    from . import playlists

    split = plan.split
    assert split is not None
    work = open_folder(split.workFolder, _mounts(plan), what="the split job's work folder")
    try:
        for rendition in plan.renditions:
            slices = range(split.segments or 0)
            _join(
                work,
                [(f"{splitting.encoded_folder(i)}/{rendition.name}", MEDIA_PLAYLIST) for i in slices],
                temp_fd,
                rendition.name,
                playlists,
            )
        if split.audio:
            _join(work, [("", splitting.AUDIO_PLAYLIST)], temp_fd, api.ladder.AUDIO_FOLDER, playlists)
    finally:
        os.close(work)
    _write(temp_fd, api.ladder.MANIFESTS["hls"], "#EXTM3U\n")  # ladder.write_master writes it whole


def _join(work: int, sources: list[tuple[str, str]], temp_fd: int, into: str, playlists: Any) -> None:
    joined: list[Any] = []
    with ladder._opened(temp_fd, into) as target:
        for folder, name in sources:
            with ladder._opened(work, folder) if folder else contextlib.nullcontext(work) as source:
                segments = playlists.media_segments(ladder._read(source, name))
                if not segments:
                    raise RuntimeError(f"{posixpath.join(folder, name)} in the work folder lists no segments")
                for segment in segments:
                    if "/" in segment.uri or segment.uri.startswith("."):
                        raise RuntimeError(f"{folder}/{name} names a segment outside its folder: {segment.uri}")
                    uri = ladder_segment_name(len(joined))
                    with contextlib.suppress(FileNotFoundError):  # a retried stitch's earlier link
                        os.unlink(uri, dir_fd=target)
                    os.link(segment.uri, uri, src_dir_fd=source, dst_dir_fd=target, follow_symlinks=False)
                    joined.append(playlists.Segment(uri, segment.seconds))
        _write(target, "index.m3u8", playlists.joined_media_playlist(joined))


def ladder_segment_name(index: int) -> str:
    return SEGMENT_PATTERN % index


def _write(dir_fd: int, name: str, text: str) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


# -------------------------------------------------------------------------------------- results


def parse_sources(text: str) -> list[float]:
    """Each segment's seconds from the segment muxer's CSV list (name,start,end per line)."""
    seconds = []
    for line in text.splitlines():
        fields = line.rsplit(",", 2)
        if len(fields) == 3:
            with contextlib.suppress(ValueError):
                seconds.append(round(max(0.0, float(fields[2]) - float(fields[1])), 6))
    return seconds


def measure(plan: api.ExecutionPlan, *, wall_seconds: float) -> dict[str, Any]:
    """status.result of a split child (its segments, for the parent) or a cleanup child."""
    result: dict[str, Any] = {"wallSeconds": round(wall_seconds, 3), "encoder": "copy", "unavailable": []}
    split = plan.split
    if split is None or split.role != "split":
        return result
    try:
        folder = open_folder(split.workFolder, _mounts(plan), what="the split job's work folder")
    except Confined as exc:
        log.warning("cannot read the segment list: %s", exc)
        return result
    try:
        with contextlib.suppress(OSError):
            fd = os.open(splitting.SOURCE_LIST, _FILE, dir_fd=folder)
            with os.fdopen(fd, encoding="utf-8", errors="replace") as fh:
                segments = parse_sources(fh.read(1024 * 1024))
                result["split"] = {"segments": segments[: splitting.MAX_SEGMENTS]}
                result["durationSeconds"] = round(sum(segments), 3)
        for name in (splitting.AUDIO_FILE, splitting.AUDIO_PLAYLIST):  # a ladder's audio is HLS already
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=folder, follow_symlinks=False)
                if "split" in result and stat.S_ISREG(st.st_mode) and st.st_size > 0:
                    result["split"]["audio"] = True
        if "split" in result:
            result["split"].setdefault("audio", False)
    finally:
        os.close(folder)
    return result
