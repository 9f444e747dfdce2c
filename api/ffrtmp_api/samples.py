"""Flat views of a TranscodeJob and of a worker node, read from the plain dicts the API returns: what
the operator's scrape-time gauges and the CLI's `nodes` view both count (phase, queue, slot holding,
progress; node status and slots). Pure; the rules themselves live in phases.py and nodes.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .keys import LEASE_PREFIX
from .nodes import lease_slots, node_status
from .phases import Phase, holds_slot
from .timefmt import parse_time

__all__ = ["JobSample", "NodeSample", "job_sample", "leases_by_node", "node_sample"]


@dataclass(frozen=True)
class JobSample:
    namespace: str
    name: str
    phase: str
    queue: str
    priority: str
    node: str | None = None
    paused_from: str | None = None
    queued_at: datetime | None = None
    progress_percent: float | None = None
    fps: float | None = None
    speed: float | None = None

    @property
    def holds_slot(self) -> bool:
        return holds_slot(self.phase, self.paused_from)


@dataclass(frozen=True)
class NodeSample:
    name: str
    status: str  # one of nodes.NODE_STATUSES
    slots: int


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def job_sample(obj: Mapping[str, Any]) -> JobSample:
    """A JobSample from a TranscodeJob object as the API returns it (a plain dict)."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    progress = status.get("progress") or {}
    return JobSample(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        phase=status.get("phase") or Phase.PENDING.value,
        queue=spec.get("queue") or "default",
        priority=spec.get("priority") or "medium",
        node=status.get("node"),
        paused_from=status.get("pausedFrom"),
        queued_at=parse_time(status.get("queuedAt")),
        progress_percent=_number(progress.get("percent")),
        fps=_number(progress.get("fps")),
        speed=_number(progress.get("speed")),
    )


def node_sample(node: Mapping[str, Any], lease: Mapping[str, Any] | None, *, now: datetime) -> NodeSample:
    """A NodeSample from a worker Node and its agent's heartbeat Lease (None when it has none)."""
    name = (node.get("metadata") or {}).get("name", "")
    return NodeSample(name=name, status=node_status(node, lease, now=now), slots=lease_slots(lease))


def leases_by_node(leases: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The agents' heartbeat Leases keyed by node name (LEASE_PREFIX + node); other Leases are left out."""
    out: dict[str, Mapping[str, Any]] = {}
    for lease in leases:
        lease_name = (lease.get("metadata") or {}).get("name", "")
        if lease_name.startswith(LEASE_PREFIX):
            out[lease_name.removeprefix(LEASE_PREFIX)] = lease
    return out
