"""The operator and the node agent as real subprocesses of a test, and stopping a process politely.

Default waits are generous: on a loaded two-core machine a Python process with kopf takes seconds to start,
and a wait that holds early returns early anyway.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ffrtmp_api as api
from kubernetes import client

from .cleanup import delete_node
from .net import free_port
from .waiting import wait_until

__all__ = ["AgentProcess", "OperatorProcess", "registered_agent", "terminate"]


def terminate(proc: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM `proc` and wait up to `timeout` seconds for it; SIGKILL it if it is still running then."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class OperatorProcess:
    """`python -m ffrtmp_operator` with its log in log_path; kill() is SIGKILL (a crash), stop() SIGTERM."""

    ACTIVE_TIMEOUT_S: float = 90
    STOP_TIMEOUT_S: float = 30

    def __init__(self, *, env: dict[str, str], args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ffrtmp_operator", *args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def is_active(self) -> bool:
        """This replica's scheduler has run its resync (it is the one scheduling); fails if it exited."""
        if not self.alive():
            raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.log_text()[-4000:]}")
        return '"resync done"' in self.log_text()

    def wait_active(self, timeout: float | None = None) -> None:
        """Until this replica's scheduler runs (it resynced and owns scheduling)."""
        wait_until(self.is_active, timeout=timeout or self.ACTIVE_TIMEOUT_S, what="the operator's scheduler to start")

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def _traversable(path: Path) -> None:
    """o+x on `path` and its parents (pytest's tmp folders are 0700): pass through, not list."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode & 0o777
        if mode & 0o001 == 0:
            folder.chmod(mode | 0o001)


class AgentProcess:
    """`python -m ffrtmp_agent` (standalone by default); `stop()` sends SIGTERM (graceful), `kill()` SIGKILL."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        node: str,
        work_dir: Path,
        standalone: bool = True,
        metrics_port: int | None = None,
        slots: int = 2,
        extra_args: tuple[str, ...] = (),
        wrapper: tuple[str, ...] = (),
    ):
        self.node = node
        self.work_dir = work_dir
        self.metrics_port = metrics_port if metrics_port is not None else free_port()
        self.log_path = work_dir / f"agent-{node}.log"
        argv = [
            *wrapper,
            sys.executable,
            "-m",
            "ffrtmp_agent",
            "--node-name",
            node,
            "--slots",
            str(slots),
            "--metrics-port",
            str(self.metrics_port),
            "--work-dir",
            str(work_dir),
        ]
        if standalone:
            argv.append("--standalone")
        argv += list(extra_args)  # e.g. a short --lease-seconds for node-loss tests
        work_dir.mkdir(parents=True, exist_ok=True)
        _traversable(work_dir)  # job pods run as their non-root user and reach their folders under it
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop() / kill())
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_registered(
        self, core: client.CoreV1Api, timeout: float = 120, system_namespace: str = api.DEFAULT_SYSTEM_NAMESPACE
    ) -> dict[str, Any]:
        """Until the agent labelled its Node a worker and wrote its first heartbeat Lease (the two are separate
        writes: a test that reads the Lease right after the labels races the agent); returns the Node.
        Fails at once if the agent exited."""
        coordination = client.CoordinationV1Api(core.api_client)

        def registered() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                node = core.api_client.sanitize_for_serialization(core.read_node(self.node))
                if (node["metadata"].get("labels") or {}).get(api.LABEL_WORKER) != "true":
                    return None
                coordination.read_namespaced_lease(api.LEASE_PREFIX + self.node, system_namespace)
            except client.exceptions.ApiException:
                return None
            return node

        return wait_until(registered, timeout=timeout, what=f"node {self.node} labelled and heartbeating")

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


@contextmanager
def registered_agent(
    env: dict[str, str], core: client.CoreV1Api, *, node: str, work_dir: Path
) -> Iterator[AgentProcess]:
    """A standalone agent on `node`, yielded once it labelled its Node; stopped, its Node and Lease deleted after."""
    proc = AgentProcess(env=env, node=node, work_dir=work_dir)
    try:
        proc.wait_registered(core)
        yield proc
    finally:
        if proc.proc.poll() is None:
            proc.stop()
        else:
            proc.kill()  # already exited: only closes the log
        delete_node(core.api_client, node)
