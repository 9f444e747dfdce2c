"""Bad inputs end to end: the runner exits 10 (InputError, final) with a termination message that tells
the user what is wrong with the input, and leaves no output behind. Timeouts exit 13.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import pytest
from kubernetes import client

from tests.support import free_port, serve_folder
from tests.support.runner import (
    RunnerProcess,
    bad_media,
    build,
    create_job,
    get_job,
    make_media,
    runner_kubeconfig,
)


@pytest.fixture
def http_media(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server over tmp_path/web (for the 404 case)."""
    (tmp_path / "web").mkdir()
    with serve_folder(tmp_path / "web") as url:
        yield url


def prepare(media: Path, case: str) -> str:
    """Creates the bad input for `case` and returns its URL."""
    inputs = media / "in"
    if case == "missing":
        return f"file://{inputs}/does-not-exist.mp4"
    if case == "zero-byte":
        return f"file://{bad_media(inputs / 'empty.mp4', 'zero-byte')}"
    if case == "truncated":  # ffmpeg itself exits 0 after "partial file" warnings; the runner must not.
        return f"file://{bad_media(inputs / 'truncated.mp4', 'truncated')}"
    if case == "not-media":
        return f"file://{bad_media(inputs / 'notes.mp4', 'not-media')}"
    if case == "playlist":
        # A crafted playlist naming another local file: refused unless spec.input.allowPlaylists.
        make_media(inputs / "secret.mp4", seconds=2)
        (inputs / "list.m3u8").write_text(
            f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{inputs}/secret.mp4\n#EXT-X-ENDLIST\n"
        )
        return f"file://{inputs}/list.m3u8"
    if case == "unreachable":
        return f"http://127.0.0.1:{free_port()}/talk.mp4"  # nothing listens there
    if case == "no-such-host":
        return "http://no-such-host.invalid/talk.mp4"
    raise ValueError(case)


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing", "No such file or directory"),
        ("zero-byte", "Invalid data found"),
        ("truncated", "truncated"),
        ("not-media", "Invalid data found"),
        ("playlist", "hls demuxer, which is not allowed"),
        ("unreachable", "Connection refused"),
        ("no-such-host", "cannot read the input http://no-such-host.invalid/talk.mp4"),
        ("http-404", "404"),
    ],
)
def test_given_bad_input_when_run_then_exit_10_input_error_and_no_output(
    api_client: client.ApiClient,
    control_plane: Any,
    namespace: str,
    tmp_path: Path,
    http_media: str,
    case: str,
    fragment: str,
) -> None:
    media = tmp_path / "media"
    (media / "in").mkdir(parents=True)
    (media / "out").mkdir()
    url = f"{http_media}/gone.mp4" if case == "http-404" else prepare(media, case)
    job = create_job(
        api_client,
        namespace,
        "bad",
        {
            "input": {"url": url},
            "output": {"url": f"file://{media}/out/bad.mp4"},
            "video": {"preset": "ultrafast"},
            "volumes": [{"name": "media", "mountPath": str(media), "hostPath": {"path": str(media)}}],
        },
    )
    kubeconfig = runner_kubeconfig(api_client, control_plane, namespace, tmp_path / "kubeconfig")
    runner = RunnerProcess(build(job), kubeconfig=kubeconfig, work=tmp_path)
    try:
        code = runner.wait(timeout=90)
    finally:
        runner.close()
    assert code == api.RUNNER_EXIT_CODES["InputError"] == 10, runner.log_text()[-3000:]
    message = runner.termination()
    assert message["reason"] == "InputError"
    assert fragment in message["message"], message
    assert list((media / "out").iterdir()) == []
    assert "result" not in (get_job(api_client, namespace, "bad").get("status") or {})


def test_given_timeout_when_encode_runs_longer_then_exit_13_and_no_output(
    api_client: client.ApiClient, control_plane: Any, namespace: str, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    (media / "out").mkdir(parents=True)
    job = create_job(
        api_client,
        namespace,
        "slow",
        {
            "input": {"testSource": {"width": 1280, "height": 720, "durationSeconds": 600}},
            "output": {"url": f"file://{media}/out/slow.mp4"},
            "video": {"preset": "slow"},
            "timeoutSeconds": 3,
            "volumes": [{"name": "media", "mountPath": str(media), "hostPath": {"path": str(media)}}],
        },
    )
    kubeconfig = runner_kubeconfig(api_client, control_plane, namespace, tmp_path / "kubeconfig")
    runner = RunnerProcess(build(job), kubeconfig=kubeconfig, work=tmp_path)
    try:
        code = runner.wait(timeout=30)
    finally:
        runner.close()
    assert code == 13, runner.log_text()[-3000:]
    assert runner.termination() == {"reason": "Timeout", "message": "the job ran longer than spec.timeoutSeconds (3 s)"}
    assert list((media / "out").iterdir()) == []
