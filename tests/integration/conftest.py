"""Operator fixtures: the operator as a real `python -m ffrtmp_operator` subprocess against the session's
API server, worker Nodes with heartbeat Leases the test controls, and a stand-in kubelet that writes
pod status. Nothing is mocked: every object goes through the real kube-apiserver.

Each operator manages only the test's namespace (--namespace) and uses a peering name of its own, so
jobs and operators of other tests never meet; node names carry a per-test suffix for the same reason.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import ffrtmp_api as api
from ffrtmp_testkit import OperatorProcess, wait_until
from kubernetes import client

SYSTEM_NS = api.DEFAULT_SYSTEM_NAMESPACE
FAST_FLAGS = ("--tick-seconds", "0.5", "--backoff-base-seconds", "1", "--backoff-cap-seconds", "2",
              "--metrics-port", "0", "--peering-lifetime", "10")  # fmt: skip


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def start_operator(control_plane: Any, namespace: str, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """start_operator(*extra_args, peering=<name>, priority=None) -> OperatorProcess, managing only
    the test's namespace, with fast timings (tick 0.5 s, backoff 1-2 s). Stopped after the test."""
    started: list[OperatorProcess] = []
    default_peering = f"ffrtmp-{namespace}"[:63]

    def start(*extra: str, peering: str | None = default_peering, priority: int | None = None) -> OperatorProcess:
        args = ["--namespace", namespace, *FAST_FLAGS, *extra]
        args += ["--peering", peering] if peering else ["--no-peering"]
        if priority is not None:
            args += ["--priority", str(priority)]
        env = control_plane.env() | {"PYTHONUNBUFFERED": "1"}
        op = OperatorProcess(env=env, args=args, log_path=tmp_path / f"operator-{len(started)}.log")
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    """A running, active operator for the test's namespace."""
    op = start_operator()
    op.wait_active()
    return op


class Cluster:
    """What a test does to the cluster: worker nodes with heartbeats, jobs, and the kubelet's part."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.ns = namespace
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.suffix = secrets.token_hex(3)
        self.nodes: list[str] = []
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
        node_labels = {api.LABEL_WORKER: "true", api.LABEL_GPU: "false", "ffrtmp.io/test-run": self.suffix,
                       **{api.LABEL_ENCODER_PREFIX + e: "true" for e in encoders}, **(labels or {})}  # fmt: skip
        self.core.create_node({"metadata": {"name": name, "labels": node_labels}})
        self.coordination.create_namespaced_lease(SYSTEM_NS, {
            "metadata": {"name": api.LEASE_PREFIX + name, "annotations": {api.ANNOTATION_SLOTS: str(slots)}},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": lease_seconds, "renewTime": now_micro()},
        })  # fmt: skip
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
            for delete, args in (
                (self.core.delete_node, (node,)),
                (self.coordination.delete_namespaced_lease, (api.LEASE_PREFIX + node, SYSTEM_NS)),
            ):
                try:
                    delete(*args)
                except client.exceptions.ApiException:
                    pass

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

    def wait_phase(self, name: str, phase: str, *, timeout: float = 30) -> dict[str, Any]:
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

    def events(self, job: str) -> list[Any]:
        return self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={job}").items

    # ---------------------------------------------------------------------------- the kubelet

    def pod_running(self, pod: str) -> None:
        self._pod_status(pod, "Running", {"running": {"startedAt": now_micro()[:19] + "Z"}})

    def pod_succeeded(self, pod: str) -> None:
        self._pod_status(pod, "Succeeded", self._terminated(0, "Completed", ""))

    def pod_failed(self, pod: str, *, exit_code: int, message: str = "") -> None:
        self._pod_status(pod, "Failed", self._terminated(exit_code, "Error", message))

    @staticmethod
    def _terminated(code: int, reason: str, message: str) -> dict[str, Any]:
        at = now_micro()[:19] + "Z"
        return {
            "terminated": {"exitCode": code, "reason": reason, "message": message, "startedAt": at, "finishedAt": at}
        }

    def _pod_status(self, pod: str, phase: str, state: dict[str, Any]) -> None:
        container = {"name": api.RUNNER_CONTAINER, "state": state, "ready": phase == "Running", "restartCount": 0,
                     "image": "ffrtmp", "imageID": "", "started": phase == "Running"}  # fmt: skip
        body = {"status": {"phase": phase, "containerStatuses": [container]}}

        def patched() -> bool:  # the operator creates the pod just after writing Assigned
            try:
                self.core.patch_namespaced_pod_status(pod, self.ns, body)
            except client.exceptions.ApiException as exc:
                if exc.status == 404:
                    return False
                raise
            return True

        wait_until(patched, timeout=10, what=f"pod {pod} to exist")


@pytest.fixture
def cluster(api_client: client.ApiClient, namespace: str) -> Iterator[Cluster]:
    c = Cluster(api_client, namespace)
    yield c
    c.close()
