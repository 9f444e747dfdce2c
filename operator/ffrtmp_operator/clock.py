"""The scheduler's clock: wall time at the millisecond precision of status stamps, never repeating.

Every part of the shell stamps transitions with one Clock, so queuedAt keeps the arrival order of the
jobs handled in one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall clock with strictly increasing milliseconds (the precision of status stamps), so queuedAt
    keeps the arrival order of jobs handled in one pass."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self._last = datetime.min.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        now = self._now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last:
            now = self._last + timedelta(milliseconds=1)
        self._last = now
        return now
