"""Bad media through the whole stack (TranscodeJob -> operator -> standalone agent -> runner -> ffmpeg):
every case ends Failed with reason InputError, a message that says what is wrong, attempts 1 (InputError
is final) and no output; the operator is still alive afterwards and runs a good job. A forced playlist
demuxer never reaches a node: the operator refuses it when it builds the plan (attempts 0, no pod).

The playlist cases show the threat first: plain ffmpeg, given an HLS playlist on the job's volume whose
segment is a media file elsewhere on the machine, copies that file into its output. Ours refuses the
playlist (hls is not on the demuxer whitelist unless spec.input.allowPlaylists) and writes nothing.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, serve_folder
from tests.support.runner import bad_media, make_media
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on loopback over an empty folder (every path is a 404)."""
    (tmp_path / "web").mkdir()
    with serve_folder(tmp_path / "web") as url:
        yield url


def _hls(path: Path, segment: str) -> Path:
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{segment}\n#EXT-X-ENDLIST\n")
    return path


def _unknown_codec(path: Path) -> Path:
    """A Matroska file whose video CodecID no ffmpeg knows (made by renaming a real one's)."""
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10:duration=2",
            "-c:v",
            "mpeg4",
            "-f",
            "matroska",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    data = path.read_bytes()
    assert b"V_MPEG4/ISO/ASP" in data
    path.write_bytes(data.replace(b"V_MPEG4/ISO/ASP", b"V_FFRTMP/NO/NEW"))
    return path


def _cases(media: Path, outside: Path, web: str, rtmp: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """name -> (input url, expected message fragment, extra input fields)."""
    inputs = media / "in"
    bad_media(inputs / "truncated.mp4", "truncated")  # also leaves in/whole.mp4, named by concat-protocol-in-url
    bad_media(inputs / "empty.mp4", "zero-byte")
    bad_media(inputs / "notes.mp4", "not-media")
    _unknown_codec(inputs / "unknown-codec.mkv")
    (inputs / "list.mp4").write_text(f"ffconcat version 1.0\nfile {outside / 'secret.mp4'}\n")
    _hls(inputs / "by-url.m3u8", f"file://{outside / 'secret.ts'}")
    _hls(inputs / "by-path.m3u8", str(outside / "secret.ts"))
    return {
        "missing": ("file:///media/in/does-not-exist.mp4", "No such file or directory", {}),
        "zero-byte": ("file:///media/in/empty.mp4", "Invalid data found", {}),
        "truncated": ("file:///media/in/truncated.mp4", "truncated", {}),
        "wrong-extension": ("file:///media/in/notes.mp4", "Invalid data found", {}),
        "unsupported-codec": ("file:///media/in/unknown-codec.mkv", "Decoder (codec none) not found", {}),
        "unreachable-host": (f"http://127.0.0.1:{free_port()}/talk.mp4", "Connection refused", {}),
        "no-such-host": ("http://no-such-host.invalid/talk.mp4", "no-such-host.invalid", {}),
        "http-404": (f"{web}/gone.mp4", "404", {}),
        "rtmp-nobody-publishes": (f"{rtmp}/nobody-{int(time.time())}", "rtmp://", {}),
        "concat-protocol-in-url": (
            f"file:///media/in/concat:{outside}/secret.mp4|whole.mp4",
            "No such file or directory",
            {},
        ),
        "concat-list-as-mp4": ("file:///media/in/list.mp4", "concat demuxer, which is not allowed", {}),
        "forced-concat-format": ("file:///media/in/list.mp4", "spec.input.format", {"format": "concat"}),
        "hls-segment-by-file-url": ("file:///media/in/by-url.m3u8", "hls demuxer, which is not allowed", {}),
        "hls-segment-by-path": ("file:///media/in/by-path.m3u8", "hls demuxer, which is not allowed", {}),
    }


REFUSED_BY_THE_OPERATOR = {"forced-concat-format"}


@pytest.mark.timeout(420)
def test_given_bad_media_when_submitted_as_jobs_then_each_fails_with_input_error_once_and_the_operator_lives_on(
    stack: Stack, tmp_path: Path, web: str, rtmp_server: str
) -> None:
    media, outside = tmp_path / "media", tmp_path / "elsewhere"
    for folder in (media / "in", media / "out", outside):
        folder.mkdir(parents=True)
    (media / "out").chmod(0o777)  # the runner may run as the pod's non-root user
    make_media(outside / "secret.mp4", seconds=2)
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(outside / "secret.mp4"),
            "-c",
            "copy",
            "-f",
            "mpegts",
            str(outside / "secret.ts"),
        ],
        check=True,
        timeout=60,
    )
    cases = _cases(media, outside, web, rtmp_server)

    # The threat: bare ffmpeg follows the playlists on the volume out to the file elsewhere and copies it.
    for playlist in ("by-url.m3u8", "by-path.m3u8"):
        copied = tmp_path / f"bare-{playlist}.mp4"
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(media / "in" / playlist),
                "-c",
                "copy",
                str(copied),
            ],
            check=True,
            timeout=60,
        )
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(copied)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert float(probe.stdout) > 1.5, "bare ffmpeg should have copied the 2 s file from elsewhere"

    stack.agent(slots=4)
    operator = stack.operator()
    stack.wait_agents()
    operator.wait_active()
    volume = [{"name": "media", "mountPath": "/media", "hostPath": {"path": str(media)}}]
    began = time.time()
    for name, (url, _, extra) in cases.items():
        stack.create(
            name,
            input={"url": url, **extra},
            output={"url": f"file:///media/out/{name}.mp4"},
            volumes=volume,
            maxRetries=3,
        )
    final = stack.wait_all_terminal(list(cases), timeout=240)
    elapsed_s = round(time.time() - began, 1)

    wrong = {}
    for name, (_, fragment, _) in cases.items():
        status = final[name]["status"]
        got = (status.get("phase"), status.get("reason"), status.get("attempts") or 0)
        want = ("Failed", "InputError", 0 if name in REFUSED_BY_THE_OPERATOR else 1)
        if got != want or fragment not in (status.get("message") or ""):
            wrong[name] = {"got": got, "message": status.get("message"), "wanted": fragment}
    assert not wrong, wrong
    assert sorted(p.name for p in (media / "out").iterdir()) == [], "a bad input produced output"
    pods = {p.metadata.labels["ffrtmp.io/job"]: p for p in stack.pods()}
    assert sorted(pods) == sorted(set(cases) - REFUSED_BY_THE_OPERATOR)
    assert all(p.status.phase == "Failed" for p in pods.values())

    assert operator.alive(), operator.log_text()[-3000:]
    stack.create("good-after")
    assert stack.wait_phase("good-after", ("Completed", "Failed"), timeout=90)["phase"] == "Completed"
    assert operator.alive()
    print(f"\nFIGURE bad_inputs={len(cases)} all_failed_input_error_in_s={elapsed_s}")
    for name in cases:
        print(f"FIGURE   {name}: {final[name]['status']['message'][:140]}")
