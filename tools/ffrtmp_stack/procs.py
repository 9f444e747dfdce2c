"""Process helpers for the local stack: start a part with its log, find out whether a pid is still ours,
stop it (SIGTERM, then SIGKILL), and wait for a TCP/HTTP endpoint.

A pid file alone is not proof: pids are reused. Every part is started with FFRTMP_STACK_PART=<owner> in
its environment, and a pid counts as ours only while /proc/<pid>/environ still carries that marker.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import random
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


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_block(n: int, *, count: int = 1) -> list[int]:
    """`count` runs of n consecutive free TCP ports on 127.0.0.1, the first port of each.

    Taken below the ephemeral range: there the kernel picks source ports for outgoing connections
    (and ports for bind(0)), so a port chosen there can be taken while its server is being restarted.
    """
    low, high = 20000, _ephemeral_low() - n
    if high <= low:
        raise RuntimeError("no room below the ephemeral port range")
    rng = random.SystemRandom()
    held: list[socket.socket] = []
    firsts: list[int] = []
    try:
        while len(firsts) < count:
            first = rng.randrange(low, high)
            run: list[socket.socket] = []
            for port in range(first, first + n):
                sock = socket.socket()
                try:
                    sock.bind(("127.0.0.1", port))  # no SO_REUSEADDR: TIME_WAIT counts as taken too
                except OSError:
                    sock.close()
                    break
                run.append(sock)
            held.extend(run)
            if len(run) == n:
                firsts.append(first)
    finally:
        for sock in held:
            sock.close()
    return firsts


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (below the ephemeral range, see free_block)."""
    return free_block(1, count=n)


def free_port() -> int:
    return free_ports(1)[0]


def port_in_use(port: int) -> bool:
    """True while a server listens on 127.0.0.1:port. (A bind probe would also trip over the TIME_WAIT
    leftovers of a server just stopped, which do not stop a new server from listening.)"""
    with socket.socket() as s:
        s.settimeout(1.0)
        if s.connect_ex(("127.0.0.1", port)) != 0:
            return False
        # A free port in the ephemeral range can be picked as our own source port: TCP then connects
        # the socket to itself, which is no listener
        return s.getsockname() != s.getpeername()


def listener(port: int) -> str:
    """Who listens on port, as `ss` tells it ("" when unknown), for error messages."""
    try:
        done = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return " ".join(done.stdout.split())


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the forked child must not load anything


def _die_with_parent() -> None:
    """preexec_fn: the kernel SIGKILLs the child when its parent dies, so a killed pytest leaks nothing."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


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
            preexec_fn=_die_with_parent if tie_to_parent else None,  # noqa: PLW1509 (one syscall)
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


def stop(pid: int, *, marker: str, grace_s: float = 10.0) -> str | None:
    """SIGTERM pid, wait up to grace_s, then SIGKILL its whole process group and wait until it is gone.

    Returns how it ended ("exited after SIGTERM in 0.3 s", "SIGKILLed in 10.0 s"), None if not ours.
    """
    if not owned(pid, marker):
        return None
    # from here on the pid is safe to follow: it cannot be reused before it has been reaped
    began = time.monotonic()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    while time.monotonic() - began < grace_s and _running(pid):
        _reap(pid)
        time.sleep(0.05)
    how = "SIGKILLed" if _running(pid) else "exited after SIGTERM"
    # The part leads its own session; anything it left behind (a runner, ffmpeg) goes with the group.
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except (ProcessLookupError, PermissionError):
            pass
    # SIGKILL is asynchronous: wait until they are gone, so their ports are free when we return
    deadline = time.monotonic() + 5
    while (_running(pid) or _group_running(pid)) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.02)
    return f"{how} in {time.monotonic() - began:.1f} s"


def _running(pid: int) -> bool:
    """True while any thread of pid has not exited. A leader thread can be a zombie while its other
    threads still run and hold the process's sockets, so the leader's own state is not enough."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state not in ("Z", "X"):
            return True
    return False


def _group_running(pgid: int) -> bool:
    """True while a process of group pgid is running."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[2] == str(pgid) and _running(int(stat.parent.name)):
            return True
    return False


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
    except (urllib.error.URLError, OSError, ssl.SSLError, http.client.HTTPException):
        return False  # HTTPException: e.g. a socket connected to itself reads its own request


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
