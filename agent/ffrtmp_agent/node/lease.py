"""The node's heartbeat: a coordination.k8s.io Lease per node in the system namespace, renewed every few
seconds, carrying the node's slot count for the scheduler (which calls the node lost once renewTime +
leaseDurationSeconds has passed).

The builders are pure (`now` passed in); `Heartbeat` does the API calls.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import ffrtmp_api as api
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


def lease_name(node: str) -> str:
    return api.LEASE_PREFIX + node


def lease_body(node: str, *, namespace: str, slots: int, lease_seconds: int, now: datetime) -> dict[str, Any]:
    """The heartbeat Lease: alive while renewTime + leaseDurationSeconds > now."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(node),
            "namespace": namespace,
            "labels": {api.LABEL_MANAGED_BY: "ffrtmp-agent"},
            "annotations": {api.ANNOTATION_SLOTS: str(slots)},
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": lease_seconds,
            # Lease times are MicroTime: exactly six fraction digits, or the API server refuses them.
            "acquireTime": api.stamp_micro(now),
            "renewTime": api.stamp_micro(now),
        },
    }


def renewal_patch(node: str, *, slots: int, lease_seconds: int, now: datetime) -> dict[str, Any]:
    """What each renewal writes: renewTime, plus the fields a restarted agent may have changed."""
    return {
        "metadata": {"annotations": {api.ANNOTATION_SLOTS: str(slots)}},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": lease_seconds, "renewTime": api.stamp_micro(now)},
    }


class Heartbeat:
    """Renews the node's Lease; creates it when missing (first start, or someone deleted it)."""

    def __init__(self, coord: client.CoordinationV1Api, node: str, *, namespace: str, slots: int, lease_seconds: int):
        self.coord = coord
        self.node = node
        self.namespace = namespace
        self.slots = slots
        self.lease_seconds = lease_seconds

    def renew(self, now: datetime) -> None:
        name = lease_name(self.node)
        patch = renewal_patch(self.node, slots=self.slots, lease_seconds=self.lease_seconds, now=now)
        try:
            self.coord.patch_namespaced_lease(name, self.namespace, patch, _content_type=api.MERGE_PATCH)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        body = lease_body(
            self.node, namespace=self.namespace, slots=self.slots, lease_seconds=self.lease_seconds, now=now
        )
        try:
            self.coord.create_namespaced_lease(self.namespace, body)
            log.info("created lease %s/%s", self.namespace, name)
        except ApiException as exc:
            if exc.status != 409:  # created between our patch and create: the next renewal patches it
                raise
