"""The local processes of job pods: the command that starts one (the mount-namespace exec helper, run as
`python -I -S <file>`), the signals a kubelet would send, pid files that let a restarted agent find a
process it started, and reads of the files a process leaves (log tail, termination log, start error).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

import ffrtmp_api as api

from . import mountns

log = logging.getLogger(__name__)


def helper_argv(argv: Sequence[str], *, mounts: Sequence[Sequence[object]], chdir: str, start_error: Path) -> list[str]:
    """The command that binds the pod's volumes (in a private mount namespace when it has any), changes
    directory, then execs the container's argv (same pid)."""
    spec = {"mounts": [list(m) for m in mounts], "chdir": chdir, "startError": str(start_error)}
    # The helper needs the standard library only: -I -S skip site-packages and .pth processing (~30 ms
    # CPU of every pod start); its path is resolved here, not by a module search in the pod.
    helper = [sys.executable, "-I", "-S", mountns.__file__, json.dumps(spec), "--", *argv]
    if mounts:
        helper = ["unshare", "--mount", "--propagation", "private", "--", *helper]
    return helper


def base_env(pod: dict[str, Any], pod_dir: Path) -> dict[str, str]:
    """What a container gets besides its own env: a PATH that finds ffmpeg and ffrtmp-runner, a home."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(pod_dir),
        "HOSTNAME": pod["metadata"]["name"],
        api.ENV_TERMINATION_LOG: str(pod_dir / "termination-log"),
    }
    for name in ("LANG", "LC_ALL", "TZ", "VIRTUAL_ENV"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def working_dir(pod: dict[str, Any]) -> str | None:
    return ((pod.get("spec") or {}).get("containers") or [{}])[0].get("workingDir")


def check_unshare() -> str | None:
    """None when `unshare --mount` works here, else why not."""
    try:
        out = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if out.returncode == 0 else (out.stderr.strip() or f"exit {out.returncode}")


def signal_main(pid: int, sig: int) -> None:
    """Like a kubelet: SIGTERM goes to the container's main process only (the runner forwards it to
    ffmpeg as it sees fit); SIGKILL at the deadline and after exit goes to the whole process group."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def write_pidfile(pod_dir: Path, pid: int) -> None:
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        created = 0.0
    (pod_dir / "pid").write_text(f"{pid} {created}\n", encoding="utf-8")


def kill_leftover(pod_dir: Path) -> None:
    """Kill the process group a previous agent started for this pod, if it still runs (same pid+start)."""
    try:
        pid_text, created_text = (pod_dir / "pid").read_text(encoding="utf-8").split()
        pid, created = int(pid_text), float(created_text)
        if abs(psutil.Process(pid).create_time() - created) < 0.01:
            log.info("killing leftover process group %d of %s", pid, pod_dir.name)
            signal_group(pid, signal.SIGKILL)
    except (OSError, ValueError, psutil.Error):
        pass


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def read_tail(path: Path, limit: int = 64 * 1024) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""

