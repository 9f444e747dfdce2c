"""TranscodePresets in the operator: the merge rule (pure), the lookup (the job's namespace, then the
chart's), and `PresetResolver`, which copies a found preset into the job's status.resolvedPreset before the
job is placed, or says why the job waits (Scheduled condition PresetNotFound, and an Event) until it appears.

The merge rule (README "Presets"): the job's own fields win, field by field. spec.video and spec.audio merge
key by key, a job's crf or bitrate replacing the preset's other one; spec.output takes container and
segmentSeconds from the preset where the job names none (never the URL); renditions merge by name, a
job's rendition overriding the fields of the preset's of that name and new names added after the preset's.
The resolved copy is what a job runs with from then on: later preset edits change no job already resolved.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ffrtmp_api as api
import kopf
from ffrtmp_api import Phase
from kubernetes.client.exceptions import ApiException

from . import lifecycle

if TYPE_CHECKING:
    from .cache import Cache
    from .clock import Clock
    from .kube import Kube
    from .lifecycle_writer import LifecycleWriter
    from .records import JobKey, JobRecord
    from .settings import Settings

log = logging.getLogger("ffrtmp.presets")

PRESET_NOT_FOUND = "PresetNotFound"
PRESET_RESOLVED = "PresetResolved"
_EXCLUSIVE = ("bitrate", "crf")  # a job setting one of these replaces the preset's other
_OUTPUT_FIELDS = ("container", "segmentSeconds")
# Phases in which a job may still take (or change) its preset: once placed, it runs with what it resolved.
_OPEN_PHASES = (None, Phase.PENDING, Phase.QUEUED)

PresetKey = tuple[str, str]  # (namespace, name)


# ------------------------------------------------------------------------------------- pure rules


def _section(preset: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    merged = {
        k: copy.deepcopy(v) for k, v in preset.items() if not (k in _EXCLUSIVE and any(e in job for e in _EXCLUSIVE))
    }
    merged.update(copy.deepcopy(dict(job)))
    return merged


def merge(preset: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """The job spec a job with `spec.preset` runs with: `preset` (a TranscodePreset's spec) under `job` (the
    job's own spec, as stored). Plain dicts in, a new dict out."""
    merged = copy.deepcopy(dict(job))
    for name in ("video", "audio"):
        if isinstance(preset.get(name), Mapping):
            merged[name] = _section(preset[name], job.get(name) or {})
    output = preset.get("output") or {}
    if isinstance(output, Mapping) and isinstance(merged.get("output"), Mapping):
        taken = {k: output[k] for k in _OUTPUT_FIELDS if k in output and k not in merged["output"]}
        merged["output"] = {**merged["output"], **taken}
    if preset.get("renditions"):
        own = {r.get("name"): r for r in job.get("renditions") or []}
        rungs = [_section(r, own.pop(r.get("name"), {})) for r in preset["renditions"]]
        merged["renditions"] = rungs + [copy.deepcopy(r) for r in own.values()]
    return merged


def effective_spec(spec: Mapping[str, Any], resolved: Any) -> Mapping[str, Any]:
    """The spec the operator schedules and plans with: the stored spec merged over status.resolvedPreset
    (when the job has one); the stored spec itself otherwise."""
    if not isinstance(resolved, Mapping) or not isinstance(resolved.get("spec"), Mapping):
        return spec
    return merge(resolved["spec"], spec)


def resolved_identity(resolved: Any) -> tuple[str, str, int] | None:
    """(namespace, name, generation) of status.resolvedPreset, or None: what JobRecord keeps of it."""
    if not isinstance(resolved, Mapping) or not resolved.get("name"):
        return None
    return (str(resolved.get("namespace") or ""), str(resolved["name"]), int(resolved.get("generation") or 0))


def lookup(
    name: str, *, namespace: str, system_namespace: str, presets: Mapping[PresetKey, PresetRecord]
) -> PresetRecord | None:
    """The preset `name` for a job in `namespace`: its own namespace's first, then the chart's."""
    return presets.get((namespace, name)) or presets.get((system_namespace, name))


def needs_resolution(job: JobRecord) -> bool:
    """A job names a preset it has not resolved (or resolved another name) and is not placed yet."""
    if not job.preset or job.phase not in _OPEN_PHASES or job.canceled:
        return False
    return job.resolved_preset is None or job.resolved_preset[1] != job.preset


def resolution(record: PresetRecord) -> dict[str, Any]:
    """The status patch recording `record` as the job's resolved preset."""
    return {
        "resolvedPreset": {
            "name": record.name,
            "namespace": record.namespace,
            "generation": record.generation,
            "spec": copy.deepcopy(record.spec),
        }
    }


@dataclass(frozen=True)
class PresetRecord:
    namespace: str
    name: str
    generation: int
    spec: dict[str, Any]


def preset_record(body: Mapping[str, Any]) -> PresetRecord:
    meta = body.get("metadata") or {}
    raw = body.get("spec")
    spec: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    return PresetRecord(meta.get("namespace", ""), meta.get("name", ""), int(meta.get("generation") or 0), dict(spec))


# --------------------------------------------------------------------------------------- the shell


def waiting_on(jobs: Iterable[JobRecord], key: PresetKey, *, system_namespace: str) -> list[JobKey]:
    """Jobs a change of preset `key` may concern: they name it and have not resolved it."""
    namespace, name = key
    return [
        j.key
        for j in jobs
        if j.preset == name and (namespace in (j.namespace, system_namespace)) and needs_resolution(j)
    ]


def register(registry: kopf.OperatorRegistry, *, cache: Cache, settings: Settings) -> None:
    """The watch on TranscodePresets: keeps cache.presets, wakes the jobs that wait for one."""

    @kopf.on.event(api.GROUP, api.VERSION, api.PRESET_PLURAL, registry=registry)
    async def preset_event(event: kopf.RawEvent, **_: Any) -> None:
        record = preset_record(event["object"])
        if not (settings.manages(record.namespace) or record.namespace == settings.system_namespace):
            return
        key = (record.namespace, record.name)
        if event.get("type") == "DELETED":
            cache.presets.pop(key, None)
            return  # jobs that resolved it keep their copy; others keep waiting or find another
        if cache.presets.get(key) == record:
            return
        cache.presets[key] = record
        waiting = waiting_on(cache.jobs.values(), key, system_namespace=settings.system_namespace)
        for job_key in waiting:
            cache.recheck(job_key)
        if waiting:
            log.info("preset changed: jobs look again", extra={"preset": f"{key[0]}/{key[1]}", "jobs": len(waiting)})
            await cache.notify()


class PresetResolver:
    """Resolves the presets of jobs a scheduling pass is about to look at (driver.run_pass), through the
    lifecycle writer (the one writer of job status)."""

    def __init__(
        self, cache: Cache, kube: Kube, writer: LifecycleWriter, *, system_namespace: str, clock: Clock
    ) -> None:
        self.cache = cache
        self.kube = kube
        self.writer = writer
        self.system_namespace = system_namespace
        self.clock = clock

    async def resolve(self, keys: Iterable[JobKey]) -> None:
        for key in keys:
            job = self.cache.jobs.get(key)
            if job is None or key[0] in self.cache.terminating or not needs_resolution(job):
                continue
            found = lookup(
                job.preset or "",
                namespace=job.namespace,
                system_namespace=self.system_namespace,
                presets=self.cache.presets,
            )
            if found is not None:
                await self._resolved(job, found)
            else:
                await self._missing(job)

    async def _resolved(self, job: JobRecord, found: PresetRecord) -> None:
        if await self.writer.write_status(job, resolution(found)) is None:
            return  # conflict: looked at again with the newer version
        message = f"took the settings of TranscodePreset {found.namespace}/{found.name} (generation {found.generation})"
        log.info(
            "preset resolved", extra={"job": f"{job.namespace}/{job.name}", "preset": f"{found.namespace}/{found.name}"}
        )
        await self._event(job, PRESET_RESOLVED, message, "Normal")

    async def _missing(self, job: JobRecord) -> None:
        where = (
            job.namespace if job.namespace == self.system_namespace else f"{job.namespace} or {self.system_namespace}"
        )
        message = f"waiting for TranscodePreset {job.preset} (not found in {where})"
        patch = lifecycle.waiting(
            job.status(), reason=PRESET_NOT_FOUND, message=message, now=self.clock(), generation=job.generation or None
        )
        if patch is None:
            return  # says so already
        if await self.writer.write_status(job, patch) is not None:
            await self._event(job, PRESET_NOT_FOUND, message, "Warning")

    async def _event(self, job: JobRecord, reason: str, message: str, type_: str) -> None:
        try:
            await self.kube.post_event(job, reason=reason, message=message, type_=type_)
        except ApiException as exc:  # the status is written; a lost Event must not undo it
            log.warning("event not posted", extra={"job": f"{job.namespace}/{job.name}", "error": str(exc)})
