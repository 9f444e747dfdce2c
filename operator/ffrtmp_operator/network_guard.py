"""Keeps the job NetworkPolicy (network_policy.py) in each namespace the operator creates job pods in:
checked before every job pod, created when missing, replaced when a user deleted our labels or changed its
spec. Fails closed: a policy that cannot be read or written stops the pod (admission treats the error as it
treats a refused pod), so no job pod runs in a namespace without it.

Where the chart listed tenant namespaces, a namespace it did not list had job pods with unrestricted
network (issue #10); here the operator covers every namespace it runs a job in, before the first pod.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException

from .network_policy import NAME, differs, network_policy

if TYPE_CHECKING:
    from .kube import Kube

log = logging.getLogger("ffrtmp.scheduler")

# How long the API server's endpoints are trusted before they are read again (a control-plane node replaced).
ENDPOINTS_TTL = 300.0


class JobNetworkPolicy:
    """ensure(namespace) before each job pod: one GET when the policy is as it should be (a tenant who
    widened it gets it back before their next pod, not some seconds later)."""

    def __init__(self, kube: Kube, *, egress_allow: tuple[str, ...]) -> None:
        self.kube = kube
        self.egress_allow = egress_allow
        self._endpoints: list[tuple[str, int]] = []
        self._read_at: float | None = None

    async def ensure(self, namespace: str) -> None:
        """Raises ApiException as pod creation would (the caller then creates no pod)."""
        now = time.monotonic()
        if self._read_at is None or now - self._read_at > ENDPOINTS_TTL:
            self._endpoints = await self.kube.api_server_endpoints()
            self._read_at = now
        body = network_policy(namespace, egress_allow=self.egress_allow, api_server=self._endpoints)
        await self.kube.ensure_network_policy(namespace, body)


# ------------------------------------------------------------------------------ I/O (KubeClient's)


def _raw(response: Any) -> dict[str, Any]:
    return json.loads(response.data)


def ensure_policy(networking: Any, namespace: str, body: dict[str, Any]) -> str:
    """Creates or replaces the policy so that it matches `body`; "kept", "created" or "replaced". A user's
    own labels and annotations are kept on replace. A concurrent change (409) raises: the next pass retries."""
    for _ in range(2):
        try:
            current = _raw(networking.read_namespaced_network_policy(NAME, namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                networking.create_namespaced_network_policy(namespace, body, _preload_content=False)
            except ApiException as create_exc:
                if create_exc.status == 409:  # another replica made it just now: read and check it
                    continue
                raise
            log.info("made the job NetworkPolicy", extra={"namespace": namespace})
            return "created"
        if not differs(current, body):
            return "kept"
        meta = current["metadata"]
        replacement = {
            **body,
            "metadata": {
                **body["metadata"],
                "resourceVersion": meta["resourceVersion"],
                "labels": {**(meta.get("labels") or {}), **body["metadata"]["labels"]},
                "annotations": meta.get("annotations") or {},
            },
        }
        networking.replace_namespaced_network_policy(NAME, namespace, replacement, _preload_content=False)
        log.warning("restored the job NetworkPolicy, which had been changed", extra={"namespace": namespace})
        return "replaced"
    raise RuntimeError(f"cannot read or make NetworkPolicy {namespace}/{NAME}")


def read_api_server_endpoints(discovery: Any) -> list[tuple[str, int]]:
    """(ip, port) of the API server from EndpointSlice default/kubernetes (the API server writes it); []
    when it cannot be read (the policy then lets job pods reach any address on 443 and 6443; logged)."""
    try:
        found = _raw(discovery.read_namespaced_endpoint_slice("kubernetes", "default", _preload_content=False))
    except ApiException as exc:
        log.warning(
            "cannot read EndpointSlice default/kubernetes: the job NetworkPolicy allows any address on 443 and 6443",
            extra={"status": exc.status},
        )
        return []
    return [
        (address, port["port"])
        for endpoint in found.get("endpoints") or []
        for address in endpoint.get("addresses") or []
        for port in found.get("ports") or []
        if port.get("port")
    ]
