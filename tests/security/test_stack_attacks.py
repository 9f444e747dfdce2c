"""Attacks that pass the API and the operator's policy and reach the runner and ffmpeg on a real standalone
node: lists and playlists on the job's volume or on a loopback web server that name a file elsewhere on the
machine, and paths that only look like they leave the volume. Each ends Failed with InputError; nothing is
written to the volume, and nothing was read: the secret files elsewhere keep their access time (set far in
the past, so the kernel's relatime updates it on any read), checked against a control file that is read.

Symlinks planted on a shared volume (a link to a file elsewhere as the input, an output folder that is a
link) must not lead outside it either: the runner resolves real paths and opens with O_NOFOLLOW
(agent/ffrtmp_agent/runner/confine.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import serve_folder
from tests.support.runner import make_media
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
LONG_AGO = 3 * 86400  # relatime updates an access time older than a day, or not newer than the mtime


def _age(path: Path) -> float:
    stat = path.stat()
    os.utime(path, (stat.st_mtime - LONG_AGO, stat.st_mtime))
    return path.stat().st_atime


def _hls(path: Path, segment: str) -> None:
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{segment}\n#EXT-X-ENDLIST\n")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The job's volume (media/in, media/out), a folder elsewhere with the secrets, a web server whose
    playlist names a secret by file:// URL, and the secrets' aged access times. Whatever uid the runner
    has, permissions never stop it: the secrets are world-readable in a world-writable folder outside
    pytest's private tmp, and the output folder is world-writable, so only confinement can."""
    media, web = tmp_path / "media", tmp_path / "web"
    elsewhere = Path(tempfile.mkdtemp(prefix="ffrtmp-secrets-"))
    for folder in (media / "in" / "sub", media / "out", web):
        folder.mkdir(parents=True)
    for folder in (media / "out", elsewhere):
        folder.chmod(0o777)
    make_media(elsewhere / "secret.mp4", seconds=2)
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(elsewhere / "secret.mp4"),
            "-c",
            "copy",
            "-f",
            "mpegts",
            str(elsewhere / "secret.ts"),
        ],
        check=True,
        timeout=60,
    )
    make_media(media / "in" / "sub" / "own.mp4", seconds=1)
    inputs = media / "in"
    (inputs / "abs.txt").write_text(f"ffconcat version 1.0\nfile {elsewhere / 'secret.mp4'}\n")
    # Relative names as the runner sees the list, at /media/in: up to / and down to the secret.
    (inputs / "dotdot.txt").write_text(f"ffconcat version 1.0\nfile ../..{elsewhere}/secret.mp4\n")
    (inputs / "proto.txt").write_text(f"ffconcat version 1.0\nfile file:{elsewhere / 'secret.mp4'}\n")
    (inputs / "sub-dotdot.txt").write_text(f"ffconcat version 1.0\nfile sub/../../..{elsewhere}/secret.mp4\n")
    _hls(inputs / "by-path.m3u8", str(elsewhere / "secret.ts"))
    _hls(web / "remote.m3u8", f"file://{elsewhere / 'secret.ts'}")
    (inputs / "link.mp4").symlink_to(elsewhere / "secret.mp4")
    (media / "out" / "linked").symlink_to(elsewhere)
    with serve_folder(web) as url:
        control = elsewhere / "control.mp4"
        make_media(control, seconds=1)
        for secret in (elsewhere / "secret.mp4", elsewhere / "secret.ts", control):
            secret.chmod(0o644)
        aged = {p.name: _age(p) for p in (elsewhere / "secret.mp4", elsewhere / "secret.ts", control)}
        try:
            yield {"media": media, "elsewhere": elsewhere, "web": url, "aged": aged}
        finally:
            shutil.rmtree(elsewhere, ignore_errors=True)


def _attacks(web: str, elsewhere: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """job name -> (input, text the failure message must contain)."""
    return {
        "concat-absolute-path": (
            {"url": "file:///media/in/abs.txt", "allowPlaylists": True},
            "Operation not permitted",
        ),
        "concat-dot-dot": ({"url": "file:///media/in/dotdot.txt", "allowPlaylists": True}, "Operation not permitted"),
        "concat-protocol": ({"url": "file:///media/in/proto.txt", "allowPlaylists": True}, "Operation not permitted"),
        "concat-nested-dot-dot": (
            {"url": "file:///media/in/sub-dotdot.txt", "allowPlaylists": True},
            "Operation not permitted",
        ),
        "hls-on-volume-even-allowed": (
            {"url": "file:///media/in/by-path.m3u8", "allowPlaylists": True},
            "hls demuxer, which is not allowed",
        ),
        "hls-over-http-to-a-file": ({"url": f"{web}/remote.m3u8", "allowPlaylists": True}, "remote.m3u8"),
        "unicode-dot-lookalikes": (
            {"url": f"file:///media/%EF%BC%8E%EF%BC%8E{elsewhere}/secret.mp4"},
            "No such file or directory",
        ),
        "one-dot-leader-lookalikes": (
            {"url": f"file:///media/%E2%80%A4%E2%80%A4{elsewhere}/secret.mp4"},
            "No such file or directory",
        ),
    }


@pytest.mark.timeout(400)
def test_given_playlists_and_lookalike_paths_when_run_on_a_node_then_input_error_and_nothing_read_or_written(
    stack: Stack, world: dict[str, Any]
) -> None:
    media, elsewhere = world["media"], world["elsewhere"]
    volume = [{"name": "media", "mountPath": "/media", "hostPath": {"path": str(media)}}]
    attacks = _attacks(world["web"], elsewhere)
    stack.agent(slots=4)
    operator = stack.operator()
    stack.wait_agents()
    operator.wait_active()
    for name, (input_, _) in attacks.items():
        stack.create(
            name,
            input=input_,
            output={"url": f"file:///media/out/{name}.mp4"},
            volumes=volume,
            audio={"codec": "copy"},
            maxRetries=2,
        )
    final = stack.wait_all_terminal(list(attacks), timeout=240)

    wrong = {}
    for name, (_, fragment) in attacks.items():
        status = final[name]["status"]
        got = (status.get("phase"), status.get("reason"))
        if got != ("Failed", "InputError") or fragment not in (status.get("message") or ""):
            wrong[name] = {"got": got, "message": status.get("message"), "want": fragment}
    assert not wrong, wrong
    written = sorted(str(p.relative_to(media)) for p in (media / "out").rglob("*") if p.name != "linked")
    assert written == [], f"an attack wrote {written}"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["control.mp4", "secret.mp4", "secret.ts"]
    _assert_not_read(elsewhere, world["aged"])
    print(f"\nFIGURE stack_attacks={len(attacks)} input_error=all secrets_read=0")


def _assert_not_read(elsewhere: Path, aged: dict[str, float]) -> None:
    control = elsewhere / "control.mp4"
    control.read_bytes()
    if control.stat().st_atime == aged["control.mp4"]:
        pytest.skip("this filesystem does not update access times (noatime): reads cannot be detected")
    read = [n for n in ("secret.mp4", "secret.ts") if (elsewhere / n).stat().st_atime != aged[n]]
    assert read == [], f"a job read {read}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("attack", ["input-symlink", "output-folder-symlink"])
def test_given_a_symlink_on_the_volume_when_run_then_it_does_not_lead_outside(
    stack: Stack, world: dict[str, Any], attack: str
) -> None:
    media, elsewhere = world["media"], world["elsewhere"]
    volume = [{"name": "media", "mountPath": "/media", "hostPath": {"path": str(media)}}]
    if attack == "input-symlink":
        spec = {"input": {"url": "file:///media/in/link.mp4"}, "output": {"url": "file:///media/out/x.mp4"}}
    else:
        spec = {"output": {"url": "file:///media/out/linked/planted.mp4"}}
    stack.agent(slots=1)
    operator = stack.operator()
    stack.wait_agents()
    operator.wait_active()
    stack.create(attack, volumes=volume, maxRetries=0, **spec)
    status = stack.wait_phase(attack, ("Completed", "Failed"), timeout=120)
    time.sleep(0.5)
    assert not (elsewhere / "planted.mp4").exists(), "a job wrote outside its volume through a symlink"
    assert not (media / "out" / "x.mp4").exists(), "a job copied a file from outside its volume"
    assert status["phase"] == "Failed" and status["reason"] == "InputError", status
