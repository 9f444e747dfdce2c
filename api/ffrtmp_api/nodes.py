"""How a worker node's state is read from its Node and its agent's heartbeat Lease: one rule for the
operator's metrics, the CLI's `nodes` view and anything else that shows node status.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .keys import ANNOTATION_SLOTS
from .timefmt import parse_time

NODE_STATUSES = ("ready", "lost", "cordoned", "no_lease")


def node_status(node: Mapping[str, Any], lease: Mapping[str, Any] | None, *, now: datetime) -> str:
    """cordoned (spec.unschedulable) wins; then no_lease; then ready while the Lease is fresh, else lost."""
    if (node.get("spec") or {}).get("unschedulable"):
        return "cordoned"
    if lease is None:
        return "no_lease"
    lease_spec = lease.get("spec") or {}
    renewed = parse_time(lease_spec.get("renewTime"))
    duration = lease_spec.get("leaseDurationSeconds")
    duration = duration if isinstance(duration, int | float) and not isinstance(duration, bool) else 0
    return "ready" if renewed and (now - renewed).total_seconds() < duration else "lost"


def lease_slots(lease: Mapping[str, Any] | None) -> int:
    """The slot count the agent announces on its Lease (0 when absent or malformed)."""
    text = ((lease or {}).get("metadata") or {}).get("annotations", {}).get(ANNOTATION_SLOTS, "0")
    try:
        return max(int(text), 0)
    except (TypeError, ValueError):
        return 0
