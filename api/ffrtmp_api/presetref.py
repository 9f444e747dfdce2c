"""status.resolvedPreset of a TranscodeJob: the TranscodePreset a job took its settings from, copied when the
operator resolved it, so that later edits to (or the deletion of) the preset never change a job already
queued or running. Apart from preset.py so that job.py can embed it (preset.py builds on job.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .base import Model

__all__ = ["ResolvedPreset", "no_crd_default"]


def no_crd_default(schema: dict[str, Any]) -> None:
    """json_schema_extra for a field whose default pydantic applies but the API server must not: a default
    stored in the object would count as set by the job and hide the preset's value (presets.merge)."""
    schema.pop("default", None)


def _free_form(schema: dict[str, Any]) -> None:
    schema.pop("additionalProperties", None)
    schema["x-kubernetes-preserve-unknown-fields"] = True


class ResolvedPreset(Model):
    name: str = Field(..., max_length=253, description="The TranscodePreset's name.")
    namespace: str = Field(..., max_length=63, description="Where it was found: the job's namespace or the chart's.")
    generation: int | None = Field(None, ge=0, description="Its metadata.generation when it was copied.")
    spec: dict[str, Any] = Field(
        default_factory=dict,
        description="The preset's spec as copied; the job runs with these settings under its own.",
        json_schema_extra=_free_form,
    )
