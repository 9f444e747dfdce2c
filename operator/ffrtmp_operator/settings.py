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
    """Let queues preempt as their TranscodeQueue policy says (by default live reclaims from batch);
    False turns preemption off for every queue (DESIGN: scheduling)."""
    pod_start_timeout_seconds: float = 300.0
    """How long an Assigned job's pod may take to start running (image pull, volume attach) before the run
    is ended as StartTimeout and retried (Kueue's waitForPodsReady); 0 = no limit. 5 min rides out a slow
    image pull; a pod stuck longer holds a slot for nothing."""


@dataclass(frozen=True)
class JobPolicy:
    """What a tenant's job may ask of a node beyond the CRD's own rules (chart values jobPolicy.*; checked
    by policy.py at pod build, and by the chart's ValidatingAdmissionPolicy at the API). Quantities are
    Kubernetes quantities; "" turns a default or a maximum off."""

    host_paths: tuple[tuple[str, str], ...] = ()
    """(namespace, host folder) pairs: jobs in that namespace may mount hostPath volumes at or under that
    folder. Empty by default: no job may use hostPath (DESIGN: hostPath is an admin's choice)."""
    priority_classes: tuple[str, ...] = tuple(api.PRIORITY_CLASSES.values())
    """PriorityClasses spec.priorityClassName may name: the chart's classes plus those an admin lists.
    system-* classes are refused by the CRD whatever this says."""
    input_formats: tuple[str, ...] = ()
    """Demuxers every job may use beyond plan.SAFE_DEMUXERS (e.g. hls for playlists on volumes, which can
    name any path the runner sees). Empty by default."""
    egress_allow: tuple[str, ...] = ()
    """CIDRs and host names ("10.1.0.0/16", "media.corp", "*.corp") jobs may reach beyond public addresses
    (ffrtmp_api.egress): loopback, link-local and private ones are refused otherwise. Empty by default."""
    cpu_request: str = "500m"
    """CPU request of a job pod that sets none: enough for the kubelet to account for it, small enough that
    the node's slots, not requests, decide how many jobs it runs."""
    memory_request: str = "512Mi"
    """Memory request of a job pod that sets none (an SD/HD software encode stays under it)."""
    cpu_limit: str = "4"
    """CPU limit of a job pod that sets none: a job cannot take a whole big node from its neighbours."""
    memory_limit: str = "4Gi"
    """Memory limit of a job pod that sets none: a crafted input that makes a decoder balloon is killed
    before it starves the node (4K x265 encodes stay under 3 GiB)."""
    max_cpu: str = "16"
    """Largest CPU request or limit a job may ask for."""
    max_memory: str = "32Gi"
    """Largest memory request or limit a job may ask for."""
    empty_dir_size_limit: str = "10Gi"
    """sizeLimit of an emptyDir volume that sets none (the kubelet evicts a pod whose emptyDir outgrows it)."""
    max_memory_empty_dir: str = "1Gi"
    """Largest sizeLimit of a medium: Memory emptyDir (RAM), and its size when it sets none."""


@dataclass(frozen=True)
class PodSettings:
    image: str = "ghcr.io/ffrtmp/ffrtmp:latest"
    """Image of the job pods' runner container (ffmpeg plus ffrtmp-runner)."""
    image_pull_policy: str = "IfNotPresent"
    """The runner container's imagePullPolicy."""
    policy: JobPolicy = field(default_factory=JobPolicy)
    """What a job pod may ask for (hostPath, PriorityClass, resources, emptyDir sizes)."""


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
