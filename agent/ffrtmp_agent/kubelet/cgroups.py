"""CPU and memory limits of standalone job pods, enforced by a cgroup per pod (as a kubelet would): cgroup v1
`cpu.cfs_quota_us` over `cpu.cfs_period_us` and `memory.limit_in_bytes`, or cgroup v2 `cpu.max` and
`memory.max`. The exec helper moves the pod's process into its groups before it runs the command, so every
process the pod starts is counted; a pod whose limits this machine cannot enforce is refused.

The groups live under the agent's own group of each controller (<controller root><own path>/ffrtmp-pods/
<pod uid>), so the limits nest inside whatever limits the agent itself runs under.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any, NamedTuple

from ffrtmp_api.podsign import parse_quantity

CFS_PERIOD_US = 100_000
GROUP = "ffrtmp-pods"


class CgroupError(Exception):
    """The pod's limits cannot be enforced here; the pod is refused with this message."""


class Limits(NamedTuple):
    cpu_millis: int | None
    memory_bytes: int | None

    @property
    def any(self) -> bool:
        return self.cpu_millis is not None or self.memory_bytes is not None


def pod_limits(pod: dict[str, Any]) -> Limits:
    """The container's CPU (millicores) and memory (bytes) limits; None where it sets none."""
    container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
    limits = (container.get("resources") or {}).get("limits") or {}
    cpu = limits.get("cpu")
    memory = limits.get("memory")
    return Limits(
        int(parse_quantity(cpu) * 1000) if cpu is not None else None,
        int(parse_quantity(memory)) if memory is not None else None,
    )


class Hierarchy(NamedTuple):
    version: int  # 1 or 2
    cpu: Path | None  # the parent folder pod groups go in (v2: the same folder for both)
    memory: Path | None


def _mounts(mountinfo: str) -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, super options) of every cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
            found.append((fields[4], rest[0], set(rest[2].split(","))))
    return found


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """controller (or "" for v2) -> this process's group path, from /proc/self/cgroup."""
    paths = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def detect(*, mountinfo: str | None = None, proc_cgroup: str | None = None) -> Hierarchy | None:
    """Where this machine's cpu and memory controllers are, or None when it has neither."""
    mountinfo = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    proc_cgroup = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    mounts, own = _mounts(mountinfo), _own_paths(proc_cgroup)
    v1 = {}
    for point, fstype, options in mounts:
        for controller in ("cpu", "memory"):
            if fstype == "cgroup" and controller in options:
                v1[controller] = Path(point + own.get(controller, "/")) / GROUP
    if v1:
        return Hierarchy(1, v1.get("cpu"), v1.get("memory"))
    for point, fstype, _ in mounts:
        if fstype == "cgroup2":
            controllers = (Path(point) / "cgroup.controllers").read_text().split()
            # v2 forbids processes in a group whose children have controllers: pods go beside the agent
            parent = Path(point + os.path.dirname(own.get("", "/").rstrip("/") or "/")) / GROUP
            return Hierarchy(2, parent if "cpu" in controllers else None, parent if "memory" in controllers else None)
    return None


def create(hierarchy: Hierarchy | None, pod_uid: str, limits: Limits) -> list[str]:
    """The pod's groups with `limits` written (folders whose cgroup.procs the helper joins). Raises
    CgroupError when a limit cannot be enforced (no controller, not permitted)."""
    if not limits.any:
        return []
    if hierarchy is None:
        raise CgroupError("this machine has no cgroup controllers to enforce the pod's limits")
    wanted = {"cpu": limits.cpu_millis, "memory": limits.memory_bytes}
    made: list[Path] = []
    try:
        for controller, value in wanted.items():
            parent = getattr(hierarchy, controller)
            if value is None:
                continue
            if parent is None:
                raise CgroupError(
                    f"no {controller} cgroup controller here: the pod's {controller} limit cannot be enforced"
                )
            group = parent / pod_uid
            if hierarchy.version == 2 and group in made:
                _write_limit(hierarchy.version, controller, group, value)
                continue
            if hierarchy.version == 2:
                _enable_v2(parent, ("cpu", "memory"))
            group.mkdir(parents=True, exist_ok=True)
            made.append(group)
            _write_limit(hierarchy.version, controller, group, value)
    except OSError as exc:
        remove([str(g) for g in made])
        raise CgroupError(f"cannot set the pod's cgroup limits: {exc.strerror or exc}") from None
    except CgroupError:
        remove([str(g) for g in made])
        raise
    return [str(g) for g in dict.fromkeys(made)]


def _enable_v2(parent: Path, controllers: tuple[str, ...]) -> None:
    parent.mkdir(parents=True, exist_ok=True)
    available = (parent / "cgroup.controllers").read_text().split()
    wanted = " ".join(f"+{c}" for c in controllers if c in available)
    if wanted:
        (parent / "cgroup.subtree_control").write_text(wanted)


def _write_limit(version: int, controller: str, group: Path, value: int) -> None:
    if controller == "cpu":
        quota = max(1000, value * CFS_PERIOD_US // 1000)  # the kernel's minimum quota is 1 ms
        if version == 1:
            (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            (group / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
    else:
        (group / ("memory.limit_in_bytes" if version == 1 else "memory.max")).write_text(str(value))


def kill_all(groups: list[str]) -> None:
    """SIGKILL every process still in the pod's groups (one that left the process group with setsid too)."""
    for group in groups:
        with contextlib.suppress(OSError):
            for pid in (Path(group) / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)


def remove(groups: list[str], *, wait: float = 2.0) -> None:
    """Removes the pod's groups once empty (killing what is left); leaves any that stay busy."""
    kill_all(groups)
    deadline = time.monotonic() + wait
    for group in groups:
        while True:
            try:
                os.rmdir(group)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
