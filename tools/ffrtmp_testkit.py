"""Helpers shared by tests/integration and tests/e2e (importable everywhere: pytest's pythonpath has tools/):
a free loopback port, polling until a condition holds, the operator as a real subprocess, and a loopback
HTTP server over a folder.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    check: Callable[[], T | None], *, timeout: float = 30, interval: float = 0.2, what: str = "condition"
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
