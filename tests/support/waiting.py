"""Polling until a condition holds: the one wait of the test suite.

Tests wait for conditions, never for fixed times, so that a loaded machine only makes them slower. A
deadline is a bound on how long a broken system may take to fail a test, not a performance target, so
every wait gets at least MIN_TIMEOUT_S: it costs nothing when the condition comes true early. A test that
asserts a speed measures the time and asserts on the figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Two busy cores (CI, a laptop running the suite beside other work) stretch a 1 s step to 10 s and more.
MIN_TIMEOUT_S = 30.0


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float = 30,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll `check` until it returns something truthy and return that; fail naming `what` once
    max(timeout, MIN_TIMEOUT_S) seconds have passed. `check` may raise to fail at once (a process died).

    `check` runs once more after the deadline, so one slow poll cannot fail a condition that holds.
    """
    limit = max(timeout, MIN_TIMEOUT_S)
    deadline = time.monotonic() + limit
    while True:
        expired = time.monotonic() > deadline
        value = check()
        if value:
            return value
        if expired:
            raise AssertionError(f"timed out after {limit:g}s waiting for {what}")
        time.sleep(interval)
