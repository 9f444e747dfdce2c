"""Fakes for unit tests of the scheduler's shell: `FakeKube`, a fake of the narrow `Kube` adapter
(ffrtmp_operator.kube.Kube) with jobs whose status patches check the resourceVersion precondition as the
API server does (409 -> None), pods, Leases and Events in memory and per-call failures to inject; a
`ListRecorder` that keeps what the shell reports to metrics; `started` wires a Driver and resyncs it.
The integration tests run the same shell against the real kube-apiserver.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import ffrtmp_api as api
from ffrtmp_operator.cache import Cache
from ffrtmp_operator.driver import Driver
from ffrtmp_operator.kube import Keep
from ffrtmp_operator.records import JobKey, JobRecord
from ffrtmp_operator.settings import SchedulingSettings, Settings
from kubernetes.client.exceptions import ApiException

SPEC = {
    "input": {"testSource": {"durationSeconds": 5}},
    "output": {"url": "rtmp://sink/live/x"},
    "video": {"codec": "h264", "preset": "ultrafast"},
    "hardware": {"accelerator": "none"},
    "maxRetries": 2,
}


def api_error(status: int, message: str = "", *, cause: str | None = None) -> ApiException:
    """An ApiException as the kubernetes client raises it, with a Status body."""
    exc = ApiException(
        status=status,
        reason={403: "Forbidden", 409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}.get(
            status, "Error"
        ),
    )
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": exc.reason,
        "code": status,
    }
    if cause:
        body["details"] = {"causes": [{"reason": cause, "message": message}]}
    exc.body = json.dumps(body)
    return exc


def terminating_error(namespace: str, kind: str = "events") -> ApiException:
    return api_error(
        403,
        f'{kind} "x" is forbidden: unable to create new content in namespace {namespace} '
        "because it is being terminated",
        cause="NamespaceTerminating",
    )


def rbac_error(namespace: str, resource: str = "events") -> ApiException:
    return api_error(
        403,
        f'{resource} is forbidden: User "system:serviceaccount:ffrtmp-system:op" cannot create '
        f'resource "{resource}" in API group "" in the namespace "{namespace}"',
    )


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """JSON merge patch (RFC 7386): objects merge, null deletes, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeKube:
    def __init__(self) -> None:
        self.jobs: dict[JobKey, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.patches: list[tuple[JobKey, str, dict[str, Any]]] = []
        """(job, the resourceVersion precondition sent, the status patch) per status write, refused too."""
        self.deleted_pods: list[tuple[str, str, int | None]] = []
        self.lease_reads: list[str] = []
        self.answering = True
        self.priority_classes: dict[str, int] = dict(api.PRIORITY_CLASS_VALUES)
        """What the cluster has (the chart's classes, as the light stack installs them)."""
        self.queues: dict[str, dict[str, Any]] = {}
        """TranscodeQueue objects by name (none: the built-in live, default, batch serve)."""
        self.queue_status_patches: list[tuple[str, dict[str, Any]]] = []
        self.fail: dict[str, ApiException] = {}
        """Call name -> the error that call raises (until removed)."""
        self._rv = 100

    # ------------------------------------------------------------------------------ test setup

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def add_job(
        self, name: str, namespace: str = "media", *, status: dict[str, Any] | None = None, **spec: Any
    ) -> dict[str, Any]:
        body = {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "generation": 1,
                "resourceVersion": self._next_rv(),
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {**SPEC, **spec},
            # A job the operator has written has seen its generation; a new one (no status) has not.
            "status": {"observedGeneration": 1, **copy.deepcopy(status)} if status else {},
        }
        self.jobs[(namespace, name)] = body
        return copy.deepcopy(body)

    def change_job(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Someone else writes the job (a runner's progress): a new resourceVersion."""
        body = self.jobs[(namespace, name)]
        _merge(body.setdefault("status", {}), status)
        body["metadata"]["resourceVersion"] = self._next_rv()
        return copy.deepcopy(body)

    def add_node(self, name: str, *, slots: int = 2, renewed_ago: float = 0.0, lease_seconds: int = 15) -> None:
        self.nodes[name] = {
            "metadata": {
                "name": name,
                "labels": {api.LABEL_WORKER: "true", api.LABEL_ENCODER_PREFIX + "libx264": "true"},
            }
        }
        self.renew(name, renewed_ago=renewed_ago, lease_seconds=lease_seconds, slots=slots)

    def renew(self, node: str, *, renewed_ago: float = 0.0, lease_seconds: int = 15, slots: int = 2) -> dict[str, Any]:
        lease = {
            "metadata": {
                "name": api.LEASE_PREFIX + node,
                "namespace": api.DEFAULT_SYSTEM_NAMESPACE,
                "resourceVersion": self._next_rv(),
                "annotations": {api.ANNOTATION_SLOTS: str(slots)},
            },
            "spec": {
                "holderIdentity": node,
                "leaseDurationSeconds": lease_seconds,
                "renewTime": stamp(datetime.now(UTC) - timedelta(seconds=renewed_ago)),
            },
        }
        self.leases[api.LEASE_PREFIX + node] = lease
        return copy.deepcopy(lease)

    def terminate_namespace(self, name: str) -> None:
        self.namespaces[name] = {
            "metadata": {"name": name, "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Terminating"},
        }

    def _maybe_fail(self, call: str) -> None:
        if call in self.fail:
            raise self.fail[call]

    # ---------------------------------------------------------------------------- the adapter

    async def reachable(self, *, system_namespace: str) -> bool:
        return self.answering

    async def list_all(self, *, system_namespace: str, keep: Keep) -> dict[str, list[Any]]:
        self._maybe_fail("list_all")
        listed = copy.deepcopy(
            {
                "jobs": list(self.jobs.values()),
                "pods": list(self.pods.values()),
                "nodes": list(self.nodes.values()),
                "leases": list(self.leases.values()),
                "namespaces": list(self.namespaces.values()),
                "priorityclasses": [{"metadata": {"name": n}, "value": v} for n, v in self.priority_classes.items()],
                "queues": list(self.queues.values()),
            }
        )
        return {kind: [k for o in objects if (k := keep(kind, o)) is not None] for kind, objects in listed.items()}

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.lease_reads.append(name)
        self._maybe_fail("get_lease")
        lease = self.leases.get(name)
        return copy.deepcopy(lease) if lease is not None else None

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._maybe_fail("get_job")
        body = self.jobs.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def patch_job_status(self, job: JobRecord, status: dict[str, Any]) -> dict[str, Any] | None:
        self.patches.append((job.key, job.resource_version, copy.deepcopy(status)))
        self._maybe_fail("patch_job_status")
        body = self.jobs.get(job.key)
        if body is None or body["metadata"]["resourceVersion"] != job.resource_version:
            return None  # 404 or 409, as KubeClient answers them
        _merge(body.setdefault("status", {}), status)
        body["metadata"]["resourceVersion"] = self._next_rv()
        return copy.deepcopy(body)

    async def post_event(self, job: JobRecord, *, reason: str, message: str, type_: str = "Normal") -> None:
        self._maybe_fail("post_event")
        self.events.append({"job": job.key, "reason": reason, "message": message, "type": type_})

    async def create_objects(self, namespace: str, bodies: list[dict[str, Any]]) -> None:
        self._maybe_fail("create_objects")
        self.objects = getattr(self, "objects", []) + [copy.deepcopy(b) for b in bodies]

    async def signing_key(self, namespace: str) -> bytes:
        self._maybe_fail("signing_key")
        return b"k" * 32

    async def api_server_endpoints(self) -> list[tuple[str, int]]:
        return [("172.18.0.2", 6443)]

    async def ensure_network_policy(self, namespace: str, body: dict[str, Any]) -> None:
        self._maybe_fail("ensure_network_policy")
        self.network_policies = getattr(self, "network_policies", {}) | {namespace: copy.deepcopy(body)}

    async def create_pod(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        self._maybe_fail("create_pod")
        meta = manifest["metadata"]
        key = (meta["namespace"], meta["name"])
        if key in self.pods:
            return None
        body = copy.deepcopy(manifest)
        body["metadata"]["resourceVersion"] = self._next_rv()
        self.pods[key] = body
        return copy.deepcopy(body)

    def add_queue(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": api.API_VERSION,
            "kind": api.QUEUE_KIND,
            "metadata": {"name": name, "generation": 1, "resourceVersion": self._next_rv()},
            "spec": spec,
        }
        self.queues[name] = body
        return copy.deepcopy(body)

    async def patch_queue_status(self, name: str, status: dict[str, Any]) -> None:
        self._maybe_fail("patch_queue_status")
        self.queue_status_patches.append((name, copy.deepcopy(status)))
        if name in self.queues:
            _merge(self.queues[name].setdefault("status", {}), status)

    async def delete_pod(self, namespace: str, name: str, *, grace: int | None = None) -> None:
        self._maybe_fail("delete_pod")
        self.deleted_pods.append((namespace, name, grace))
        self.pods.pop((namespace, name), None)


class ListRecorder:
    """The Recorder protocol, keeping each call as a tuple."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def scheduling_pass(self, cycle: Any, *, seconds: float) -> None:
        self.calls.append(("pass", len(cycle.assignments), len(cycle.preemptions), cycle.considered))

    def admission(self, job: JobRecord, *, placed: bool, encoder: str) -> None:
        self.calls.append(("admission", job.name, placed, encoder))

    def transition(self, job: JobRecord, *, old: Any, step: Any, body: Any) -> None:
        self.calls.append(("transition", job.name, old.value, step.target.value, step.reason))


def settings(**scheduling: Any) -> Settings:
    return Settings(
        scheduling=SchedulingSettings(
            **{"tick_seconds": 0.5, "backoff_base_seconds": 1, "backoff_cap_seconds": 2, **scheduling}
        )
    )


async def started(kube: FakeKube, **scheduling: Any) -> tuple[Driver, ListRecorder]:
    """A Driver on `kube` whose cache has been filled by a resync (what `run` does first)."""
    recorder = ListRecorder()
    driver = Driver(Cache(), kube, settings(**scheduling), recorder=recorder)
    await driver.resync()
    # The API has answered for long: an expired Lease means the node (reachability.py).
    driver.reachability.since = driver.clock() - timedelta(hours=1)
    return driver, recorder
