"""An ABR ladder's output folder in the runner (plans with `renditions`): the hidden per-attempt temp folder
made in the opened output folder before the encode (launch), the audio rendition taken out when the input
has no audio, the HLS master playlist rewritten with measured bandwidths, the folder renamed into place on
success (removed on failure or cancel), and status.result with one entry per rendition.

Files are reached as launch.py reaches them (confine.py): through folder fds, one component at a time
with O_NOFOLLOW, and ffmpeg gets /proc/self/fd paths; a link planted in a shared volume leads nowhere.
"""
# Over 400 lines on purpose: the ladder's run, playlist rewrite and per-rendition measurement share one temp-folder lifecycle.

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import posixpath
import shutil
import stat
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import ffrtmp_api as api
from ffrtmp_api import ladder

from . import quality, scores
from .confine import Confined, OutputFolder, fd_path, open_folder

if TYPE_CHECKING:  # imported where used: only ladders read playlists, and every runner start pays an import
    from . import playlists

log = logging.getLogger("ffrtmp.runner")
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
PROBE_TIMEOUT = 60


def is_ladder(plan: api.ExecutionPlan) -> bool:
    return bool(plan.renditions)


# ---------------------------------------------------------------------------------------- launch


def launch_output(plan: api.ExecutionPlan, launch: Any) -> api.ExecutionPlan:
    """For launch.py: opens the output's parent folder (launch.folder), makes the temp folder in it (for HLS
    with a folder per rendition and one for the audio: the hls muxer makes none for file: URLs), and
    rewrites the argv to name it by fd. Raises Confined."""
    directory = posixpath.dirname(plan.outputUrl)
    folder = launch.folder = OutputFolder(directory, [v.mountPath for v in plan.volumes])
    temp = _name(plan.tempOutputUrl or "")
    try:
        remove_tree(folder.fd, temp)  # ours: a hidden per-attempt name
        os.mkdir(temp, dir_fd=folder.fd)
        temp_fd = launch.keep(os.open(temp, _DIR, dir_fd=folder.fd))
        if plan.outputContainer == "hls":
            for name in [r.name for r in plan.renditions] + [ladder.AUDIO_FOLDER]:
                os.mkdir(name, dir_fd=temp_fd)
    except OSError as exc:
        raise Confined(f"cannot create the output folder {plan.tempOutputUrl}: {exc.strerror}", final=False) from None
    # A plain path, not "file:": for %v in a name the hls muxer mkdirs the variant folder by the name as given,
    # so "file:/proc/..." is made relative to the cwd (a read-only / in a job pod: ENOENT, else litter there).
    # The fd path starts with "/" and the rest are DNS labels: ffmpeg reads it as a file, never a protocol.
    given, written = fd_path(temp_fd), "file:" + (plan.tempOutputUrl or "")
    argv = [given + a[len(written) :] if a.startswith(written + "/") else a for a in plan.ffmpegArgs]
    launch.shown[given] = plan.tempOutputUrl or ""
    if plan.optionalAudio and not has_audio(plan.probeArgs, env=launch.env, pass_fds=launch.pass_fds):
        log.info("the input has no audio stream: the ladder is encoded without an audio rendition")
        argv = ladder.without_audio(argv)
    return plan.model_copy(update={"ffmpegArgs": argv})


def audio_probe_argv(probe_args: list[str]) -> list[str] | None:
    """The plan's duration probe (same whitelists, options and input) turned into a probe for audio."""
    if "-show_entries" not in probe_args or "-of" not in probe_args:
        return None
    argv = list(probe_args)
    argv[argv.index("-of") + 1] = "csv=p=0"
    at = argv.index("-show_entries")
    argv[at + 1] = "stream=codec_type"
    return argv[:at] + ["-select_streams", "a"] + argv[at:]


def has_audio(probe_args: list[str], *, env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()) -> bool:
    """Whether the input has an audio stream; True when the probe cannot tell (ffmpeg then says why)."""
    argv = audio_probe_argv(probe_args)
    if argv is None:
        return True
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False, env=env, pass_fds=pass_fds
        )
    except subprocess.TimeoutExpired:
        return True
    return done.returncode != 0 or "audio" in done.stdout


# ------------------------------------------------------------------------------------ placement


def place(plan: api.ExecutionPlan, folder: OutputFolder) -> None:
    """Completes the temp folder (the HLS master playlist) and renames it to the output's name. An output
    of that name from an earlier run is moved aside first and removed after, so the new folder appears
    whole in one rename, as a file output does. Raises RuntimeError or OSError."""
    temp, final = _name(plan.tempOutputUrl or ""), _name(posixpath.basename(plan.outputUrl))
    manifest = ladder.MANIFESTS[plan.outputContainer]
    with _opened(folder.fd, temp) as temp_fd:
        if plan.split is not None and plan.split.role == "stitch":  # a split ladder: its slices' playlists joined
            from . import split

            split.join_ladder(plan, temp_fd)
        if _size(temp_fd, manifest) <= 0:
            raise RuntimeError(f"ffmpeg wrote no {manifest}")
        if plan.outputContainer == "hls":
            write_master(plan, temp_fd)
    if final in folder.listing():
        old = f".{final}.ffrtmp-old-{plan.attempt}"
        remove_tree(folder.fd, old)
        folder.rename(final, old)
        folder.rename(temp, final)
        remove_tree(folder.fd, old)
    else:
        folder.rename(temp, final)
    if plan.split is not None and plan.split.role == "stitch":  # the work folder has served
        from . import split

        split.remove_work(plan)


def remove_partial(plan: api.ExecutionPlan, folder: OutputFolder | None) -> None:
    if folder is not None:
        remove_tree(folder.fd, _name(plan.tempOutputUrl or ""))


def remove_final(plan: api.ExecutionPlan, folder: OutputFolder | None) -> None:
    if folder is not None:
        remove_tree(folder.fd, _name(posixpath.basename(plan.outputUrl)))


def remove_tree(dir_fd: int, name: str) -> None:
    """Removes `name` in the folder `dir_fd`: a folder with what it holds, never following a link (a link
    is unlinked itself); absent is fine."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    try:
        if stat.S_ISDIR(mode):
            shutil.rmtree(name, dir_fd=dir_fd)  # fd-based: links inside are unlinked, not followed
        else:
            os.unlink(name, dir_fd=dir_fd)
    except OSError as exc:
        log.warning("cannot remove %s: %s", name, exc)


def write_master(plan: api.ExecutionPlan, folder_fd: int) -> None:
    """Rewrites ffmpeg's master.m3u8 with measured BANDWIDTH/AVERAGE-BANDWIDTH, RESOLUTION, FRAME-RATE and
    CODECS per rendition (ffmpeg's own codec strings where it wrote them), the audio as one shared rendition."""
    from . import playlists

    master = ladder.MANIFESTS["hls"]
    theirs = {v.uri: v.attributes.get("CODECS", "") for v in playlists.master_variants(_read(folder_fd, master))}
    audio_playlist = f"{ladder.AUDIO_FOLDER}/index.m3u8"
    audio = _hls_rates(folder_fd, audio_playlist)
    audio_codec = None
    entries = []
    for rendition in plan.renditions:
        playlist = rendition.playlist or ""
        video_codec, their_audio = playlists.split_codecs(theirs.get(playlist, ""))
        video = _first_segment(folder_fd, playlist).get("video", {})
        entries.append(
            playlists.MasterEntry(
                playlist,
                rendition.width,
                rendition.height,
                _hls_rates(folder_fd, playlist) or playlists.Rates(0, 0),
                video_codec or playlists.codec_string(video) or "avc1.640028",
                _rate(video.get("r_frame_rate")),
            )
        )
        audio_codec = audio_codec or their_audio
    if audio is not None:
        audio_codec = audio_codec or playlists.codec_string(_first_segment(folder_fd, audio_playlist).get("audio", {}))
        entries = [dataclasses.replace(e, codecs=f"{e.codecs},{audio_codec or 'mp4a.40.2'}") for e in entries]
    text = playlists.master_playlist(entries, audio_uri=audio_playlist if audio else None, audio_rates=audio)
    fd = os.open(
        master + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=folder_fd
    )
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.rename(master + ".tmp", master, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)


# ------------------------------------------------------------------------------------- reading


@contextlib.contextmanager
def _opened(dir_fd: int, relative: str, *, flags: int = _DIR) -> Iterator[int]:
    """An fd of `relative` (a/b/c) below the folder `dir_fd`, every component opened with O_NOFOLLOW."""
    parts = [p for p in relative.split("/") if p]
    fds: list[int] = []
    try:
        current = dir_fd
        for i, part in enumerate(parts):
            if part in (".", ".."):
                raise OSError(f"{relative}: not a plain relative path")
            current = os.open(part, flags if i == len(parts) - 1 else _DIR, dir_fd=current)
            fds.append(current)
        yield current
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _read(dir_fd: int, relative: str) -> str:
    try:
        with (
            _opened(dir_fd, relative, flags=_FILE) as fd,
            os.fdopen(os.dup(fd), encoding="utf-8", errors="replace") as fh,
        ):
            return fh.read(4 * 1024 * 1024)
    except OSError:
        return ""


def _size(dir_fd: int, relative: str) -> int:
    folder, name = posixpath.split(relative)
    try:
        with _opened(dir_fd, folder) as fd:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _segments(dir_fd: int, playlist: str) -> list[playlists.Segment]:
    from . import playlists

    return [s for s in playlists.media_segments(_read(dir_fd, playlist)) if "/" not in s.uri]


def _hls_rates(dir_fd: int, playlist: str) -> playlists.Rates | None:
    from . import playlists

    segments = _segments(dir_fd, playlist)
    if not segments:
        return None
    base = posixpath.dirname(playlist)
    return playlists.rates(segments, {s.uri: _size(dir_fd, posixpath.join(base, s.uri)) for s in segments})


def _first_segment(dir_fd: int, playlist: str) -> dict[str, dict[str, Any]]:
    """ffprobe of a playlist's first segment: {"video": stream, "audio": stream} (codec, profile, level)."""
    segments = _segments(dir_fd, playlist)
    if not segments:
        return {}
    try:
        with _opened(dir_fd, posixpath.join(posixpath.dirname(playlist), segments[0].uri), flags=_FILE) as fd:
            argv = [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type,codec_name,profile,level,r_frame_rate",
                "-of",
                "json",
                "file:" + fd_path(fd),
            ]
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False, pass_fds=(fd,)
            )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if done.returncode != 0:
        return {}
    streams = json.loads(done.stdout or "{}").get("streams") or []
    return {s["codec_type"]: s for s in reversed(streams) if s.get("codec_type") in ("video", "audio")}


def _rate(text: Any) -> float | None:
    try:
        num, den = str(text).split("/")
        return float(num) / float(den) if float(den) else None
    except ValueError:
        return None


def _name(name: str) -> str:
    name = posixpath.basename(name)
    if not name or name in (".", ".."):
        raise Confined(f"{name!r} is not a folder name")
    return name


# --------------------------------------------------------------------------------------- result


def measure(
    plan: api.ExecutionPlan, *, wall_seconds: float, joules: float | None, spawn: dict[str, Any] | None = None
) -> dict[str, Any]:
    """status.result of a finished ladder (its folder in place at plan.outputUrl). psnr/ssim/vmaf and
    qoeScore at the top level are the highest rendition's; `spawn`: env and pass_fds for ffmpeg."""
    spawn = dict(spawn or {})
    result: dict[str, Any] = {"wallSeconds": round(wall_seconds, 3), "encoder": plan.encoder}
    try:
        folder_fd = open_folder(plan.outputUrl, [v.mountPath for v in plan.volumes], what="the output folder")
    except Confined as exc:
        log.warning("cannot measure the output: %s", exc)
        return {**result, "unavailable": list(plan.qualityMetrics)}
    try:
        return _measure(plan, folder_fd, result, joules=joules, spawn=spawn)
    finally:
        os.close(folder_fd)


def _measure(
    plan: api.ExecutionPlan, folder_fd: int, result: dict[str, Any], *, joules: float | None, spawn: dict[str, Any]
) -> dict[str, Any]:
    result["outputBytes"] = _tree_size(folder_fd)
    spawn["pass_fds"] = (*spawn.get("pass_fds", ()), folder_fd)
    unavailable: list[str] = []
    renditions = []
    for rendition, fact in zip(plan.renditions, _rendition_facts(plan, folder_fd), strict=True):
        entry: dict[str, Any] = {"name": rendition.name, "width": rendition.width, "height": rendition.height, **fact}
        if plan.qualityMetrics and plan.inputArgs:
            ref, stream = _media_ref(plan, folder_fd, rendition)
            measured = _quality(plan, ref, stream, rendition, spawn)
            entry.update(psnr=measured.psnr, ssim=measured.ssim, vmaf=measured.vmaf)
            unavailable += [m for m in measured.unavailable if m not in unavailable]
        renditions.append({k: v for k, v in entry.items() if v is not None})
    top = max(renditions, key=lambda r: r["width"] * r["height"])
    durations = [r["durationSeconds"] for r in renditions if r.get("durationSeconds")]
    result.update(
        durationSeconds=round(max(durations), 3) if durations else None,
        codec=top.get("codec"),
        width=top["width"],
        height=top["height"],
        psnr=top.get("psnr"),
        ssim=top.get("ssim"),
        vmaf=top.get("vmaf"),
        renditions=renditions,
    )
    result["qoeScore"] = scores.qoe_score(psnr=top.get("psnr"), ssim=top.get("ssim"), vmaf=top.get("vmaf"))
    if joules is None:
        unavailable.append("energy")
    result["energyJoules"] = joules
    result["efficiencyScore"] = scores.efficiency_score(
        output_seconds=result.get("durationSeconds"), energy_joules=joules
    )
    result["unavailable"] = unavailable
    return {k: v for k, v in result.items() if v is not None}


def _quality(
    plan: api.ExecutionPlan, ref: str, stream: str, rendition: api.ladder.PlanRendition, spawn: dict[str, Any]
) -> quality.Scores:
    """quality.measure of one rendition; ffmpeg gets the runner's env and fds (the folder fd among them)."""
    return quality.measure(
        output_ref=ref,
        input_args=plan.inputArgs,
        metrics=plan.qualityMetrics,
        width=rendition.width,
        height=rendition.height,
        output_stream=stream,
        spawn=spawn,
    )


def _media_ref(plan: api.ExecutionPlan, folder_fd: int, rendition: api.ladder.PlanRendition) -> tuple[str, str]:
    """(ffmpeg input, stream specifier) of one rendition: its HLS media playlist, or the DASH manifest's
    n-th video stream (ffmpeg's dash demuxer keeps the Representations' order)."""
    if plan.outputContainer == "hls":
        return "file:" + fd_path(folder_fd, rendition.playlist or ""), "0:v"
    return "file:" + fd_path(folder_fd, ladder.MANIFESTS["dash"]), f"0:v:{rendition.stream}"


def _rendition_facts(plan: api.ExecutionPlan, folder_fd: int) -> list[dict[str, Any]]:
    """Per rendition: codec, segments, duration, average and peak bitrate, from its playlist or the MPD."""
    from . import playlists

    if plan.outputContainer == "hls":
        facts = []
        for rendition in plan.renditions:
            playlist = rendition.playlist or ""
            video = _first_segment(folder_fd, playlist).get("video", {})
            facts.append(
                _fact(
                    video.get("codec_name"),
                    [s.seconds for s in _segments(folder_fd, playlist)],
                    _hls_rates(folder_fd, playlist),
                )
            )
        return facts
    try:
        reps = [
            r
            for r in playlists.dash_representations(_read(folder_fd, ladder.MANIFESTS["dash"]))
            if r.content == "video"
        ]
    except ValueError as exc:
        log.warning("cannot read the DASH manifest: %s", exc)
        reps = []
    names = os.listdir(folder_fd)
    facts = []
    for rendition in plan.renditions:
        rep = reps[rendition.stream] if rendition.stream < len(reps) else None
        if rep is None:
            facts.append({})
            continue
        size = sum(_size(folder_fd, n) for n in names if n == f"init-{rep.id}.m4s" or n.startswith(f"chunk-{rep.id}-"))
        seconds = sum(rep.segments)
        average = round(size * 8 / seconds) if seconds else 0
        codec = _DASH_CODECS.get((rep.codecs or "").split(".")[0])
        facts.append(_fact(codec, rep.segments, playlists.Rates(max(average, rep.bandwidth or 0), average)))
    return facts


_DASH_CODECS = {"avc1": "h264", "avc3": "h264", "hvc1": "hevc", "hev1": "hevc", "vp09": "vp9", "av01": "av1"}


def _fact(codec: str | None, segments: list[float], rates: playlists.Rates | None) -> dict[str, Any]:
    return {
        "codec": codec,
        "segments": len(segments),
        "durationSeconds": round(sum(segments), 3) if segments else None,
        "bitrateKbps": round(rates.average / 1000, 1) if rates else None,
        "peakBitrateKbps": round(rates.peak / 1000, 1) if rates else None,
    }


def _tree_size(dir_fd: int) -> int:
    total = 0
    for _, _, files, fd in os.fwalk(dir_fd=dir_fd, top="."):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total
