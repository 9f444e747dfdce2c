"""ABR ladders in the TranscodeJob API: `spec.renditions` (one encode of the input into several sizes and
bitrates, written as HLS or DASH into an output folder), the per-rendition result, and the rendition part
of the ExecutionPlan. job.py embeds these models and adds SPEC_RULES to the spec's CEL rules; `check`
is the same rules for pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from .base import Model, cel, rules

__all__ = [
    "DEFAULT_SEGMENT_SECONDS",
    "LADDER_CONTAINERS",
    "MANIFESTS",
    "SPEC_RULES",
    "PlanRendition",
    "Rendition",
    "RenditionResult",
    "check",
    "without_audio",
]

LADDER_CONTAINERS = ("hls", "dash")
MANIFESTS = {"hls": "master.m3u8", "dash": "manifest.mpd"}  # written at the top of the output folder
DEFAULT_SEGMENT_SECONDS = 4
AUDIO_FOLDER = "audio"  # HLS: the one audio rendition (encoded once, shared by every variant) lives here
MAX_RENDITIONS = 8
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_BITRATE = r"^[0-9]+(\.[0-9]+)?[kM]?$"


class Rendition(Model):
    """One rung of the ladder: a size and a rate control, encoded from the same decoded frames as the others."""

    model_config = Model.model_config | {
        "json_schema_extra": rules(
            cel("!(has(self.bitrate) && has(self.crf))", "set at most one of bitrate and crf in a rendition"),
            cel(
                f"self.name != '{AUDIO_FOLDER}'",
                f"'{AUDIO_FOLDER}' is the audio's folder, not a rendition name",
                ".name",
            ),
            cel("self.width % 2 == 0", "a rendition's width must be even", ".width"),
            cel("self.height % 2 == 0", "a rendition's height must be even", ".height"),
        )
    }

    name: str = Field(
        ...,
        min_length=1,
        max_length=32,
        pattern=_NAME,
        description="Rendition name (a DNS label): the HLS variant's folder in the output folder, e.g. 720p.",
    )
    width: int = Field(..., ge=16, le=7680, description="Width in pixels (even).")
    height: int = Field(..., ge=16, le=4320, description="Height in pixels (even).")
    bitrate: str | None = Field(
        None,
        max_length=16,
        pattern=_BITRATE,
        description="Target video bitrate, e.g. 3M; exclusive with crf. Neither: spec.video's rate control.",
    )
    crf: int | None = Field(None, ge=0, le=63, description="Constant quality for this rendition.")
    maxrate: str | None = Field(
        None, max_length=16, pattern=_BITRATE, description="Peak bitrate cap (default: bitrate, when given)."
    )
    bufsize: str | None = Field(
        None, max_length=16, pattern=_BITRATE, description="Rate-control buffer (default: twice maxrate)."
    )

    @model_validator(mode="after")
    def _rules(self) -> Rendition:
        """The CEL rules above, for pydantic."""
        if self.bitrate and self.crf is not None:
            raise ValueError("set at most one of bitrate and crf in a rendition")
        if self.width % 2 or self.height % 2:
            raise ValueError(f"rendition {self.name}: width and height must be even")
        if self.name == AUDIO_FOLDER:
            raise ValueError(f"'{AUDIO_FOLDER}' is the audio's folder, not a rendition name")
        return self


class RenditionResult(Model):
    """status.result.renditions[]: what a finished ladder holds per rendition, measured on the output."""

    name: str = Field(..., max_length=32)
    width: int | None = Field(None, ge=0)
    height: int | None = Field(None, ge=0)
    codec: str | None = Field(None, max_length=64)
    bitrateKbps: float | None = Field(None, ge=0, description="Average video bitrate over the whole rendition.")
    peakBitrateKbps: float | None = Field(None, ge=0, description="Highest segment bitrate.")
    segments: int | None = Field(None, ge=0)
    durationSeconds: float | None = Field(None, ge=0)
    psnr: float | None = None
    ssim: float | None = None
    vmaf: float | None = None


class PlanRendition(Model):
    """A rendition as the runner needs it: where its media is, which output stream it is."""

    name: str
    width: int
    height: int
    stream: int = Field(..., ge=0, description="Index among the output's video streams (DASH Representation id).")
    playlist: str | None = Field(None, description="HLS: the media playlist, relative to the output folder.")


# CEL rules on TranscodeJobSpec. A job naming a preset may take renditions or the container from it, so
# these hold for what the job itself says; the operator checks the merged spec again (presets.py).
SPEC_RULES: list[dict[str, str]] = [
    cel(
        "!has(self.renditions) || (has(self.output.container) ? self.output.container in ['hls', 'dash'] : "
        "has(self.preset))",
        "spec.renditions need spec.output.container hls or dash",
        ".output.container",
    ),
    cel(
        "!has(self.renditions) || self.output.url.endsWith('/')",
        "spec.output.url: renditions are written into a folder: end the URL with '/'",
        ".output.url",
    ),
    cel(
        "!self.output.url.endsWith('/') || has(self.renditions) || has(self.preset)",
        "spec.output.url: a folder URL (ending in '/') is for spec.renditions; name a file otherwise",
        ".output.url",
    ),
    cel(
        "!self.output.url.endsWith('/') || self.output.url.startsWith('file:///')",
        "spec.output.url: an output folder must be a file:// URL",
        ".output.url",
    ),
    cel(
        "!self.output.url.endsWith('/') || !has(self.volumes) || "
        "!self.volumes.exists(v, self.output.url == 'file://' + v.mountPath + '/')",
        "spec.output.url: an output folder must lie under a volume's mountPath, not be it",
        ".output.url",
    ),
    cel(
        "!has(self.output.container) || self.output.container != 'dash' || has(self.renditions) || has(self.preset)",
        "spec.output.container dash needs spec.renditions",
        ".output.container",
    ),
    cel(
        "!has(self.renditions) || self.queue != 'live'",
        "spec.renditions are for file and network inputs encoded to a folder, not the live queue",
        ".renditions",
    ),
    cel(
        "!has(self.renditions) || !has(self.video) || !has(self.video.codec) || self.video.codec != 'copy' || "
        "(has(self.part) && self.part.role != 'slice')",
        "spec.renditions re-encode the video: spec.video.codec copy cannot make them",
        ".renditions",
    ),
]

RENDITIONS_SCHEMA: dict[str, Any] = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
"""renditions is a list-map keyed by name: the API server itself refuses two renditions of one name."""


def check(spec: Any) -> None:
    """SPEC_RULES for pydantic, on a TranscodeJobSpec (duck-typed: this module cannot import job.py).
    Raises ValueError naming the field."""
    renditions = getattr(spec, "renditions", None)
    preset = getattr(spec, "preset", None)
    url, container = spec.output.url, spec.output.container
    folder = url.endswith("/")
    if renditions:
        if container not in LADDER_CONTAINERS and not (container is None and preset):
            raise ValueError("spec.renditions need spec.output.container hls or dash")
        if not folder:
            raise ValueError("spec.output.url: renditions are written into a folder: end the URL with '/'")
        names = [r.name for r in renditions]
        if AUDIO_FOLDER in names:
            raise ValueError(f"spec.renditions: '{AUDIO_FOLDER}' is the audio's folder, not a rendition name")
        if len(set(names)) != len(names):
            raise ValueError("spec.renditions: rendition names must be unique")
        if spec.queue == "live":
            raise ValueError("spec.renditions are for file and network inputs encoded to a folder, not the live queue")
        part = getattr(spec, "part", None)  # a split ladder's split, stitch and cleanup children copy or idle
        if spec.video.codec == "copy" and (part is None or part.role == "slice"):
            raise ValueError("spec.renditions re-encode the video: spec.video.codec copy cannot make them")
    elif folder and not preset:
        raise ValueError("spec.output.url: a folder URL (ending in '/') is for spec.renditions; name a file otherwise")
    if container == "dash" and not renditions and not preset:
        raise ValueError("spec.output.container dash needs spec.renditions")
    if folder and not url.startswith("file:///"):
        raise ValueError("spec.output.url: an output folder must be a file:// URL")


_AUDIO_OPTIONS = ("-c:a", "-b:a", "-ar", "-ac")


def without_audio(argv: list[str]) -> list[str]:
    """A ladder's ffmpeg argv (operator ladder_plan) with its audio taken out, for an input that turns out
    to have none: no audio map or audio options but -an, no audio entry in -var_stream_map or
    -adaptation_sets. Pure; the runner applies it to the argv as launched (paths already rewritten)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        option = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) else None
        if option == "-map" and value is not None and ":a:" in value:
            i += 2
            continue
        if option in _AUDIO_OPTIONS and value is not None:
            if "-an" not in out:
                out.append("-an")
            i += 2
            continue
        if option == "-var_stream_map" and value is not None:
            kept = [s.replace(",agroup:audio", "") for s in value.split() if not s.startswith("a:")]
            out += [option, " ".join(kept)]
            i += 2
            continue
        if option == "-adaptation_sets" and value is not None:
            out += [option, " ".join(s for s in value.split() if not s.endswith("streams=a"))]
            i += 2
            continue
        out.append(option)
        i += 1
    return out
