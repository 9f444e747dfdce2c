"""Helpers shared by tests/integration and tests/e2e (importable everywhere: pytest's pythonpath has tools/):
a free loopback port, polling until a condition holds, the operator as a real subprocess, a loopback
HTTP server over a folder, and an API client that authenticates with a bearer token.
"""

from __future__ import annotations

import functools
import http.server
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float = 30,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


wait_for = wait_until  # the name the agent, runner and stack helpers use


def scrape_metrics(port: int) -> str | None:
    """The text of a loopback /metrics endpoint, or None while it does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return None


def terminate(proc: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM `proc` and wait up to `timeout` seconds for it; SIGKILL it if it is still running then."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


class OperatorProcess:
    """`python -m ffrtmp_operator` with its log in log_path; kill() is SIGKILL (a crash), stop() SIGTERM.

    Subclasses may raise the default waits (a whole stack on two cores starts and stops more slowly).
    """

    ACTIVE_TIMEOUT_S: float = 30
    STOP_TIMEOUT_S: float = 15

    def __init__(self, *, env: dict[str, str], args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ffrtmp_operator", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def is_active(self) -> bool:
        """This replica's scheduler has run its resync (it is the one scheduling); fails if it exited."""
        if not self.alive():
            raise AssertionError(
                f"operator exited {self.proc.returncode}:\n{self.log_text()[-4000:]}"
            )
        return '"resync done"' in self.log_text()

    def wait_active(self, timeout: float | None = None) -> None:
        """Until this replica's scheduler runs (it resynced and owns scheduling)."""
        wait_until(
            self.is_active,
            timeout=timeout or self.ACTIVE_TIMEOUT_S,
            what="the operator's scheduler to start",
        )

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
                self.proc.wait(timeout=5)
        self._log.close()


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A real HTTP server on loopback over `folder` (a path not in it is a 404); yields its base URL."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(folder)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def token_client(control_plane: Any, token: str) -> client.ApiClient:
    """A kubernetes ApiClient for the control plane that authenticates with a bearer `token` only."""
    config = client.Configuration()
    config.host = control_plane.server
    config.ssl_ca_cert = str(control_plane.ca_file)
    config.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(config)
