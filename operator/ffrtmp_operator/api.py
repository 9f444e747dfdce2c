"""The TranscodeJob API (`transcodejobs.ffrtmp.io/v1alpha1`): spec and status models, label and
annotation keys, and the execution plan handed to a job pod.

This module is the contract between the operator, the agent and the CRD. It is pure: no kopf and no
kubernetes imports. `crds/` is generated from these models (`make crds`), so every field carries its
description and constraints here, and cross-field rules are CEL expressions the API server enforces.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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

Queue = Literal["live", "default", "batch"]
Priority = Literal["high", "medium", "low"]
Accelerator = Literal["auto", "none", "nvidia", "intel", "vaapi"]
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
ENV_TERMINATION_LOG = "FFRTMP_TERMINATION_LOG"  # where the runner writes its termination message
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
# The runner's exit code says why it failed; the termination message (JSON {"reason", "message"}) says more.
RUNNER_EXIT_CODES: dict[str, int] = {"InputError": 10, "EncoderError": 11, "OutputError": 12, "Timeout": 13}
# Standard conditions (so `kubectl wait --for=condition=Complete tj/x` works).
CONDITION_TYPES = ("Scheduled", "Running", "Paused", "Complete", "Failed", "Canceled")


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

_URL_IN = r"^(file|https?|rtmps?|srt)://\S+$"
_URL_OUT = r"^(file|rtmps?)://\S+$"
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"
_BITRATE = r"^[0-9]+(\.[0-9]+)?[kM]?$"


class _Model(BaseModel):
    # Unknown fields are refused by the API server's structural pruning anyway; refusing them here too
    # makes a typo in a test or example fail loudly instead of being silently dropped.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def _rules(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


# ---------------------------------------------------------------------------------------------- spec

# A file:// URL must stay under its volume: ".." segments would escape the mountPath prefix check.
_NO_DOT_DOT = _cel("!self.matches('(^|/)[.][.](/|$)')", "must not contain '..' path segments")


class TestSource(_Model):
    """A synthetic input generated by ffmpeg's lavfi (no file needed)."""

    pattern: Literal[
        "testsrc", "testsrc2", "smptebars", "smptehdbars", "rgbtestsrc", "yuvtestsrc", "mandelbrot", "color"
    ] = Field("testsrc2", description="lavfi video source to generate.")
    width: int = Field(1280, ge=16, le=7680, description="Frame width in pixels.")
    height: int = Field(720, ge=16, le=4320, description="Frame height in pixels.")
    fps: int = Field(30, ge=1, le=240, description="Frames per second.")
    durationSeconds: float = Field(
        10, ge=0, le=86400, description="Length of the generated input in seconds; 0 = endless (live jobs only)."
    )
    audio: bool = Field(True, description="Also generate a sine tone as the audio track.")


class InputSpec(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_rules(
            _cel(
                "has(self.url) != has(self.testSource)",
                "exactly one of spec.input.url and spec.input.testSource must be set",
            ),
        ),
    )

    url: str | None = Field(
        None,
        max_length=2048,
        pattern=_URL_IN,
        description="Where to read from: file:// (a path under one of spec.volumes), http(s)://, rtmp(s)://, srt://.",
        json_schema_extra=_rules(_NO_DOT_DOT),
    )
    testSource: TestSource | None = Field(None, description="Generate a synthetic input instead of reading a URL.")
    format: str | None = Field(
        None, max_length=32, pattern=r"^[a-z0-9_,]+$", description="Force the input demuxer (ffmpeg -f)."
    )
    allowPlaylists: bool = Field(
        False,
        description="Allow playlist and concat demuxers (hls, concat, ...) on this input. Off by default: a "
        "crafted playlist can pull other local files or URLs into the output.",
    )


class OutputSpec(_Model):
    url: str = Field(
        ...,
        max_length=2048,
        pattern=_URL_OUT,
        description="Where to write: file:// (under a volume) or rtmp(s)://.",
        json_schema_extra=_rules(_NO_DOT_DOT),
    )
    container: Literal["mp4", "mkv", "mov", "webm", "flv", "mpegts", "hls"] | None = Field(
        None, description="Output container; inferred from the URL's extension (flv for rtmp) when not given."
    )


class VideoSpec(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_rules(
            _cel("!(has(self.bitrate) && has(self.crf))", "set at most one of spec.video.bitrate and spec.video.crf"),
            _cel("!has(self.width) || self.width % 2 == 0", "spec.video.width must be even", ".width"),
            _cel("!has(self.height) || self.height % 2 == 0", "spec.video.height must be even", ".height"),
        ),
    )

    codec: Literal["h264", "hevc", "av1", "vp9", "copy"] = Field("h264", description="Video codec.")
    bitrate: str | None = Field(
        None, max_length=16, pattern=_BITRATE, description="Target bitrate, e.g. 2500k or 4M (ffmpeg -b:v)."
    )
    crf: int | None = Field(None, ge=0, le=63, description="Constant quality (lower is better); exclusive with bitrate.")
    preset: (
        Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"] | None
    ) = Field(None, description="Speed/quality preset; mapped to the hardware encoder's presets where one is used.")
    width: int | None = Field(None, ge=16, le=7680, description="Output width in pixels (even).")
    height: int | None = Field(None, ge=16, le=4320, description="Output height in pixels (even).")
    fps: float | None = Field(None, gt=0, le=240, description="Output frame rate.")
    gop: int | None = Field(None, ge=1, le=1000, description="Keyframe interval in frames.")


class AudioSpec(_Model):
    codec: Literal["aac", "opus", "mp3", "copy", "none"] = Field("aac", description="Audio codec; none drops audio.")
    bitrate: str | None = Field("128k", max_length=16, pattern=_BITRATE, description="Audio bitrate, e.g. 128k.")
    sampleRate: int | None = Field(None, ge=8000, le=192000, description="Sample rate in Hz.")
    channels: int | None = Field(None, ge=1, le=8, description="Number of channels.")


class HardwareSpec(_Model):
    accelerator: Accelerator = Field(
        "auto",
        description="auto: a proven hardware encoder when the node has one, else software. none: software only. "
        "nvidia/intel/vaapi: only on nodes whose agent proved that encoder works.",
    )


class PVCSource(_Model):
    claimName: str = Field(..., min_length=1, max_length=253, pattern=_NAME, description="PersistentVolumeClaim name.")
    readOnly: bool = Field(False, description="Mount read-only.")


class EmptyDirSource(_Model):
    medium: Literal["", "Memory"] | None = Field(None, description="Storage medium.")
    sizeLimit: str | None = Field(None, max_length=32, pattern=_QUANTITY, description="Size limit, e.g. 1Gi.")


class HostPathSource(_Model):
    path: str = Field(..., min_length=1, max_length=4096, pattern=r"^/", description="Absolute path on the node.")
    type: Literal["", "Directory", "DirectoryOrCreate"] | None = Field(None, description="hostPath type.")


class VolumeSpec(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_rules(
            _cel(
                "[has(self.persistentVolumeClaim), has(self.emptyDir), has(self.hostPath)]"
                ".filter(x, x).size() == 1",
                "a volume needs exactly one of persistentVolumeClaim, emptyDir, hostPath",
            ),
        ),
    )

    name: str = Field(..., min_length=1, max_length=63, pattern=_NAME, description="Volume name (DNS label).")
    mountPath: str = Field(
        ..., min_length=2, max_length=1024, pattern=r"^/[^:]*$", description="Absolute path in the job pod."
    )
    readOnly: bool = Field(False, description="Mount read-only.")
    persistentVolumeClaim: PVCSource | None = None
    emptyDir: EmptyDirSource | None = None
    hostPath: HostPathSource | None = None


class ResourceList(_Model):
    cpu: str | None = Field(None, max_length=32, pattern=_QUANTITY, description="CPU, e.g. 2 or 500m.")
    memory: str | None = Field(None, max_length=32, pattern=_QUANTITY, description="Memory, e.g. 1Gi.")


class Resources(_Model):
    requests: ResourceList | None = None
    limits: ResourceList | None = None


class LiveSpec(_Model):
    durationSeconds: int = Field(0, ge=0, le=604800, description="Stop a live job after this long; 0 = until canceled.")
    reconnect: bool = Field(True, description="Reconnect with backoff when the input drops.")


class QualitySpec(_Model):
    metrics: list[Literal["psnr", "ssim", "vmaf"]] = Field(
        default_factory=list, max_length=3, description="Quality metrics to measure against the input."
    )


class TranscodeJobSpec(_Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_rules(
            _cel(
                "self.queue != 'live' || has(self.input.testSource) || "
                "(has(self.input.url) && self.input.url.matches('^(rtmps?|srt|https?)://')) || "
                "(has(self.live) && self.live.durationSeconds > 0)",
                "a live job needs a live input (rtmp://, srt://, http(s)://, testSource) or spec.live.durationSeconds",
                ".input",
            ),
            _cel(
                "self.queue == 'live' || !has(self.input.testSource) || self.input.testSource.durationSeconds > 0",
                "spec.input.testSource.durationSeconds may be 0 (endless) only for live jobs",
                ".input.testSource.durationSeconds",
            ),
            _cel(
                "!has(self.input.url) || !self.input.url.startsWith('file://') || "
                "(has(self.volumes) && self.volumes.exists(v, self.input.url.startsWith('file://' + v.mountPath + '/')))",
                "spec.input.url: a file:// input must lie under the mountPath of one of spec.volumes",
                ".input.url",
            ),
            _cel(
                "!self.output.url.startsWith('file://') || "
                "(has(self.volumes) && self.volumes.exists(v, self.output.url.startsWith('file://' + v.mountPath + '/')))",
                "spec.output.url: a file:// output must lie under the mountPath of one of spec.volumes",
                ".output.url",
            ),
        ),
    )

    queue: Queue = Field("default", description="live > default > batch: the queue decides order first.")
    priority: Priority = Field("medium", description="Priority within the queue, mapped to a PriorityClass.")
    priorityClassName: str | None = Field(
        None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Use this PriorityClass instead of the one spec.priority maps to.",
    )
    input: InputSpec = Field(..., description="What to transcode: a URL or a synthetic test source.")
    output: OutputSpec = Field(..., description="Where the result goes.")
    video: VideoSpec = Field(default_factory=VideoSpec, description="Video encoding settings.")
    audio: AudioSpec = Field(default_factory=AudioSpec, description="Audio encoding settings.")
    hardware: HardwareSpec = Field(default_factory=HardwareSpec, description="Hardware acceleration.")
    volumes: list[VolumeSpec] = Field(
        default_factory=list,
        max_length=8,
        description="Volumes mounted into the job pod; file:// URLs must lie under one of them.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    resources: Resources | None = Field(None, description="Job pod resources.")
    nodeSelector: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        None, max_length=16, description="Run only on nodes with these labels."
    )
    paused: bool = Field(False, description="Pause the job (a running encoder is stopped with SIGSTOP).")
    canceled: bool = Field(
        False,
        description="Cancel the job; cannot be undone.",
        json_schema_extra=_rules(_cel("self || !oldSelf", "spec.canceled cannot be set back to false")),
    )
    maxRetries: int = Field(3, ge=0, le=10, description="Retries after a retryable failure.")
    timeoutSeconds: int | None = Field(None, ge=1, le=604800, description="Fail the job when it runs longer.")
    live: LiveSpec | None = Field(None, description="Live job settings.")
    quality: QualitySpec | None = Field(None, description="Quality metrics to measure.")


# -------------------------------------------------------------------------------------------- status


class Progress(_Model):
    percent: float = Field(0, ge=0, le=100, description="Percent of the input encoded.")
    frame: int | None = Field(None, ge=0)
    fps: float | None = Field(None, ge=0)
    speed: float | None = Field(None, ge=0, description="Encode speed as a multiple of real time.")
    outTimeSeconds: float | None = Field(None, ge=0)
    bitrateKbps: float | None = Field(None, ge=0)
    updatedAt: str | None = Field(None, json_schema_extra={"format": "date-time"})


class Result(_Model):
    outputBytes: int | None = Field(None, ge=0)
    durationSeconds: float | None = Field(None, ge=0, description="Duration of the output media.")
    wallSeconds: float | None = Field(None, ge=0, description="Wall time of the encode.")
    codec: str | None = Field(None, max_length=64)
    width: int | None = Field(None, ge=0)
    height: int | None = Field(None, ge=0)
    encoder: str | None = Field(None, max_length=64, description="The ffmpeg encoder that ran.")
    psnr: float | None = None
    ssim: float | None = None
    vmaf: float | None = None
    qoeScore: float | None = Field(None, description="0-100, see README.")
    energyJoules: float | None = Field(None, ge=0)
    efficiencyScore: float | None = Field(None, description="Output seconds per kJ, see README.")
    unavailable: list[str] = Field(default_factory=list, description="Measures this machine could not take.")


class Transition(_Model):
    phase: Phase
    at: str = Field(..., json_schema_extra={"format": "date-time"})
    reason: str | None = Field(None, max_length=64)
    message: str | None = Field(None, max_length=1024)


class Condition(_Model):
    type: str = Field(..., max_length=64)
    status: Literal["True", "False", "Unknown"]
    reason: str | None = Field(None, max_length=64)
    message: str | None = Field(None, max_length=1024)
    lastTransitionTime: str | None = Field(None, json_schema_extra={"format": "date-time"})
    observedGeneration: int | None = None


MAX_TRANSITIONS = 32  # status.transitions keeps the newest entries; Events hold the full history


class TranscodeJobStatus(_Model):
    phase: Phase | None = None
    reason: str | None = Field(None, max_length=64)
    message: str | None = Field(None, max_length=4096)
    node: str | None = Field(None, max_length=253)
    pod: str | None = Field(None, max_length=253)
    attempts: int = Field(0, ge=0, description="Runs started so far.")
    encoder: str | None = Field(None, max_length=64, description="Encoder chosen at placement.")
    queuedAt: str | None = Field(None, json_schema_extra={"format": "date-time"})
    startedAt: str | None = Field(None, json_schema_extra={"format": "date-time"})
    completedAt: str | None = Field(None, json_schema_extra={"format": "date-time"})
    retryAfter: str | None = Field(
        None, json_schema_extra={"format": "date-time"}, description="Backoff: not scheduled again before this time."
    )
    pausedFrom: Phase | None = Field(None, description="The phase a paused job returns to when resumed.")
    progress: Progress | None = None
    result: Result | None = None
    transitions: list[Transition] = Field(default_factory=list, max_length=MAX_TRANSITIONS)
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observedGeneration: int | None = None


class TranscodeJob(_Model):
    """The whole object as the API returns it (metadata is left to Kubernetes)."""

    model_config = ConfigDict(extra="ignore")

    apiVersion: str = API_VERSION
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TranscodeJobSpec
    status: TranscodeJobStatus = Field(default_factory=TranscodeJobStatus)


# Root-level rules: fields that may not change once the scheduler has placed the job.
IMMUTABLE_AFTER_ASSIGNMENT = ("input", "output", "queue")
ROOT_VALIDATIONS = [
    _cel(
        f"!has(oldSelf.status) || !has(oldSelf.status.phase) || oldSelf.status.phase in ['Pending', 'Queued'] || "
        f"(has(self.spec.{f}) == has(oldSelf.spec.{f}) && (!has(self.spec.{f}) || self.spec.{f} == oldSelf.spec.{f}))",
        f"spec.{f} is immutable once the job is assigned",
        f".spec.{f}",
    )
    for f in IMMUTABLE_AFTER_ASSIGNMENT
]


# ------------------------------------------------------------------------------------ execution plan


class PlanVolume(_Model):
    name: str
    mountPath: str


class ExecutionPlan(_Model):
    """What a job pod runs: built by the operator at placement, read by the runner from $FFRTMP_PLAN."""

    namespace: str
    job: str
    jobUid: str
    attempt: int = Field(..., ge=1)
    live: bool = False
    liveDurationSeconds: int = 0
    reconnect: bool = True
    inputUrl: str | None = Field(None, description="The input as ffmpeg sees it (file:// stripped to a path).")
    inputArgs: list[str] = Field(
        default_factory=list,
        description="ffmpeg options for the main input ending with -i and the input (whitelists included); "
        "the runner reuses them to read the input again for quality metrics.",
    )
    testSource: TestSource | None = None
    inputDurationSeconds: float | None = Field(None, description="Known without probing (test sources).")
    outputUrl: str = Field(..., description="Final output (a path for file outputs).")
    tempOutputUrl: str | None = Field(None, description="File outputs are written here and renamed on success.")
    outputContainer: str = Field("mp4", description="mp4, mkv, mov, webm, flv, mpegts or hls (hls: segments beside it).")
    ffmpegArgs: list[str] = Field(..., description="Full ffmpeg argv, including -progress pipe:1 -nostats.")
    probeArgs: list[str] = Field(default_factory=list, description="ffprobe argv for the input duration.")
    encoder: str = Field(..., description="The ffmpeg encoder used (libx264, h264_nvenc, ...).")
    targetWidth: int | None = None
    targetHeight: int | None = None
    qualityMetrics: list[str] = Field(default_factory=list)
    timeoutSeconds: int | None = None
    progressIntervalSeconds: float = Field(2.0, gt=0, description="At most one progress write per interval.")
