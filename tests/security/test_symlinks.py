"""Links planted on a shared volume (issue 10, class 1, the runner's part), beyond those in
test_stack_attacks.py: links where the runner writes (the temp file, the final name, HLS segments), links
inside concat lists and in lists named by lists, an `option` directive widening a list entry's whitelists,
a FIFO as input, a link through an intermediate folder. Real jobs on the real stack; a victim file outside
the volume must stay as it was (content and access time), and a link that stays inside the volume works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.jobpods import shared_folder
from tests.support.runner import make_media
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
VICTIM = b"the victim's bytes\n"
LONG_AGO = 3 * 86400


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    media = tmp_path / "media"
    elsewhere = Path(tempfile.mkdtemp(prefix="ffrtmp-victim-"))
    elsewhere.chmod(0o777)
    (elsewhere / "victim").write_bytes(VICTIM)
    (elsewhere / "victim").chmod(0o666)  # writable by anyone: only confinement protects it
    make_media(elsewhere / "secret.mp4", seconds=1)
    (elsewhere / "secret.mp4").chmod(0o644)
    for folder in (media / "in" / "sub", media / "out"):
        folder.mkdir(parents=True)
    make_media(media / "in" / "talk.mp4", seconds=1)
    make_media(media / "in" / "part.mp4", seconds=1)
    inputs, out = media / "in", media / "out"
    # where the runner and ffmpeg write
    (out / ".temp-link.ffrtmp-1.part.mp4").symlink_to(elsewhere / "victim")
    (out / "final-link.mp4").symlink_to(elsewhere / "victim")
    (out / "hls-link_00000.ts").symlink_to(elsewhere / "victim")
    (out / "hls-link.m3u8.tmp").symlink_to(elsewhere / "victim")
    # what the runner reads
    (inputs / "leak.mp4").symlink_to(elsewhere / "secret.mp4")
    (inputs / "via").symlink_to(elsewhere)
    (inputs / "list-link.txt").write_text("ffconcat version 1.0\nfile part.mp4\nfile leak.mp4\n")
    (inputs / "sub" / "inner.txt").write_text("ffconcat version 1.0\nfile ../leak.mp4\nfile escape.mp4\n")
    (inputs / "sub" / "escape.mp4").symlink_to(elsewhere / "secret.mp4")
    (inputs / "list-nested.txt").write_text("ffconcat version 1.0\nfile sub/inner.txt\n")
    (inputs / "list-option.txt").write_text("ffconcat version 1.0\nfile part.mp4\noption format_whitelist hls\n")
    (inputs / "list-quoted.txt").write_text("ffconcat version 1.0\nfile part.mp4\nfile 'le'ak.mp4\n")
    os.mkfifo(inputs / "pipe.mp4")
    (inputs / "alias.mp4").symlink_to("talk.mp4")  # inside the volume: fine
    shared_folder(out)
    secret = elsewhere / "secret.mp4"
    stat = secret.stat()
    os.utime(secret, (stat.st_mtime - LONG_AGO, stat.st_mtime))
    try:
        yield {"media": media, "elsewhere": elsewhere, "aged": secret.stat().st_atime}
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def _jobs() -> dict[str, tuple[dict[str, Any], str]]:
    """job -> (spec overrides, "completed" or a fragment the InputError message holds)."""
    return {
        "temp-link": (
            {"input": {"url": "file:///media/in/talk.mp4"}, "output": {"url": "file:///media/out/temp-link.mp4"}},
            "completed",
        ),
        "final-link": (
            {"input": {"url": "file:///media/in/talk.mp4"}, "output": {"url": "file:///media/out/final-link.mp4"}},
            "completed",
        ),
        "hls-link": (
            {"input": {"url": "file:///media/in/talk.mp4"}, "output": {"url": "file:///media/out/hls-link.m3u8"}},
            "completed",
        ),
        "alias-inside": (
            {"input": {"url": "file:///media/in/alias.mp4"}, "output": {"url": "file:///media/out/alias.mp4"}},
            "completed",
        ),
        "through-folder-link": (
            {"input": {"url": "file:///media/in/via/secret.mp4"}, "output": {"url": "file:///media/out/via.mp4"}},
            "leads outside its volume",
        ),
        "list-entry-link": (
            {
                "input": {"url": "file:///media/in/list-link.txt", "allowPlaylists": True},
                "output": {"url": "file:///media/out/l1.mp4"},
            },
            "names leak.mp4",
        ),
        "list-nested-link": (
            {
                "input": {"url": "file:///media/in/list-nested.txt", "allowPlaylists": True},
                "output": {"url": "file:///media/out/l2.mp4"},
            },
            "names escape.mp4",
        ),
        "list-option": (
            {
                "input": {"url": "file:///media/in/list-option.txt", "allowPlaylists": True},
                "output": {"url": "file:///media/out/l3.mp4"},
            },
            "'option' directives",
        ),
        "list-quoted-link": (
            {
                "input": {"url": "file:///media/in/list-quoted.txt", "allowPlaylists": True},
                "output": {"url": "file:///media/out/l4.mp4"},
            },
            "names leak.mp4",
        ),
        "fifo-input": (
            {"input": {"url": "file:///media/in/pipe.mp4"}, "output": {"url": "file:///media/out/fifo.mp4"}},
            "not a regular file",
        ),
    }


@pytest.mark.timeout(600)
def test_given_links_where_the_runner_reads_and_writes_then_nothing_outside_the_volume_is_touched(
    stack: Stack, world: dict[str, Any]
) -> None:
    media, elsewhere = world["media"], world["elsewhere"]
    volume = [{"name": "media", "mountPath": "/media", "hostPath": {"path": str(media)}}]
    jobs = _jobs()
    stack.agent(slots=4)
    operator = stack.operator()
    stack.wait_agents()
    operator.wait_active()
    for name, (spec, _) in jobs.items():
        stack.create(name, volumes=volume, maxRetries=1, audio={"codec": "copy"}, **spec)
    final = stack.wait_all_terminal(list(jobs), timeout=400)

    wrong = {}
    for name, (_, expected) in jobs.items():
        status = final[name]["status"]
        if expected == "completed":
            ok = status.get("phase") == "Completed"
        else:
            ok = (status.get("phase"), status.get("reason")) == ("Failed", "InputError") and expected in (
                status.get("message") or ""
            )
        if not ok:
            wrong[name] = (status.get("phase"), status.get("reason"), status.get("message"))
    assert not wrong, wrong
    assert (elsewhere / "victim").read_bytes() == VICTIM, "a job wrote through a link"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret.mp4", "victim"]
    out = media / "out"
    for name in ("temp-link.mp4", "final-link.mp4", "hls-link.m3u8", "hls-link_00000.ts"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0, name
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(out / "final-link.mp4")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(probe.stdout) > 0.5
    control = make_media(elsewhere / "control.mp4", seconds=1)
    before = control.stat().st_atime
    os.utime(control, (before - LONG_AGO, control.stat().st_mtime))
    control.read_bytes()
    if control.stat().st_atime != before - LONG_AGO:  # reads are visible here: the secret was not read
        assert (elsewhere / "secret.mp4").stat().st_atime == world["aged"], "a job read the secret through a link"
    print(f"\nFIGURE symlink_attacks={len(jobs)} victim_written=0")
