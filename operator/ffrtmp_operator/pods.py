"""The job pod: a pure builder from the job, the placement and the pod settings to a Pod manifest.

The pod runs `ffrtmp-runner` with the ExecutionPlan in $FFRTMP_PLAN under the restricted Pod Security
profile, bound to its node by nodeName (the operator is the scheduler) and owned by its job.
"""

from __future__ import annotations

import hashlib
from typing import Any

import ffrtmp_api as api
from .plan import build_plan
from .settings import PodSettings

MAX_NAME = 63
RUNNER_UID = 65532  # the distroless "nonroot" user


def pod_name(job: str, attempt: int) -> str:
    """ "<job>-<attempt>"; names over 63 characters keep a prefix plus a hash of the job name, so each
    (job, attempt) still maps to exactly one name -- the deterministic name is what stops a second pod."""
    name = f"{job}-{attempt}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(job.encode()).hexdigest()[:10]
    suffix = f"-{digest}-{attempt}"
    return job[: MAX_NAME - len(suffix)].rstrip("-.") + suffix


def labels(job: str, uid: str, attempt: int) -> dict[str, str]:
    return {
        api.LABEL_JOB: job,
        api.LABEL_JOB_UID: uid,
        api.LABEL_ATTEMPT: str(attempt),
        api.LABEL_MANAGED_BY: api.MANAGED_BY,
    }


def owner_reference(*, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _volume(volume: api.VolumeSpec) -> dict[str, Any]:
    source = volume.model_dump(include={"persistentVolumeClaim", "emptyDir", "hostPath"}, exclude_none=True)
    return {"name": volume.name, **source}


def _resources(resources: api.Resources | None) -> dict[str, Any]:
    return resources.model_dump(exclude_none=True) if resources else {}


def build_pod(
    job: api.TranscodeJob,
    *,
    namespace: str,
    name: str,
    uid: str,
    attempt: int,
    node: str,
    encoder: str,
    settings: PodSettings,
) -> dict[str, Any]:
    """The Pod for one attempt of `job` on `node` with `encoder`. Raises plan.PlanError for a spec that
    cannot be run safely (the caller fails the job with InputError)."""
    spec = job.spec
    plan = build_plan(job, namespace=namespace, name=name, uid=uid, attempt=attempt, encoder=encoder)
    container = {
        "name": api.RUNNER_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["ffrtmp-runner"],
        "env": [{"name": api.ENV_PLAN, "value": plan.model_dump_json(exclude_none=True)}],
        "volumeMounts": [{"name": v.name, "mountPath": v.mountPath, "readOnly": v.readOnly} for v in spec.volumes],
        "resources": _resources(spec.resources),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(name, attempt),
            "namespace": namespace,
            "labels": labels(name, uid, attempt),
            "ownerReferences": [owner_reference(name=name, uid=uid)],
        },
        "spec": {
            "nodeName": node,
            "priorityClassName": spec.priorityClassName or api.PRIORITY_CLASSES[spec.priority],
            "serviceAccountName": api.RUNNER_SERVICE_ACCOUNT,
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUNNER_UID,
                "runAsGroup": RUNNER_UID,
                "fsGroup": RUNNER_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [_volume(v) for v in spec.volumes],
        },
    }
