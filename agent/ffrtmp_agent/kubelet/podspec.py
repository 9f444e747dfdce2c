"""Reading a job pod for the standalone agent: is it an ffrtmp job pod, what does its container run (argv,
environment with $(VAR) expansion), what kubeconfig carries its token, and what to do on each event.

All pure: plain pod dicts (camelCase, as the API sends them) in, plain data out.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

import ffrtmp_api as api

LOG_FILE_ANNOTATION = "ffrtmp.io/log-file"  # on a job pod run by a standalone agent: its stdout/stderr file


class Action(StrEnum):
    START = "start"
    TERMINATE = "terminate"  # deletionTimestamp set, process running: SIGTERM, then SIGKILL at the deadline
    FINALIZE = "finalize"  # deletionTimestamp set, nothing running: delete with gracePeriodSeconds=0
    MARK_LOST = "mark-lost"  # the API says Running but this agent has no process: it restarted
    IGNORE_FOREIGN = "ignore-foreign"  # not an ffrtmp job pod: never run
    NOTHING = "nothing"


def is_job_pod(pod: dict[str, Any]) -> bool:
    """Only pods the operator made: its managed-by label and a TranscodeJob owner reference."""
    meta = pod.get("metadata") or {}
    if (meta.get("labels") or {}).get(api.LABEL_MANAGED_BY) != api.MANAGED_BY:
        return False
    return any(
        ref.get("kind") == api.KIND and str(ref.get("apiVersion", "")).startswith(api.GROUP + "/")
        for ref in meta.get("ownerReferences") or []
    )


def decide(pod: dict[str, Any], *, running: bool, finished: bool) -> Action:
    """What the agent does with one observed state of a pod bound to its node.

    `running`: this agent has a live process for the pod; `finished`: it ran the pod to the end already
    (its status write may not have come back through the watch yet).
    """
    meta = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    if meta.get("deletionTimestamp"):
        return Action.TERMINATE if running else Action.FINALIZE
    if running or finished or phase in ("Succeeded", "Failed"):
        return Action.NOTHING
    if not is_job_pod(pod):
        return Action.IGNORE_FOREIGN
    if phase == "Running":
        return Action.MARK_LOST
    return Action.START


def grace_seconds(pod: dict[str, Any], default: int = 30) -> int:
    meta = pod.get("metadata") or {}
    for value in (meta.get("deletionGracePeriodSeconds"), (pod.get("spec") or {}).get("terminationGracePeriodSeconds")):
        if value is not None:
            return int(value)
    return default


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known names are replaced, unknown ones kept, $$ escapes a $."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


def _field_value(pod: dict[str, Any], path: str) -> str | None:
    meta = pod.get("metadata") or {}
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
        kind, _, key = path.partition("['")
        return (meta.get(kind.split(".")[1]) or {}).get(key.rstrip("']"))
    return values.get(path)


def container_env(pod: dict[str, Any], *, base: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The process environment: `base` (what the agent provides) then the container's env in order.

    Returns the env and the names it could not provide (secret/configMap refs are not resolved here).
    """
    env = dict(base)
    skipped: list[str] = []
    container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item or "valueFrom" not in item:
            env[name] = expand(item.get("value") or "", env)
            continue
        field = (item["valueFrom"].get("fieldRef") or {}).get("fieldPath")
        value = _field_value(pod, field) if field else None
        if value is None:
            skipped.append(name)
        else:
            env[name] = value
    return env, skipped


def container_argv(pod: dict[str, Any], env: dict[str, str]) -> list[str]:
    """command + args with $(VAR) expanded; empty when the container relies on an image entrypoint."""
    container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
    return [expand(a, env) for a in (container.get("command") or []) + (container.get("args") or [])]


def kubeconfig(
    *,
    server: str,
    namespace: str,
    ca_pem: str | None,
    insecure: bool,
    token: str | None = None,
    token_file: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig that authenticates as the pod's ServiceAccount against the agent's own API server, with
    the token in a file (renewed in place while the pod runs) or, for tools that want it inline, `token`."""
    import base64

    cluster: dict[str, Any] = {"server": server}
    if insecure:
        cluster["insecure-skip-tls-verify"] = True
    elif ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "ffrtmp", "cluster": cluster}],
        "users": [{"name": "pod", "user": {"tokenFile": token_file} if token_file else {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "ffrtmp", "user": "pod", "namespace": namespace}}],
        "current-context": "pod",
    }


def pod_key(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"
