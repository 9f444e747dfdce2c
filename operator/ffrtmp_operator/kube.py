"""The operator's API writes and resync reads: `Kube`, the narrow adapter the scheduler's shell calls (its
unit tests fake it), and `KubeClient`, the synchronous kubernetes client run in worker threads.

Each call returns the raw object the API answered with (so the cache learns the new resourceVersion at
once) or None where a conflict or absence is an expected outcome (409 on an optimistic status patch,
AlreadyExists on a deterministic pod name, NotFound on a delete). Everything else raises ApiException.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import ffrtmp_api as api
import kubernetes
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from . import job_identity, network_guard
from .apierrors import is_outage
from .records import JobRecord

MERGE_PATCH = api.MERGE_PATCH
COMPONENT = "ffrtmp-operator"


def load_api_client(*, pool_size: int = 16) -> ApiClient:
    """$KUBECONFIG when set, else the in-cluster ServiceAccount."""
    config = kubernetes.client.Configuration()
    if os.environ.get("KUBECONFIG"):
        kubernetes.config.load_kube_config(client_configuration=config)
    else:
        kubernetes.config.load_incluster_config(client_configuration=config)
    config.connection_pool_maxsize = pool_size  # writes run in parallel threads
    return ApiClient(config)


# Objects per page of a LIST (the operator's resync and kopf's initial listing): bounds the memory a start
# with a large backlog takes (the API server's default page is unlimited).
LIST_CHUNK = 500


def _raw(response: Any) -> dict[str, Any]:
    return json.loads(response.data)


class _Empty:
    """A list response with no items (for _list, which reads .data)."""

    data = b'{"items": []}'


Keep = Callable[[str, dict[str, Any]], Any]
"""keep(kind, object) -> what list_all keeps of each listed object (None: nothing), as its pages arrive."""


class Kube(Protocol):
    """The API calls the scheduler's shell makes, and nothing else (KubeClient's docstrings say more)."""

    async def reachable(self, *, system_namespace: str) -> bool: ...

    async def list_all(self, *, system_namespace: str, keep: Keep) -> dict[str, list[Any]]: ...

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def patch_job_status(self, job: JobRecord, status: dict[str, Any]) -> dict[str, Any] | None: ...

    async def post_event(self, job: JobRecord, *, reason: str, message: str, type_: str = "Normal") -> None: ...

    async def create_job(self, manifest: dict[str, Any]) -> dict[str, Any] | None: ...

    async def patch_job_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None: ...

    async def create_objects(self, namespace: str, bodies: list[dict[str, Any]]) -> None: ...

    async def signing_key(self, namespace: str) -> bytes: ...

    async def api_server_endpoints(self) -> list[tuple[str, int]]: ...

    async def ensure_network_policy(self, namespace: str, body: dict[str, Any]) -> None: ...

    async def create_pod(self, manifest: dict[str, Any]) -> dict[str, Any] | None: ...

    async def delete_pod(self, namespace: str, name: str, *, grace: int | None = None) -> None: ...

    async def patch_queue_status(self, name: str, status: dict[str, Any]) -> None: ...


class KubeClient:
    """`Kube` on the kubernetes client, plus what only startup needs (ensure_peering)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        self.coordination = kubernetes.client.CoordinationV1Api(client)
        self.scheduling = kubernetes.client.SchedulingV1Api(client)
        self.networking = kubernetes.client.NetworkingV1Api(client)
        self.discovery = kubernetes.client.DiscoveryV1Api(client)
        self.instance = socket.gethostname()

    async def reachable(self, *, system_namespace: str) -> bool:
        """One cheap read that goes through etcd (a single heartbeat Lease): does the API answer?"""
        try:
            await asyncio.to_thread(
                self.coordination.list_namespaced_lease, system_namespace, limit=1, _request_timeout=5
            )
        except Exception as exc:
            return not is_outage(exc)
        return True

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease as stored now (a quorum read: not the watch's possibly late view); None when it
        does not exist. Raises like any call when the API fails or does not answer within 5 s."""
        try:
            response = await asyncio.to_thread(
                self.coordination.read_namespaced_lease, name, namespace, _preload_content=False, _request_timeout=5
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _raw(response)

    # ---------------------------------------------------------------------------------- jobs

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The job as stored now; None when it is gone or the API does not answer."""
        try:
            return await asyncio.to_thread(
                self.custom.get_namespaced_custom_object, api.GROUP, api.VERSION, namespace, api.PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def patch_job_status(self, job: JobRecord, status: dict[str, Any]) -> dict[str, Any] | None:
        """Merge-patch the status with the record's resourceVersion as a precondition; None on 409
        (someone changed the job since we read it: the caller forgets its decision) or 404."""
        body = {"metadata": {"resourceVersion": job.resource_version}, "status": status}
        try:
            return await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object_status,
                api.GROUP,
                api.VERSION,
                job.namespace,
                api.PLURAL,
                job.name,
                body,
                _content_type=MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return None
            raise

    async def create_job(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """A split job's child (split_control.py); None when one of that name exists already."""
        try:
            return await asyncio.to_thread(
                self.custom.create_namespaced_custom_object,
                api.GROUP,
                api.VERSION,
                manifest["metadata"]["namespace"],
                api.PLURAL,
                manifest,
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    async def patch_job_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        """Merge-patch a split job's child's spec (paused, canceled follow the parent's); gone is fine."""
        try:
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object,
                api.GROUP,
                api.VERSION,
                namespace,
                api.PLURAL,
                name,
                {"spec": spec},
                _content_type=MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def post_event(self, job: JobRecord, *, reason: str, message: str, type_: str = "Normal") -> None:
        """One core/v1 Event on the job per phase change (one write, no aggregation read)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "metadata": {"generateName": f"{job.name}.", "namespace": job.namespace},
            "involvedObject": {
                "apiVersion": api.API_VERSION,
                "kind": api.KIND,
                "name": job.name,
                "namespace": job.namespace,
                "uid": job.uid,
            },
            "reason": reason[:128],
            "message": message[:1024],
            "type": type_,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await asyncio.to_thread(self.core.create_namespaced_event, job.namespace, body)

    # ---------------------------------------------------------------------------------- pods

    async def create_pod(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """None when a pod of that name exists already (a previous operator created it)."""
        namespace = manifest["metadata"]["namespace"]
        try:
            return _raw(
                await asyncio.to_thread(self.core.create_namespaced_pod, namespace, manifest, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    async def delete_pod(self, namespace: str, name: str, *, grace: int | None = None) -> None:
        try:
            await asyncio.to_thread(self.core.delete_namespaced_pod, name, namespace, grace_period_seconds=grace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def create_objects(self, namespace: str, bodies: list[dict[str, Any]]) -> None:
        """A job's ServiceAccount, Role and RoleBinding (job_identity.py); existing ones are kept."""
        await asyncio.to_thread(job_identity.create_objects, self.core, self.rbac, namespace, bodies)

    async def signing_key(self, namespace: str) -> bytes:
        """The pod-signing key (job_identity.py), made on first use."""
        return await asyncio.to_thread(job_identity.read_or_make_key, self.core, namespace)

    async def api_server_endpoints(self) -> list[tuple[str, int]]:
        """The API server's (ip, port) endpoints, for the job NetworkPolicy (network_guard.py); [] unknown."""
        return await asyncio.to_thread(network_guard.read_api_server_endpoints, self.discovery)

    async def ensure_network_policy(self, namespace: str, body: dict[str, Any]) -> None:
        """The job NetworkPolicy of `namespace` as `body` says: made, restored or kept (network_guard.py)."""
        await asyncio.to_thread(network_guard.ensure_policy, self.networking, namespace, body)

    # ------------------------------------------------------------------------------ resync reads

    def _list(self, fn: Any, *args: Any, convert: Callable[[dict[str, Any]], Any], **kwargs: Any) -> list[Any]:
        """What `convert` keeps of every item (None: nothing), read LIST_CHUNK at a time and without
        metadata.managedFields: with 10,000 jobs, one unpaged list held them all as whole Python objects at
        once and left the operator's RSS at ~580 MB after its start."""
        items: list[Any] = []
        token = ""
        while True:
            paging = {"limit": LIST_CHUNK, **({"_continue": token} if token else {})}
            page = _raw(fn(*args, _preload_content=False, **paging, **kwargs))
            for item in page.get("items", []):
                item.get("metadata", {}).pop("managedFields", None)
                if (kept := convert(item)) is not None:
                    items.append(kept)
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def _list_queues(self, **kwargs: Any) -> Any:
        """TranscodeQueues; none where their CRD is not installed (the built-in queues then serve)."""
        try:
            return self.custom.list_cluster_custom_object(api.GROUP, api.VERSION, api.QUEUE_PLURAL, **kwargs)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return _Empty()

    async def patch_queue_status(self, name: str, status: dict[str, Any]) -> None:
        """Merge-patch a TranscodeQueue's status (its counts; written at a bounded rate); gone is fine."""
        try:
            await asyncio.to_thread(
                self.custom.patch_cluster_custom_object_status,
                api.GROUP,
                api.VERSION,
                api.QUEUE_PLURAL,
                name,
                {"status": status},
                _content_type=MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def list_all(self, *, system_namespace: str, keep: Keep) -> dict[str, list[Any]]:
        """Everything the cache holds, read fresh (at scheduler start): what `keep` keeps of each object,
        converted page by page (the whole objects of one page are alive at a time)."""
        managed = f"{api.LABEL_MANAGED_BY}={api.MANAGED_BY}"
        calls = {
            "jobs": (self.custom.list_cluster_custom_object, (api.GROUP, api.VERSION, api.PLURAL), {}),
            "pods": (self.core.list_pod_for_all_namespaces, (), {"label_selector": managed}),
            "nodes": (self.core.list_node, (), {"label_selector": f"{api.LABEL_WORKER}=true"}),
            "leases": (self.coordination.list_namespaced_lease, (system_namespace,), {}),
            "priorityclasses": (self.scheduling.list_priority_class, (), {}),
            "namespaces": (self.core.list_namespace, (), {}),  # which are being terminated
            "queues": (self._list_queues, (), {}),
        }
        results = await asyncio.gather(
            *(
                asyncio.to_thread(self._list, fn, *args, convert=partial(keep, kind), **kwargs)
                for kind, (fn, args, kwargs) in calls.items()
            )
        )
        return dict(zip(calls, results, strict=True))

    # ---------------------------------------------------------------------------------- peering

    async def ensure_peering(self, name: str) -> None:
        """Create the ClusterKopfPeering object replicas meet in, unless it exists."""
        body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
        try:
            await asyncio.to_thread(
                self.custom.create_cluster_custom_object, "kopf.dev", "v1", "clusterkopfpeerings", body
            )
        except ApiException as exc:
            if exc.status == 404:
                raise SystemExit(
                    "the ClusterKopfPeering CRD is not installed: apply crds/kopf-peering.yaml or run with --no-peering"
                ) from None
            if exc.status != 409:
                raise
