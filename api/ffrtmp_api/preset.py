"""The TranscodePreset API (namespaced, `transcodepresets.ffrtmp.io`, short name tp): named encoding settings
a TranscodeJob takes with `spec.preset` -- video, audio, output container and segment length, ABR renditions.
A job's own fields win, field by field (the operator's presets.py merges). Looked up in the job's namespace,
then in the chart's (admin-managed shared presets). `crds/` holds the CRD generated from these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from . import ladder
from .base import Model
from .job import AudioSpec, VideoSpec
from .keys import API_VERSION, GROUP

__all__ = [
    "PRESET_KIND",
    "PRESET_PLURAL",
    "PRESET_SHORT_NAMES",
    "PRESET_SINGULAR",
    "PresetOutput",
    "TranscodePreset",
    "TranscodePresetSpec",
]

PRESET_KIND = "TranscodePreset"
PRESET_PLURAL = "transcodepresets"
PRESET_SINGULAR = "transcodepreset"
PRESET_SHORT_NAMES = ["tp"]
PRESET_CRD_NAME = f"{PRESET_PLURAL}.{GROUP}"


class PresetOutput(Model):
    container: Literal["mp4", "mkv", "mov", "webm", "flv", "mpegts", "hls", "dash"] | None = Field(
        None, description="Output container (hls or dash for renditions)."
    )
    segmentSeconds: int | None = Field(None, ge=1, le=60, description="HLS/DASH segment length in seconds.")


class TranscodePresetSpec(Model):
    description: str | None = Field(None, max_length=1024, description="What the preset is for.")
    video: VideoSpec | None = Field(None, description="Video settings (a job's spec.video fields win).")
    audio: AudioSpec | None = Field(None, description="Audio settings (a job's spec.audio fields win).")
    output: PresetOutput | None = Field(None, description="Container and segment length (never the URL).")
    renditions: list[ladder.Rendition] | None = Field(
        None,
        min_length=1,
        max_length=ladder.MAX_RENDITIONS,
        description="An ABR ladder; a job's rendition of the same name overrides its fields, new names add rungs.",
        json_schema_extra=ladder.RENDITIONS_SCHEMA,
    )


class TranscodePreset(Model):
    """The whole object as the API returns it (metadata is left to Kubernetes)."""

    model_config = ConfigDict(extra="ignore")

    apiVersion: str = API_VERSION
    kind: str = PRESET_KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TranscodePresetSpec = Field(default_factory=TranscodePresetSpec)
