"""The TranscodeJob phases and reasons, and which phases hold a slot on a node.

Shared by the operator (which writes them), the agent (which counts slots) and the CLI (which shows them).
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    ASSIGNED = "Assigned"
    PROCESSING = "Processing"
    PAUSED = "Paused"
    CANCELED = "Canceled"
    FAILED = "Failed"
    COMPLETED = "Completed"


TERMINAL_PHASES = frozenset({Phase.CANCELED, Phase.FAILED, Phase.COMPLETED})


class Reason(StrEnum):
    """Why a job changed phase; failure reasons decide whether it retries."""

    CREATED = "Created"
    ADMITTED = "Admitted"
    STARTED = "Started"
    PAUSED = "PausedByUser"
    RESUMED = "ResumedByUser"
    CANCELED = "CanceledByUser"
    SUCCEEDED = "Succeeded"
    RETRYING = "Retrying"
    INPUT_ERROR = "InputError"  # final: the input cannot be read or is not media
    ENCODER_ERROR = "EncoderError"
    OUTPUT_ERROR = "OutputError"
    NODE_LOST = "NodeLost"
    TIMEOUT = "Timeout"
    PREEMPTED = "Preempted"
    POD_ERROR = "PodError"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    START_TIMEOUT = "StartTimeout"  # the pod did not start within the operator's --pod-start-timeout-seconds
    EVICTED = "Evicted"  # the pod was evicted or deleted by someone else (drain, eviction API, kubelet)
    NODE_SHUTDOWN = "NodeShutdown"  # the agent or kubelet stopped the pod because its node shuts down
    FAILED_CREATE = "FailedCreate"  # the API refused the job's pod (quota, Pod Security, webhook)
    # Why a queued job is not placed yet (the Scheduled condition's reason, and an Event, while it waits).
    NO_FREE_SLOT = "NoFreeSlot"
    NO_MATCHING_NODE = "NoMatchingNode"
    QUEUE_PAUSED = "QueuePaused"
    QUEUE_AT_CAPACITY = "QueueAtCapacity"
    QUEUE_NOT_FOUND = "QueueNotFound"
    PRIORITY_CLASS_NOT_FOUND = "PriorityClassNotFound"
    PREEMPTING = "Preempting"  # a lower job was preempted for it; it waits for that slot to be released


# Final failures end the job at once; every other failure is retried while spec.maxRetries allows.
FINAL_FAILURE_REASONS = frozenset({Reason.INPUT_ERROR, Reason.TIMEOUT})
# Disruptions end an attempt for reasons outside the job (Kubernetes Jobs' DisruptionTarget): the job is
# queued again at once, without using up spec.maxRetries and without lengthening its backoff.
DISRUPTION_REASONS = frozenset({Reason.NODE_LOST, Reason.PREEMPTED, Reason.EVICTED, Reason.NODE_SHUTDOWN})

# Phases in which a job holds a slot on status.node; Paused holds it when paused from one of them.
RUNNING_PHASES = frozenset({Phase.ASSIGNED, Phase.PROCESSING})


def holds_slot(phase: str | None, paused_from: str | None) -> bool:
    """A SIGSTOPped encoder keeps its slot, so a job paused from a run still counts on its node."""
    return phase in RUNNING_PHASES or (phase == Phase.PAUSED and paused_from in RUNNING_PHASES)
