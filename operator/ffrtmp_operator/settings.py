"""Operator settings: one frozen dataclass of grouped sections, built from the command line.

Passed as a parameter to everything that needs it (never a module global), so tests run an operator
with short timings by flags alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ffrtmp_api as api


@dataclass(frozen=True)
class SchedulingSettings:
    tick_seconds: float = 2.0
    """How often the scheduler wakes without a change (s): lease expiry, backoff ends and timeouts are
    noticed within one tick. 2 s keeps that latency well under the 15 s agent lease at negligible CPU."""
    default_slots: int = 2
    """Slots of a node whose Lease has no ffrtmp.io/slots annotation (the agent's --slots default)."""
    backoff_base_seconds: float = 10.0
    """Retry backoff after the first failure (s); doubles per attempt. 10 s rides out a node blip."""
    backoff_cap_seconds: float = 300.0
    """Longest retry backoff (s), so a job with many retries still comes back within minutes."""
    preemption: bool = True
    """Let a live job that fits nowhere preempt the lowest running batch job (DESIGN: scheduling)."""


@dataclass(frozen=True)
class PodSettings:
    image: str = "ghcr.io/ffrtmp/ffrtmp:latest"
    """Image of the job pods' runner container (ffmpeg plus ffrtmp-runner)."""
    image_pull_policy: str = "IfNotPresent"
    """The runner container's imagePullPolicy."""


@dataclass(frozen=True)
class PeeringSettings:
    enabled: bool = True
    """Run under kopf peering: only the highest-priority live replica schedules."""
    name: str = "ffrtmp"
    """The ClusterKopfPeering object replicas meet in (created at startup when missing)."""
    priority: int = 0
    """This replica's kopf peering priority; replicas must differ (equal ones all pause), so the CLI
    default is a random one."""
    lifetime_seconds: int = 60
    """How long a replica's peering entry lives without renewal (s): a SIGKILLed active replica is
    replaced after at most this long. kopf renews it 5-10 s before it ends."""


@dataclass(frozen=True)
class Settings:
    system_namespace: str = api.DEFAULT_SYSTEM_NAMESPACE
    """Where the agents' heartbeat Leases live."""
    namespaces: tuple[str, ...] = ()
    """Manage TranscodeJobs only in these namespaces; empty = all. (Tests isolate themselves with it on a
    shared API server; an admin can split namespaces between operator installs.)"""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9090
    """Prometheus endpoint; port 0 turns it off."""
    verbose: bool = False
    scheduling: SchedulingSettings = field(default_factory=SchedulingSettings)
    pods: PodSettings = field(default_factory=PodSettings)
    peering: PeeringSettings = field(default_factory=PeeringSettings)

    def manages(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces
