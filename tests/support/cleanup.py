"""Teardown that leaves nothing another test can see on the session's shared apiserver.

The light stack has no controllers: a deleted namespace stays Terminating with whatever is in it, no
garbage collector deletes a job's pods with the job, and a pod bound to a node waits for a kubelet that
may already be gone. A cluster-wide operator of a later test would still see all of that (and act on
it). So a test deletes its jobs and their pods explicitly, force-deletes the pods, and waits until the
API no longer lists them; its nodes go with their heartbeat Leases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ffrtmp_api as api
from kubernetes import client

from .waiting import wait_until

__all__ = ["delete_jobs", "delete_node"]


def _ignore_missing(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """call(*args, **kwargs), where a 404 (already gone) is fine."""
    try:
        call(*args, **kwargs)
    except client.exceptions.ApiException as exc:
        if exc.status != 404:
            raise


def delete_jobs(api_client: client.ApiClient, namespace: str, *, timeout: float = 60) -> None:
    """Delete every TranscodeJob and every ffrtmp job pod in `namespace` and wait until none is listed.

    Finalizers are cleared first: the operator that would remove its own may already be stopped. Pods
    go with grace period 0: no kubelet may be left to confirm a graceful deletion.
    """
    custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)

    def jobs() -> list[dict[str, Any]]:
        return custom.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL)["items"]

    def pods() -> list[client.V1Pod]:
        return core.list_namespaced_pod(namespace, label_selector=api.LABEL_JOB).items

    for job in jobs():
        name = job["metadata"]["name"]
        if job["metadata"].get("finalizers"):
            _ignore_missing(
                custom.patch_namespaced_custom_object,
                api.GROUP,
                api.VERSION,
                namespace,
                api.PLURAL,
                name,
                {"metadata": {"finalizers": None}},
            )
        _ignore_missing(custom.delete_namespaced_custom_object, api.GROUP, api.VERSION, namespace, api.PLURAL, name)
    for pod in pods():
        if pod.metadata.finalizers:
            _ignore_missing(core.patch_namespaced_pod, pod.metadata.name, namespace, {"metadata": {"finalizers": None}})
        _ignore_missing(core.delete_namespaced_pod, pod.metadata.name, namespace, grace_period_seconds=0)
    wait_until(
        lambda: not jobs() and not pods(),
        timeout=timeout,
        interval=0.5,
        what=f"the jobs and job pods of {namespace} to be gone",
    )


def delete_node(
    api_client: client.ApiClient, node: str, *, system_namespace: str = api.DEFAULT_SYSTEM_NAMESPACE
) -> None:
    """Delete a test's Node and its heartbeat Lease (an agent leaves its Lease behind when it stops)."""
    _ignore_missing(client.CoreV1Api(api_client).delete_node, node)
    _ignore_missing(
        client.CoordinationV1Api(api_client).delete_namespaced_lease, api.LEASE_PREFIX + node, system_namespace
    )
