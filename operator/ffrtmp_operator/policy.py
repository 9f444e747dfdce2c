"""The admin's job policy applied to a job pod: which hostPath folders a namespace may mount, which
PriorityClasses a job may name, default and maximum CPU/memory, emptyDir sizes. Pure: spec, namespace and
`settings.JobPolicy` in; pod fields out, or a PolicyError naming the field. The chart's
ValidatingAdmissionPolicy refuses the same at the API; this covers clusters without it and older specs.
"""

from __future__ import annotations

from typing import Any

import ffrtmp_api as api
from ffrtmp_api import paths
from ffrtmp_api.podsign import parse_quantity

from .plan import PlanError
from .settings import JobPolicy

__all__ = ["PolicyError", "check_host_paths", "parse_quantity", "priority_class", "resources", "volume"]

RESOURCES = ("cpu", "memory")


class PolicyError(PlanError):
    """The job asks for more than the admin's policy allows (the operator fails it with InputError)."""


def check_host_paths(spec: api.TranscodeJobSpec, *, namespace: str, policy: JobPolicy) -> None:
    """Refuse every hostPath volume unless its path is in normal form and lies at or under a folder the
    admin allows for `namespace` (os.path.commonpath, not a string prefix)."""
    allowed = [folder for ns, folder in policy.host_paths if ns == namespace]
    for vol in spec.volumes:
        if vol.hostPath is None:
            continue
        field = f"spec.volumes[{vol.name}].hostPath.path"
        problem = paths.normal_form_problem(vol.hostPath.path)
        if problem:
            raise PolicyError(f"{field}: {problem}")
        if not allowed:
            raise PolicyError(
                f"{field}: hostPath volumes are not allowed in namespace {namespace} (an admin "
                "allows them per namespace and folder: chart value jobPolicy.hostPath)"
            )
        if paths.containing_root(vol.hostPath.path, allowed) is None:
            raise PolicyError(
                f"{field}: {vol.hostPath.path} is outside the folders namespace {namespace} may "
                f"mount ({', '.join(allowed)})"
            )


def priority_class(spec: api.TranscodeJobSpec, *, policy: JobPolicy) -> str:
    """The pod's PriorityClass: spec.priority's class, or spec.priorityClassName when the admin allows it."""
    name = spec.priorityClassName
    if name is None:
        return api.PRIORITY_CLASSES[spec.priority]
    allowed = set(policy.priority_classes) | set(api.PRIORITY_CLASSES.values())
    if name.startswith("system-") or name not in allowed:
        raise PolicyError(
            f"spec.priorityClassName: {name} is not a PriorityClass jobs may use (allowed: "
            f"{', '.join(sorted(allowed))}; an admin adds classes with jobPolicy.priorityClassNames)"
        )
    return name


def resources(spec_resources: api.Resources | None, *, policy: JobPolicy) -> dict[str, Any]:
    """The container's resources: the job's own, missing requests and limits filled from the policy's
    defaults, each at most the policy's maximum, requests at most limits."""
    given = spec_resources.model_dump(exclude_none=True) if spec_resources else {}
    requests: dict[str, str] = dict(given.get("requests") or {})
    limits: dict[str, str] = dict(given.get("limits") or {})
    defaults = {"cpu": (policy.cpu_request, policy.cpu_limit), "memory": (policy.memory_request, policy.memory_limit)}
    maximum = {"cpu": policy.max_cpu, "memory": policy.max_memory}
    for name in RESOURCES:
        default_request, default_limit = defaults[name]
        # A limit alone makes the API server copy it into the request, as for any pod: keep that.
        if name not in requests and name not in limits and default_request:
            requests[name] = default_request
        if name not in limits and default_limit:
            limit = default_limit
            if name in requests and parse_quantity(requests[name]) > parse_quantity(limit):
                limit = requests[name]  # a request above the default limit raises the limit with it
            limits[name] = limit
        for kind, values in (("requests", requests), ("limits", limits)):
            if name in values and maximum[name] and parse_quantity(values[name]) > parse_quantity(maximum[name]):
                raise PolicyError(
                    f"spec.resources.{kind}.{name}: {values[name]} is above the maximum {maximum[name]} "
                    "an admin allows for a job (chart value jobPolicy.resources.max)"
                )
        if name in requests and name in limits and parse_quantity(requests[name]) > parse_quantity(limits[name]):
            raise PolicyError(f"spec.resources.requests.{name}: {requests[name]} is above the limit {limits[name]}")
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def volume(vol: api.VolumeSpec, *, policy: JobPolicy) -> dict[str, Any]:
    """The pod volume of one spec volume; an emptyDir gets a sizeLimit (default, and a RAM cap)."""
    source = vol.model_dump(include={"persistentVolumeClaim", "emptyDir", "hostPath"}, exclude_none=True)
    empty = source.get("emptyDir")
    if empty is not None:
        memory = empty.get("medium") == "Memory"
        cap = policy.max_memory_empty_dir if memory else ""
        size = empty.get("sizeLimit") or (cap if memory else policy.empty_dir_size_limit)
        if cap and parse_quantity(size) > parse_quantity(cap):
            raise PolicyError(
                f"spec.volumes[{vol.name}].emptyDir.sizeLimit: {size} of RAM is above the {cap} an "
                "admin allows for a medium: Memory emptyDir (chart value jobPolicy.emptyDir.maxMemory)"
            )
        if size:
            empty["sizeLimit"] = size
    return {"name": vol.name, **source}
