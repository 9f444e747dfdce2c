"""A real `python -m ffrtmp_agent` process for the agent integration tests, plus polling helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ffrtmp_testkit import free_port, wait_for
from kubernetes import client

__all__ = ["AgentProcess", "free_port", "registered_agent", "wait_for"]


class AgentProcess:
    """Runs the agent as a subprocess; `stop()` sends SIGTERM (graceful), `kill()` SIGKILL."""

    def __init__(self, *, env: dict[str, str], node: str, work_dir: Path, standalone: bool = True,
                 metrics_port: int | None = None, slots: int = 2, extra_args: tuple[str, ...] = (),
                 wrapper: tuple[str, ...] = ()):
        self.node = node
        self.work_dir = work_dir
        self.metrics_port = metrics_port if metrics_port is not None else free_port()
        self.log_path = work_dir / f"agent-{node}.log"
        argv = [*wrapper, sys.executable, "-m", "ffrtmp_agent", "--node-name", node, "--slots", str(slots),
                "--metrics-port", str(self.metrics_port), "--work-dir", str(work_dir)]
        if standalone:
            argv.append("--standalone")
        argv += list(extra_args)  # e.g. a short --lease-seconds for node-loss tests
        work_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_registered(self, core: client.CoreV1Api, timeout: float = 60) -> dict[str, Any]:
        def labelled() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                node = core.api_client.sanitize_for_serialization(core.read_node(self.node))
            except client.exceptions.ApiException:
                return None
            return node if (node["metadata"].get("labels") or {}).get("ffrtmp.io/worker") == "true" else None

        return wait_for(labelled, timeout=timeout, what=f"node {self.node} labelled by the agent")

    def stop(self, timeout: float = 30) -> int:
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
def registered_agent(env: dict[str, str], core: client.CoreV1Api, *, node: str, work_dir: Path) -> Iterator[AgentProcess]:
    """A standalone agent on `node`, yielded once it labelled its Node; stopped and its Node deleted after."""
    proc = AgentProcess(env=env, node=node, work_dir=work_dir)
    try:
        proc.wait_registered(core)
        yield proc
    finally:
        proc.stop()
        core.delete_node(node)
