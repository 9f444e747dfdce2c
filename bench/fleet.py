"""A fleet of fake worker nodes for the scheduler benchmark: Node objects labelled like an agent would
label them, and one heartbeat Lease per node that a thread keeps fresh. No agent runs, so pods never start.

The renewals are the benchmark's own writes; `renewals` counts them so they can be subtracted.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import ffrtmp_api as api

from .kube import Kube


def micro_time(at: datetime | None = None) -> str:
    """A Kubernetes MicroTime string (RFC 3339 with microseconds, UTC)."""
    return api.stamp_micro(at or datetime.now(timezone.utc))


def node_name(i: int) -> str:
    return f"bench-node-{i:04d}"


class Fleet:
    """N labelled Nodes and their Leases, renewed every `renew_s` by a small thread pool."""

    def __init__(
        self,
        kube: Kube,
        *,
        nodes: int,
        slots: int,
        system_namespace: str = api.DEFAULT_SYSTEM_NAMESPACE,
        lease_s: int = 15,
        renew_s: float = 5.0,
        encoder: str = "libx264",
    ) -> None:
        self.kube = kube
        self.names = [node_name(i) for i in range(1, nodes + 1)]
        self.slots = slots
        self.ns = system_namespace
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.encoder = encoder
        self.renewals = 0  # lease writes done by the renew loop (creates not included)
        self.late_rounds = 0  # rounds that took longer than renew_s: the machine is too busy to keep up
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-renewer", daemon=True)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="lease")

    def create(self) -> None:
        labels = {api.LABEL_WORKER: "true", api.LABEL_GPU: "false", f"{api.LABEL_ENCODER_PREFIX}{self.encoder}": "true"}
        now = micro_time()
        for name in self.names:
            self.kube.request(
                "POST",
                "/api/v1/nodes",
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}},
            )
            self.kube.request(
                "POST",
                f"/apis/coordination.k8s.io/v1/namespaces/{self.ns}/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": api.LEASE_PREFIX + name,
                        "annotations": {api.ANNOTATION_SLOTS: str(self.slots)},
                    },
                    "spec": {
                        "holderIdentity": name,
                        "leaseDurationSeconds": self.lease_s,
                        "acquireTime": now,
                        "renewTime": now,
                    },
                },
            )

    def start(self) -> Fleet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)

    def _renew(self, name: str) -> None:
        self.kube.request(
            "PATCH",
            f"/apis/coordination.k8s.io/v1/namespaces/{self.ns}/leases/{api.LEASE_PREFIX}{name}",
            {"spec": {"renewTime": micro_time()}},
            content_type=api.MERGE_PATCH,
        )
        with self._lock:
            self.renewals += 1

    def _loop(self) -> None:
        import time

        while not self._stop.wait(self.renew_s):
            began = time.monotonic()
            list(self._pool.map(self._renew, self.names))
            if time.monotonic() - began > self.renew_s:
                self.late_rounds += 1
