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


FINAL_FAILURE_REASONS = frozenset({Reason.INPUT_ERROR, Reason.TIMEOUT})

# Phases in which a job holds a slot on status.node; Paused holds it when paused from one of them.
RUNNING_PHASES = frozenset({Phase.ASSIGNED, Phase.PROCESSING})


def holds_slot(phase: str | None, paused_from: str | None) -> bool:
    """A SIGSTOPped encoder keeps its slot, so a job paused from a run still counts on its node."""
    return phase in RUNNING_PHASES or (phase == Phase.PAUSED and paused_from in RUNNING_PHASES)
