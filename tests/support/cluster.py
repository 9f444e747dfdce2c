"""The cluster as an operator test drives it: worker Nodes with heartbeat Leases the test controls, jobs
that select only those nodes, and a stand-in kubelet that writes pod status. Everything goes through the
real kube-apiserver; close() removes the nodes and Leases (the `namespace` fixture removes the jobs).
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime
from typing import Any

import ffrtmp_api as api
from kubernetes import client

from .cleanup import delete_node
from .waiting import wait_until

__all__ = ["FAST_FLAGS", "SYSTEM_NS", "Cluster", "now_micro"]

SYSTEM_NS = api.DEFAULT_SYSTEM_NAMESPACE
# Operator timings for tests: a tick of 0.5 s and backoff of 1-2 s keep each test short.
FAST_FLAGS = (
    "--tick-seconds",
    "0.5",
    "--backoff-base-seconds",
    "1",
    "--backoff-cap-seconds",
    "2",
    "--metrics-port",
    "0",
    "--peering-lifetime",
    "10",
)


def now_micro() -> str:
    return api.stamp_micro(datetime.now(UTC))


class Cluster:
    """What a test does to the cluster: worker nodes with heartbeats, jobs, and the kubelet's part."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.suffix = secrets.token_hex(3)
        self.nodes: list[str] = []
        self.queues: list[str] = []
        self._beating: dict[str, bool] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------ nodes

    def add_node(
        self,
        base: str,
        *,
        slots: int = 1,
        encoders: tuple[str, ...] = ("libx264",),
        lease_seconds: int = 15,
        labels: dict[str, str] | None = None,
    ) -> str:
        """A worker Node named <base>-<suffix> labelled like an agent would, with a renewed Lease.
        Every node also gets the label ffrtmp.io/test-run=<suffix> (jobs select it via `selector`)."""
        name = f"{base}-{self.suffix}"
        node_labels = {
            api.LABEL_WORKER: "true",
            api.LABEL_GPU: "false",
            "ffrtmp.io/test-run": self.suffix,
            **{api.LABEL_ENCODER_PREFIX + e: "true" for e in encoders},
            **(labels or {}),
        }
        self.core.create_node({"metadata": {"name": name, "labels": node_labels}})
        self.coordination.create_namespaced_lease(
            SYSTEM_NS,
            {
                "metadata": {"name": api.LEASE_PREFIX + name, "annotations": {api.ANNOTATION_SLOTS: str(slots)}},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": lease_seconds, "renewTime": now_micro()},
            },
        )
        self.nodes.append(name)
        self._beating[name] = True
        return name

    @property
    def selector(self) -> dict[str, str]:
        return {"ffrtmp.io/test-run": self.suffix}

    def stop_heartbeat(self, node: str) -> None:
        self._beating[node] = False

    def _heartbeat(self) -> None:
        while not self._stop.wait(1.0):
            for node, beating in list(self._beating.items()):
                if beating:
                    try:
                        self.coordination.patch_namespaced_lease(
                            api.LEASE_PREFIX + node, SYSTEM_NS, {"spec": {"renewTime": now_micro()}}
                        )
                    except client.exceptions.ApiException:
                        pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for node in self.nodes:
            delete_node(self.core.api_client, node, system_namespace=SYSTEM_NS)
        for queue in self.queues:
            try:
                self.custom.delete_cluster_custom_object(api.GROUP, api.VERSION, api.QUEUE_PLURAL, queue)
            except client.exceptions.ApiException as exc:
                if exc.status != 404:
                    raise

    # ----------------------------------------------------------------------------------- queues

    def create_queue(self, base: str, **spec: Any) -> str:
        """A TranscodeQueue named <base>-<suffix> (cluster-scoped: the suffix keeps tests apart); removed
        by close()."""
        name = f"{base}-{self.suffix}"
        body = {"apiVersion": api.API_VERSION, "kind": api.QUEUE_KIND, "metadata": {"name": name}, "spec": spec}
        self.custom.create_cluster_custom_object(api.GROUP, api.VERSION, api.QUEUE_PLURAL, body)
        self.queues.append(name)
        return name

    def patch_queue(self, name: str, **spec: Any) -> None:
        self.custom.patch_cluster_custom_object(api.GROUP, api.VERSION, api.QUEUE_PLURAL, name, {"spec": spec})

    def queue_status(self, name: str) -> dict[str, Any]:
        return self.custom.get_cluster_custom_object(api.GROUP, api.VERSION, api.QUEUE_PLURAL, name).get("status") or {}

    # ------------------------------------------------------------------------------------- jobs

    def create_job(self, name: str, *, select: bool = True, **spec: Any) -> dict[str, Any]:
        """A small valid job (10 s test source to an RTMP sink) with `spec` overrides; by default it
        selects this test's nodes only."""
        body_spec: dict[str, Any] = {
            "input": {"testSource": {"durationSeconds": 10}},
            "output": {"url": f"rtmp://sink.invalid/live/{name}"},
            "video": {"codec": "h264", "preset": "ultrafast"},
            "hardware": {"accelerator": "none"},
        }
        if select:
            body_spec["nodeSelector"] = dict(self.selector)
        body_spec.update(spec)
        body = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": name}, "spec": body_spec}
        return self.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, self.ns, api.PLURAL, body)

    def job(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(api.GROUP, api.VERSION, self.ns, api.PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return self.job(name).get("status") or {}

    def patch_spec(self, name: str, **spec: Any) -> None:
        self.custom.patch_namespaced_custom_object(api.GROUP, api.VERSION, self.ns, api.PLURAL, name, {"spec": spec})

    def wait_phase(self, name: str, phase: str, *, timeout: float = 60) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def reached() -> dict[str, Any] | None:
            nonlocal last
            last = self.status(name)
            return last if last.get("phase") == phase else None

        try:
            return wait_until(reached, timeout=timeout, what=f"{name} {phase}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {last}") from None

    def pods(self, job: str | None = None) -> list[Any]:
        selector = f"{api.LABEL_JOB}={job}" if job else api.LABEL_JOB
        return self.core.list_namespaced_pod(self.ns, label_selector=selector).items

    def pod(self, name: str, *, timeout: float = 30) -> Any:
        """The pod `name` once it exists: the operator creates it just after writing Assigned, so reading it
        right after wait_phase(..., "Assigned") can race on a busy machine."""

        def read() -> Any:
            try:
                return self.core.read_namespaced_pod(name, self.ns)
            except client.exceptions.ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        return wait_until(read, timeout=timeout, what=f"pod {name} to exist")

    def events(self, job: str) -> list[Any]:
        return self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={job}").items

    # ---------------------------------------------------------------------------- the kubelet

    def pod_running(self, pod: str) -> None:
        self._pod_status(pod, "Running", {"running": {"startedAt": now_micro()[:19] + "Z"}})

    def pod_succeeded(self, pod: str, *, result: bool = True) -> None:
        """The run ends well: its runner reports the result on the job (as a real one does before it
        exits; a Completed job always has one), then the pod succeeds."""
        if result:
            job = self.pod(pod).metadata.labels[api.LABEL_JOB]
            self.custom.patch_namespaced_custom_object_status(
                api.GROUP, api.VERSION, self.ns, api.PLURAL, job, {"status": {"result": {"outputBytes": 1024}}}
            )
        self._pod_status(pod, "Succeeded", self._terminated(0, "Completed", ""))

    def pod_failed(self, pod: str, *, exit_code: int, message: str = "", reason: str = "") -> None:
        """The runner exits `exit_code`; `reason` is the pod's own status.reason (Evicted, NodeShutdown ...)."""
        self._pod_status(pod, "Failed", self._terminated(exit_code, "Error", message), reason=reason)

    def pod_waiting(self, pod: str, *, reason: str, message: str = "") -> None:
        """The kubelet cannot start the runner (ImagePullBackOff, CreateContainerConfigError ...)."""
        self._pod_status(pod, "Pending", {"waiting": {"reason": reason, "message": message}})

    @staticmethod
    def _terminated(code: int, reason: str, message: str) -> dict[str, Any]:
        at = now_micro()[:19] + "Z"
        return {
            "terminated": {"exitCode": code, "reason": reason, "message": message, "startedAt": at, "finishedAt": at}
        }

    def _pod_status(self, pod: str, phase: str, state: dict[str, Any], *, reason: str = "") -> None:
        container = {
            "name": api.RUNNER_CONTAINER,
            "state": state,
            "ready": phase == "Running",
            "restartCount": 0,
            "image": "ffrtmp",
            "imageID": "",
            "started": phase == "Running",
        }
        body: dict[str, Any] = {"status": {"phase": phase, "containerStatuses": [container]}}
        if reason:
            body["status"]["reason"] = reason

        def patched() -> bool:  # the operator creates the pod just after writing Assigned
            try:
                self.core.patch_namespaced_pod_status(pod, self.ns, body)
            except client.exceptions.ApiException as exc:
                if exc.status == 404:
                    return False
                raise
            return True

        wait_until(patched, timeout=30, what=f"pod {pod} to exist")
