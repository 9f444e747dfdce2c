"""RFC 3339 times as the Kubernetes API writes them, in UTC: one formatter per precision and one lenient
reader, used by every part that stamps or reads a time.
"""

from __future__ import annotations

from datetime import UTC, datetime


def stamp(now: datetime) -> str:
    """Milliseconds, so FIFO order survives jobs queued within one second."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def stamp_micro(now: datetime) -> str:
    """Microseconds: the MicroTime format of Lease renewTime and Event eventTime."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp_seconds(now: datetime) -> str:
    """Whole seconds: the metav1.Time format (pod status, node conditions, Event timestamps)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """Reads any of the above (and Kubernetes' own); None for a missing or malformed value."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
