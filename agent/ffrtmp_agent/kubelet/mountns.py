"""Exec helper for standalone job processes: run inside `unshare --mount --propagation private`, bind
the pod's volumes at their mountPaths, join the pod's cgroups, change directory, become the pod's user
(groups, then group, then user; no_new_privs), then exec the container command (same pid).

With "pidNamespace" (always where the mount namespace exists), the command runs as pid 1 of a PID
namespace of its own with its own /proc, as a container does: job pods all run as the same user, and
without it one pod could signal another's processes or read their environment, and their token through
/proc/<pid>/root. This helper then stays as the pod's main process, passes the signals a kubelet sends on
to the command, and leaves as it did.

Usage: python -I -S .../ffrtmp_agent/kubelet/mountns.py SPEC_JSON -- COMMAND [ARGS...] (standard library only).
SPEC_JSON: {"mounts": [[source, target, readOnly], ...], "chdir": dir, "startError": file,
            "cgroups": [group folder, ...], "user": {"uid": n, "gid": n, "groups": [n, ...]},
            "pidNamespace": bool}.
A failure before exec is written to startError and exits 128, so the agent reports StartError.
"""

from __future__ import annotations

import json
import os
import signal
import sys

START_ERROR_EXIT_CODE = 128  # = podstatus.START_ERROR_EXIT_CODE; not imported: this file runs with -I -S
CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
# What a kubelet or the runner's own tooling may send the pod's main process: passed on to the command.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _mount(source: str, target: str, read_only: bool) -> None:
    if not os.path.exists(source):
        raise RuntimeError(f"mount source {source} does not exist")
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)  # empty mountpoint dirs where the host lacks them
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    import subprocess  # only pods with volumes need it: ~10 ms of the helper's start-up otherwise

    steps = [["mount", "--bind", source, target]]
    if read_only:
        steps.append(["mount", "-o", "remount,bind,ro", target])
    for argv in steps:
        out = subprocess.run(argv, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip() or out.returncode}")


def _join_cgroups(groups: list[str]) -> None:
    for group in groups:
        with open(os.path.join(group, "cgroup.procs"), "w", encoding="ascii") as f:
            f.write(str(os.getpid()))


def _become(user: dict | None) -> None:
    """Drops to the pod's user: supplementary groups and group first (they need root), then the user, which
    also clears every capability; no_new_privs so no setuid program can raise it again."""
    import ctypes  # only here (the helper stays cheap to start), and while the interpreter's files are readable

    libc = ctypes.CDLL(None, use_errno=True)
    if user is not None:
        os.setgroups([int(g) for g in user.get("groups", [])])
        os.setgid(int(user["gid"]))
        os.setuid(int(user["uid"]))
        if os.getuid() != int(user["uid"]) or (int(user["uid"]) != 0 and _can_regain_root()):
            raise RuntimeError(f"could not become uid {user['uid']}")
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise RuntimeError(f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")


def _can_regain_root() -> bool:
    try:
        os.setuid(0)
    except PermissionError:
        return False
    return True


def _libc():  # type: ignore[no-untyped-def]
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _new_pid_namespace() -> int:
    """unshare(CLONE_NEWPID), then fork: the child is pid 1 of the new namespace. Returns fork's value.
    Forwarded signals stay blocked across the fork, so none is lost before the parent's handlers exist."""
    import ctypes

    libc = _libc()
    if libc.unshare(CLONE_NEWPID) != 0:
        raise RuntimeError(f"unshare(CLONE_NEWPID): {os.strerror(ctypes.get_errno())}")
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    return os.fork()


def _mount_proc() -> None:
    """A /proc of the new PID namespace: the pod sees its own processes only."""
    import ctypes

    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if _libc().mount(b"proc", b"/proc", b"proc", flags, None) != 0:
        raise RuntimeError(f"mount proc on /proc: {os.strerror(ctypes.get_errno())}")


def _supervise(child: int) -> int:
    """The parent: pass the forwarded signals on to pid 1 of the pod (which, as any pid 1, gets only those
    it handles, as in a container), then leave with its status: its exit code, or death by its signal."""
    for sig in FORWARDED:
        signal.signal(sig, lambda received, _frame: os.kill(child, received))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught: nothing to reset
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(args[0])
    command = args[2:]
    # Opened now, as root, in the agent's folder: after the switch to the pod's user it could not be.
    report = open(spec["startError"], "w", encoding="utf-8")  # noqa: SIM115 - closed on exec (CLOEXEC)
    try:
        child = _new_pid_namespace() if spec.get("pidNamespace") else 0
    except Exception as exc:
        return _start_error(report, exc)
    if child:
        report.close()
        return _supervise(child)
    try:
        if spec.get("pidNamespace"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)  # the mask would outlive exec
            _mount_proc()
        for source, target, read_only in spec.get("mounts", []):
            _mount(source, target, bool(read_only))
        _join_cgroups(spec.get("cgroups", []))
        if spec.get("chdir"):
            os.chdir(spec["chdir"])
        _become(spec.get("user"))
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            raise RuntimeError(f"cannot run {command[0]}: {exc.strerror or exc}") from exc
    except Exception as exc:  # anything before exec: the container never started
        return _start_error(report, exc)
    return START_ERROR_EXIT_CODE  # not reached: execvp replaces this process


def _start_error(report, exc: Exception) -> int:  # type: ignore[no-untyped-def]
    report.write(f"{type(exc).__name__}: {exc}" if not isinstance(exc, RuntimeError) else str(exc))
    report.close()
    return START_ERROR_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
