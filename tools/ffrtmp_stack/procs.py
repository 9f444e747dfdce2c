"""Process helpers for the local stack: start a part with its log, find out whether a pid is still ours,
stop it (SIGTERM, then SIGKILL), and wait for a TCP/HTTP endpoint.

A pid file alone is not proof: pids are reused. Every part is started with FFRTMP_STACK_PART=<owner> in
its environment, and a pid counts as ours only while /proc/<pid>/environ still carries that marker.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

MARKER_ENV = "FFRTMP_STACK_PART"
_PR_SET_PDEATHSIG = 1


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports on 127.0.0.1 that nobody listens on right now (all held while picking)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def port_in_use(port: int) -> bool:
    """True while a server listens on 127.0.0.1:port. (A bind probe would also trip over the TIME_WAIT
    leftovers of a server just stopped, which do not stop a new server from listening.)"""
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:
    """preexec_fn: the kernel SIGKILLs the child when its parent dies, so a killed pytest leaks nothing."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start(
    argv: Sequence[str],
    *,
    log: Path,
    marker: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    tie_to_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start argv in its own session, stdout and stderr appended to `log`.

    tie_to_parent: the child dies with this process (tests); otherwise it outlives it (`make up`).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {}), MARKER_ENV: marker}
    with open(log, "ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if tie_to_parent else None,
        )
    # Popen may return before the child has exec'd, while /proc/<pid>/environ is still ours, without the
    # marker; callers judge "alive and ours" by the marker, so wait for the exec.
    deadline = time.monotonic() + 5
    while not owned(proc.pid, marker) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    return proc


def owned(pid: int, marker: str) -> bool:
    """True while pid is alive (not a zombie) and was started by us with this marker."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return f"{MARKER_ENV}={marker}".encode() in environ.split(b"\0")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [a.decode() for a in raw.split(b"\0") if a]


def stop(pid: int, *, marker: str, grace_s: float = 10.0) -> bool:
    """SIGTERM pid, wait up to grace_s, then SIGKILL its whole process group. False if it was not ours."""
    if not owned(pid, marker):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and owned(pid, marker):
        _reap(pid)
        time.sleep(0.05)
    # The part leads its own session; anything it left behind (a runner, ffmpeg) goes with the group.
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie (no-op for reparented pids)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def http_ok(url: str, *, token: str | None = None, ca_file: Path | None = None, timeout: float = 2.0) -> bool:
    """GET url; True on a 2xx answer."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    alive: Callable[[], bool] = lambda: True,
    log: Path | None = None,
) -> None:
    """Poll check() until it holds; raise with the log's tail when the time is up or the process died."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return
        dead = not alive()
        if dead or time.monotonic() > deadline:
            why = "exited" if dead else f"not ready after {timeout_s:.0f} s"
            raise RuntimeError(f"{what} {why}" + (f"; last log lines of {log}:\n{tail(log)}" if log else ""))
        time.sleep(0.1)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
