"""The local processes of job pods: the command that starts one (the mount-namespace exec helper, run as
`python -I -S <file>`), the signals a kubelet would send, pid files that let a restarted agent find a
process it started, and reads of the files a process leaves (log tail, termination log, start error).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import psutil

from . import mountns
from .admit import Identity

log = logging.getLogger(__name__)
HOME = "home"  # the pod user's folder inside the pod's folder
POD_HOME = "/run/ffrtmp/pod"  # where a pod sees its folder (bind-mounted in its private mount namespace)


def helper_argv(
    argv: Sequence[str],
    *,
    mounts: Sequence[Sequence[object]],
    chdir: str,
    start_error: Path,
    identity: Identity | None = None,
    cgroups: Sequence[str] = (),
) -> list[str]:
    """The command that binds the pod's volumes (in private mount and PID namespaces when it has any),
    joins the pod's cgroups, changes directory, becomes the pod's user, then execs the container's argv."""
    spec: dict[str, Any] = {
        "mounts": [list(m) for m in mounts],
        "chdir": chdir,
        "startError": str(start_error),
        "cgroups": list(cgroups),
    }
    if identity is not None:
        spec["user"] = {"uid": identity.uid, "gid": identity.gid, "groups": list(identity.groups)}
    if mounts:  # in a mount namespace of its own: a PID namespace and /proc of its own too (mountns.py)
        spec["pidNamespace"] = True
    # The helper needs the standard library only: -I -S skip site-packages and .pth processing (~30 ms
    # CPU of every pod start); its path is resolved here, not by a module search in the pod.
    helper = [sys.executable, "-I", "-S", mountns.__file__, json.dumps(spec), "--", *argv]
    if mounts:
        helper = ["unshare", "--mount", "--propagation", "private", "--", *helper]
    return helper


def base_env(pod: dict[str, Any], home: Path) -> dict[str, str]:
    """What a container gets besides its own env: a PATH that finds ffmpeg and ffrtmp-runner, a home (the
    pod user's folder, where its termination log goes)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "HOSTNAME": pod["metadata"]["name"],
        api.ENV_TERMINATION_LOG: str(home / "termination-log"),
    }
    for name in ("LANG", "LC_ALL", "TZ", "VIRTUAL_ENV"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def pod_folders(pod_dir: Path, *, owner: Identity) -> Path:
    """The pod's folders. `pod_dir` is the agent's (root, 0711: its log, pid and start-error files, which the
    pod cannot replace with links the agent would then follow); `pod_dir/home` is the pod user's (0700: its
    HOME, termination log, kubeconfig and token). `pods/` may be passed through, not listed, so no pod finds
    another's folder. Returns home."""
    for folder in (pod_dir.parent, pod_dir):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o711)
    home = pod_dir / HOME
    home.mkdir(mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)  # made by the agent just now, or left from this same pod: not a link
    if os.geteuid() == 0:
        os.chown(home, owner.uid, owner.gid, follow_symlinks=False)
    return home


def read_private(path: Path, limit: int = 64 * 1024) -> str:
    """A file in the pod user's folder, read without following a link (the pod could plant one to make the
    agent, root, read another file into the pod's status); only a regular file, at most `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return fh.read(limit).decode("utf-8", errors="replace")


def working_dir(pod: dict[str, Any]) -> str | None:
    return ((pod.get("spec") or {}).get("containers") or [{}])[0].get("workingDir")


def check_unshare() -> str | None:
    """None when `unshare --mount` works here, else why not."""
    try:
        out = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True, timeout=10
        )
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
