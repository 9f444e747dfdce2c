"""The base every API model of the media features (ladder, split, preset) shares with job.py: unknown
fields refused, CEL rules as `x-kubernetes-validations`. Kept apart from job.py so that job.py can embed
those models without a circular import.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Model", "cel", "rules"]


class Model(BaseModel):
    # A typo in a test or an example fails loudly instead of being silently pruned.
    # defer_build: a model is built at its first use, so a runner, which validates only the ExecutionPlan,
    # does not build every API model at import (-18 ms CPU per job pod, of ~140 ms).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def rules(*entries: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(entries)}
