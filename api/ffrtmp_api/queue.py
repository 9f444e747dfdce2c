"""The TranscodeQueue API (cluster-scoped, `transcodequeues.ffrtmp.io`, short name tq): a queue an admin
tunes, as Kueue's ClusterQueue trimmed to node slots: its order among queues, a cap on the jobs holding a
node, a pause switch, a preemption policy, fair sharing between namespaces and aging. A TranscodeJob names
one in spec.queue. Models and the built-in defaults only; the operator's scheduling applies them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from .base import Model
from .job import Condition
from .keys import API_VERSION, GROUP

__all__ = [
    "BUILTIN_QUEUES",
    "QUEUE_CONDITION_TYPES",
    "QUEUE_CRD_NAME",
    "QUEUE_KIND",
    "QUEUE_PLURAL",
    "QUEUE_SHORT_NAMES",
    "QUEUE_SINGULAR",
    "QueueAging",
    "QueueFairSharing",
    "QueuePreemption",
    "TranscodeQueue",
    "TranscodeQueueSpec",
    "TranscodeQueueStatus",
]

QUEUE_KIND = "TranscodeQueue"
QUEUE_PLURAL = "transcodequeues"
QUEUE_SINGULAR = "transcodequeue"
QUEUE_SHORT_NAMES = ["tq"]
QUEUE_CRD_NAME = f"{QUEUE_PLURAL}.{GROUP}"
QUEUE_CONDITION_TYPES = ("Active",)
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class QueuePreemption(Model):
    """When a job of this queue fits on no node, whose slot it may take (Kueue's preemption policy)."""

    reclaimFrom: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="Queues whose running jobs this queue's jobs may preempt (Kueue's reclaimWithinCohort). "
        "Only queues served after this one (a higher order) count: a later queue never preempts an earlier "
        "queue's jobs, so live jobs are never victims of batch.",
        json_schema_extra={"items": {"type": "string", "maxLength": 63, "pattern": _NAME}},
    )
    withinQueue: Literal["Never", "LowerPriority"] = Field(
        "Never",
        description="LowerPriority: a job may preempt a job of this same queue whose PriorityClass value is "
        "lower (Kueue's withinClusterQueue). Never: not within the queue.",
    )


class QueueFairSharing(Model):
    enabled: bool = Field(
        False,
        description="Between jobs of equal priority, serve the namespace that used the queue least recently "
        "first (Kueue's admission fair sharing): 200 queued jobs of one tenant do not starve a tenant who "
        "submits 2 after them. Off: first in, first out.",
    )
    usageHalfLifeSeconds: int = Field(
        600,
        ge=1,
        le=604800,
        description="Usage is the slots a namespace holds now plus its past admissions, which count half "
        "after this long.",
    )


class QueueAging(Model):
    enabled: bool = Field(
        False,
        description="Raise a waiting job's priority with time, so low-priority jobs are not starved forever.",
    )
    intervalSeconds: int = Field(
        300, ge=1, le=86400, description="Every intervalSeconds a job has waited (since status.queuedAt) ..."
    )
    step: int = Field(
        100, ge=1, le=1_000_000, description="... adds step to the PriorityClass value the queue orders it by."
    )


class TranscodeQueueSpec(Model):
    order: int = Field(
        100,
        ge=0,
        le=1_000_000,
        description="Queues with a lower order are served first (the chart: live 0, default 100, batch 200); "
        "equal orders by name.",
    )
    maxRunning: int | None = Field(
        None,
        ge=0,
        le=1_000_000,
        description="At most this many of the queue's jobs hold a node at once (Assigned, Processing, paused "
        "from those); unset: no cap beyond the nodes' slots.",
    )
    paused: bool = Field(
        False, description="Admit nothing new; jobs that hold a node already run on (Kueue's HoldAndDrain)."
    )
    preemption: QueuePreemption = Field(default_factory=QueuePreemption, description="Preemption policy.")
    fairSharing: QueueFairSharing = Field(
        default_factory=QueueFairSharing, description="Fair sharing between namespaces."
    )
    aging: QueueAging = Field(default_factory=QueueAging, description="Aging of waiting jobs.")
    description: str | None = Field(None, max_length=1024, description="What the queue is for.")


class TranscodeQueueStatus(Model):
    pending: int = Field(0, ge=0, description="Jobs waiting in the queue (Queued).")
    admitted: int = Field(0, ge=0, description="Jobs holding a node (Assigned, Processing, paused from those).")
    running: int = Field(0, ge=0, description="Jobs encoding (Processing).")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Active: True while the operator admits from the queue, False (Paused) while paused.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observedGeneration: int | None = None


class TranscodeQueue(Model):
    """The whole object as the API returns it."""

    model_config = ConfigDict(extra="ignore")

    apiVersion: str = API_VERSION
    kind: str = QUEUE_KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TranscodeQueueSpec = Field(default_factory=TranscodeQueueSpec)
    status: TranscodeQueueStatus = Field(default_factory=TranscodeQueueStatus)


# The queues a cluster without TranscodeQueue objects has (the light stack, the tests, an install without
# the chart's queues): today's live > default > batch, live reclaiming slots from batch. An object of the
# same name replaces its built-in twin.
BUILTIN_QUEUES: dict[str, TranscodeQueueSpec] = {
    "live": TranscodeQueueSpec(
        order=0,
        preemption=QueuePreemption(reclaimFrom=["batch"]),
        description="Live streams: served first, may reclaim slots from batch.",
    ),
    "default": TranscodeQueueSpec(order=100, description="Everyday jobs."),
    "batch": TranscodeQueueSpec(order=200, description="Bulk work: served last, preemptible by live."),
}
