"""Names every part of ffrtmp agrees on: the API group, node labels and annotations, the heartbeat Lease,
job-pod conventions, PriorityClasses, queues, the encoder table and the runner's exit codes.

Plain constants only, so the agent, the runner, the CLI and the bench can import them without pydantic.
"""

from __future__ import annotations

GROUP = "ffrtmp.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TranscodeJob"
PLURAL = "transcodejobs"
SINGULAR = "transcodejob"
SHORT_NAMES = ["tj"]

# Node labels written by the agent and read by the scheduler.
LABEL_WORKER = "ffrtmp.io/worker"
LABEL_GPU = "ffrtmp.io/gpu"
LABEL_ENCODER_PREFIX = "ffrtmp.io/encoder."  # + encoder name (h264_nvenc, hevc_qsv, ...), value "true"
ANNOTATION_HARDWARE = "ffrtmp.io/hardware"  # JSON of the agent's hardware probe
# Heartbeat: a coordination.k8s.io Lease per node in the system namespace, named LEASE_PREFIX + node.
LEASE_PREFIX = "ffrtmp-agent-"
ANNOTATION_SLOTS = "ffrtmp.io/slots"  # on the Lease: how many jobs the node runs at once
DEFAULT_SYSTEM_NAMESPACE = "ffrtmp-system"
# Job pods.
LABEL_JOB = "ffrtmp.io/job"  # the job's name
LABEL_JOB_UID = "ffrtmp.io/job-uid"
LABEL_ATTEMPT = "ffrtmp.io/attempt"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "ffrtmp-operator"
ENV_PLAN = "FFRTMP_PLAN"  # the ExecutionPlan as JSON in the job pod's environment
RUNNER_SERVICE_ACCOUNT = "ffrtmp-runner"
PRIORITY_CLASSES = {"high": "ffrtmp-high", "medium": "ffrtmp-medium", "low": "ffrtmp-low"}
PRIORITY_CLASS_VALUES = {"ffrtmp-high": 1000, "ffrtmp-medium": 500, "ffrtmp-low": 100}
QUEUE_RANK: dict[str, int] = {"live": 0, "default": 1, "batch": 2}  # lower runs first

# ffmpeg encoder per (codec, accelerator). The agent proves each with a trial encode and labels the node
# LABEL_ENCODER_PREFIX + name; the scheduler places a job only where its encoder is proven.
ENCODERS: dict[str, dict[str, str]] = {
    "h264": {"none": "libx264", "nvidia": "h264_nvenc", "intel": "h264_qsv", "vaapi": "h264_vaapi"},
    "hevc": {"none": "libx265", "nvidia": "hevc_nvenc", "intel": "hevc_qsv", "vaapi": "hevc_vaapi"},
    "av1": {"none": "libsvtav1", "nvidia": "av1_nvenc", "intel": "av1_qsv", "vaapi": "av1_vaapi"},
    "vp9": {"none": "libvpx-vp9", "intel": "vp9_qsv", "vaapi": "vp9_vaapi"},
}
HARDWARE_ACCELERATORS = ("nvidia", "intel", "vaapi")  # preference order for accelerator=auto

# Job pod conventions shared by the operator (reads) and the runner / standalone agent (write).
RUNNER_CONTAINER = "runner"
# The user job pods run as (the image's non-root user): storage a job writes to must be writable by it.
RUNNER_UID = 65532
ENV_TERMINATION_LOG = "FFRTMP_TERMINATION_LOG"  # where the runner writes its termination message
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
# The runner's exit code says why it failed; the termination message (JSON {"reason", "message"}) says more.
RUNNER_EXIT_CODES: dict[str, int] = {"InputError": 10, "EncoderError": 11, "OutputError": 12, "Timeout": 13}
# Standard conditions (so `kubectl wait --for=condition=Complete tj/x` works).
CONDITION_TYPES = ("Scheduled", "Running", "Paused", "Complete", "Failed", "Canceled")
# The content type of a JSON merge patch (RFC 7386), the only patch kind ffrtmp sends.
MERGE_PATCH = "application/merge-patch+json"
