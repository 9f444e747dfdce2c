"""Which pods the standalone agent runs, and as whom. It runs only pods the operator built for an existing
job (`refusal`: signed by the operator, owned by a TranscodeJob whose uid matches, labelled for it, running
`ffrtmp-runner` in one container with no host namespaces, privileges or added capabilities), and runs them
as the pod's user (`identity`), never as root where the namespace enforces Pod Security `restricted` or the
pod says runAsNonRoot. A kubelet would give a pod no more; a machine without containers must give it less.

Pure: the pod, its job (None when it does not exist), the namespace's labels and the signing key in.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import ffrtmp_api as api
from ffrtmp_api import podsign

RUNNER_COMMAND = ["ffrtmp-runner"]
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
SUPPORTED_VOLUMES = ("hostPath", "emptyDir", "persistentVolumeClaim", "projected")


class Identity(NamedTuple):
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary: fsGroup and supplementalGroups


def _owner(pod: dict[str, Any]) -> dict[str, Any] | None:
    owners = [
        r
        for r in (pod.get("metadata") or {}).get("ownerReferences") or []
        if r.get("kind") == api.KIND and str(r.get("apiVersion", "")).startswith(api.GROUP + "/")
    ]
    return owners[0] if len(owners) == 1 else None


def owner_name(pod: dict[str, Any]) -> str | None:
    owner = _owner(pod)
    return owner.get("name") if owner else None


def shape_problem(pod: dict[str, Any]) -> str | None:
    """Why `pod` is not shaped like the operator's job pod, or None."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    owner = _owner(pod)
    if owner is None or not owner.get("controller"):
        return "it is not controlled by exactly one TranscodeJob"
    labels = meta.get("labels") or {}
    expected = {
        api.LABEL_JOB: owner.get("name"),
        api.LABEL_JOB_UID: owner.get("uid"),
        api.LABEL_MANAGED_BY: api.MANAGED_BY,
    }
    for key, value in expected.items():
        if labels.get(key) != value:
            return f"label {key} is {labels.get(key)!r}, not {value!r}"
    if not str(labels.get(api.LABEL_ATTEMPT, "")).isdigit():
        return f"label {api.LABEL_ATTEMPT} is not an attempt number"
    containers = spec.get("containers") or []
    if len(containers) != 1 or spec.get("initContainers") or spec.get("ephemeralContainers"):
        return "a job pod has exactly one container and no init or ephemeral containers"
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            return f"spec.{field} is set"
    if spec.get("hostUsers") is False:
        return "spec.hostUsers is false (user namespaces are not available here)"
    container = containers[0]
    if (container.get("command") or []) != RUNNER_COMMAND or container.get("args"):
        return f"the container runs {container.get('command')} {container.get('args') or ''}, not ffrtmp-runner"
    if container.get("envFrom"):
        return "envFrom is not used by job pods"
    context = container.get("securityContext") or {}
    if context.get("privileged") or context.get("allowPrivilegeEscalation") is not False:
        return "the container must set allowPrivilegeEscalation: false and not be privileged"
    if (context.get("capabilities") or {}).get("add"):
        return "the container adds capabilities"
    if any(p.get("hostPort") for p in container.get("ports") or []):
        return "the container asks for a host port"
    for volume in spec.get("volumes") or []:
        if not any(kind in volume for kind in SUPPORTED_VOLUMES):
            return f"volume {volume.get('name')} is of a type job pods do not use"
    return None


def identity(pod: dict[str, Any]) -> Identity | None:
    """The user, group and supplementary groups the container runs as (container fields win over the pod's,
    as in Kubernetes); None when no runAsUser is set (there is no image here to take a user from)."""
    spec = pod.get("spec") or {}
    pod_ctx = spec.get("securityContext") or {}
    ctx = ((spec.get("containers") or [{}])[0]).get("securityContext") or {}
    uid = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    if uid is None:
        return None
    gid = ctx.get("runAsGroup", pod_ctx.get("runAsGroup", uid))
    groups = [g for g in [pod_ctx.get("fsGroup"), *(pod_ctx.get("supplementalGroups") or [])] if g is not None]
    return Identity(int(uid), int(gid), tuple(dict.fromkeys(int(g) for g in groups)))


def run_as_problem(pod: dict[str, Any], *, namespace_labels: dict[str, str]) -> str | None:
    """Why the pod may not run as the user it asks for, or None."""
    who = identity(pod)
    if who is None:
        return "it sets no runAsUser (the standalone agent has no image to take a user from)"
    spec = pod.get("spec") or {}
    ctx = ((spec.get("containers") or [{}])[0]).get("securityContext") or {}
    non_root = ctx.get("runAsNonRoot", (spec.get("securityContext") or {}).get("runAsNonRoot"))
    restricted = namespace_labels.get(ENFORCE_LABEL) == "restricted"
    if who.uid == 0 and (non_root or restricted):
        why = "runAsNonRoot is set" if non_root else "its namespace enforces Pod Security restricted"
        return f"it asks to run as root but {why}"
    if restricted and (who.gid == 0 or 0 in who.groups):
        return "its namespace enforces Pod Security restricted: group 0 is refused too"
    return None


def refusal(
    pod: dict[str, Any], *, job: dict[str, Any] | None, namespace_labels: dict[str, str], key: bytes | None
) -> str | None:
    """Why the agent will not run `pod`, or None. `job`: the TranscodeJob its owner reference names;
    `key`: the operator's signing key (None: not readable, so no pod can be trusted)."""
    problem = shape_problem(pod)
    if problem:
        return problem
    owner = _owner(pod) or {}
    if job is None:
        return f"its TranscodeJob {owner.get('name')} does not exist"
    if (job.get("metadata") or {}).get("uid") != owner.get("uid"):
        return f"its owner uid {owner.get('uid')} is not the uid of TranscodeJob {owner.get('name')}"
    if key is None:
        return f"the operator's signing key (Secret {podsign.SECRET_NAME}) cannot be read"
    if not podsign.verify(pod, key):
        return "it does not carry the operator's signature (annotation ffrtmp.io/pod-signature)"
    return run_as_problem(pod, namespace_labels=namespace_labels)
