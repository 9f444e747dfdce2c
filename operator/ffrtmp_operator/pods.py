"""The job pod: a pure builder from the job, the placement and the pod settings to a Pod manifest.

The pod runs `ffrtmp-runner` with the ExecutionPlan in $FFRTMP_PLAN under the restricted Pod Security
profile, bound to its node by nodeName (the operator is the scheduler) and owned by its job.
"""

from __future__ import annotations

import hashlib
from typing import Any

import ffrtmp_api as api

from . import job_identity, policy
from .plan import build_plan
from .settings import PodSettings

MAX_NAME = 63
RUNNER_UID = api.RUNNER_UID  # the distroless "nonroot" user


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
    cannot be run safely or that the admin's job policy refuses (the caller fails the job with InputError)."""
    spec = job.spec
    rules = settings.policy
    policy.check_host_paths(spec, namespace=namespace, policy=rules)
    plan = build_plan(
        job,
        namespace=namespace,
        name=name,
        uid=uid,
        attempt=attempt,
        encoder=encoder,
        extra_formats=rules.input_formats,
    )
    plan = plan.model_copy(update={"egressAllow": list(rules.egress_allow)})  # what the runner's gateway allows
    container = {
        "name": api.RUNNER_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["ffrtmp-runner"],
        "env": [{"name": api.ENV_PLAN, "value": plan.model_dump_json(exclude_none=True)}],
        "volumeMounts": [{"name": v.name, "mountPath": v.mountPath, "readOnly": v.readOnly} for v in spec.volumes],
        "resources": policy.resources(spec.resources, policy=rules),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,  # the runner writes only to the job's volumes
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
            "priorityClassName": policy.priority_class(spec, policy=rules),
            "serviceAccountName": job_identity.service_account_name(name),  # this job's own, see job_identity
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUNNER_UID,
                "runAsGroup": RUNNER_UID,
                "fsGroup": RUNNER_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [policy.volume(v, policy=rules) for v in spec.volumes],
        },
    }
