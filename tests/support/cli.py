"""The `ffrtmp` CLI as a real program for the CLI tests: where its scripts are, a run with text output, the
one-line error check every error path must pass, and jobs in a given phase without an operator."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import ffrtmp_api as api
from kubernetes import client


def installed(name: str) -> str:
    """The script installed next to this interpreter (not a version manager's shim), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


FFRTMP, PLUGIN = installed("ffrtmp"), installed("kubectl-transcode")


def run_cli(
    *args: str, env: dict[str, str] | None = None, exe: str = FFRTMP, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`ffrtmp ARGS...` (or `exe`), stdin closed unless `input` is given."""
    return subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int, starts: str, *, stdout: str = "") -> str:
    """Assert the error is one stderr line starting with `starts`, `stdout` on stdout, exit `code`; return it."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(starts), done.stderr
    assert done.stdout == stdout and "Traceback" not in done.stderr, done.stdout
    return lines[0]


def create_job(api_client: client.ApiClient, namespace: str, name: str, *, phase: str | None = None) -> dict[str, Any]:
    """A small valid TranscodeJob; with `phase`, its status says so (no operator runs in these tests)."""
    custom = client.CustomObjectsApi(api_client)
    job = custom.create_namespaced_custom_object(
        api.GROUP,
        api.VERSION,
        namespace,
        api.PLURAL,
        {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": name},
            "spec": {"input": {"testSource": {"durationSeconds": 1}}, "output": {"url": "rtmp://sink.invalid/live/x"}},
        },
    )
    if phase:
        job = custom.patch_namespaced_custom_object_status(
            api.GROUP, api.VERSION, namespace, api.PLURAL, name, {"status": {"phase": phase}}
        )
    return job
