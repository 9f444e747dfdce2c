"""What the scheduler benchmark submits and how it watches the outcome: the job manifest, the creators
(a burst as fast as a client can, and a steady paced rate), the baseline admitter (the minimal writes one
admission needs, built with the operator's own pure builders), and a tracker fed by two watches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import ffrtmp_api as api
from ffrtmp_operator import job_identity, lifecycle, pods
from ffrtmp_operator.settings import PodSettings

from .kube import Kube

JOBS = f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{{ns}}/{api.PLURAL}"


def job_manifest(name: str) -> dict[str, Any]:
    """A small file job, like `examples/`: a 10 s test source to an emptyDir, libx264 on any worker."""
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name, "labels": {"ffrtmp.io/bench": "true"}},
        "spec": {
            "input": {"testSource": {"pattern": "testsrc2", "width": 640, "height": 360, "durationSeconds": 10}},
            "output": {"url": f"file:///out/{name}.mp4"},
            "video": {"codec": "h264", "preset": "veryfast"},
            "volumes": [{"name": "out", "mountPath": "/out", "emptyDir": {}}],
        },
    }


@dataclass
class JobTimes:
    """When things happened to one job (time.time() seconds; None until seen)."""

    created: float | None = None  # the create request was sent
    queued_seen: float | None = None  # the job watch first showed phase Queued
    assigned_seen: float | None = None  # the job watch first showed a placed phase (Assigned or later)
    bound_seen: float | None = None  # the pod watch first showed a pod with nodeName for this job
    queued_at: str | None = None  # the operator's own stamps in status.transitions
    assigned_at: str | None = None


@dataclass
class Tracker:
    """Collects JobTimes from the creators and from the job and pod watches (called from several threads;
    each field is written once, so the GIL's atomic dict/attribute updates are enough)."""

    prefix: str = ""  # only jobs named <prefix>-... belong to this phase (a watch also lists older ones)
    jobs: dict[str, JobTimes] = field(default_factory=dict)
    bound: int = 0
    progress: int = 0  # first sightings of Queued, Assigned or a bound pod: the operator is still moving
    all_bound: threading.Event = field(default_factory=threading.Event)
    expected: int = 0

    def times(self, name: str) -> JobTimes:
        t = self.jobs.get(name)
        if t is None:
            t = self.jobs.setdefault(name, JobTimes())
        return t

    def on_job(self, kind: str, obj: dict[str, Any], seen: float) -> None:
        if kind == "DELETED":
            return
        name = obj["metadata"]["name"]
        if not name.startswith(self.prefix):
            return
        status = obj.get("status") or {}
        phase = status.get("phase")
        t = self.times(name)
        if phase == "Queued" and t.queued_seen is None:
            t.queued_seen = seen
            self.progress += 1
        if phase in ("Assigned", "Processing", "Completed") and t.assigned_seen is None:
            t.assigned_seen = seen
            self.progress += 1
            # The last Queued -> Assigned pair of the operator's own stamps (a job may be requeued).
            for entry in status.get("transitions", []):
                if entry.get("phase") == "Queued":
                    t.queued_at = entry.get("at")
                elif entry.get("phase") == "Assigned":
                    t.assigned_at = entry.get("at")

    def on_pod(self, kind: str, obj: dict[str, Any], seen: float) -> None:
        if kind == "DELETED" or not obj.get("spec", {}).get("nodeName"):
            return
        job = obj["metadata"].get("labels", {}).get(api.LABEL_JOB)
        if not job or not job.startswith(self.prefix):
            return
        t = self.times(job)
        if t.bound_seen is None:
            t.bound_seen = seen
            self.bound += 1
            self.progress += 1
            if self.expected and self.bound >= self.expected:
                self.all_bound.set()


# --------------------------------------------------------------------------------------- creators


class Creator:
    """Creates jobs named <prefix>-NNNNN with `concurrency` threads; counts its own writes."""

    def __init__(self, kube: Kube, *, namespace: str, tracker: Tracker, concurrency: int) -> None:
        self.kube = kube
        self.ns = namespace
        self.tracker = tracker
        self.concurrency = concurrency
        self.writes = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def create(self, name: str, after: Callable[[str], None] | None = None) -> None:
        self.tracker.times(name).created = time.time()
        try:
            self.kube.request("POST", JOBS.format(ns=self.ns), job_manifest(name))
            if after:
                after(name)
        except Exception as exc:  # noqa: BLE001 - counted and reported; the run goes on
            with self._lock:
                self.errors.append(repr(exc)[:300])
        finally:
            with self._lock:
                self.writes += 1

    def burst(self, names: list[str], *, after: Callable[[str], None] | None = None) -> float:
        """Create all `names` as fast as `concurrency` threads can; returns the seconds it took."""
        return run_paced(
            lambda n: self.create(n, after), names, rate_per_s=None, threads=self.concurrency, prefix="create"
        )

    def paced(self, names: list[str], *, rate_per_s: float) -> float:
        """Create `names` at a steady `rate_per_s`; returns the achieved rate."""
        elapsed = run_paced(self.create, names, rate_per_s=rate_per_s, threads=self.concurrency, prefix="paced")
        return len(names) / elapsed if elapsed > 0 else 0.0


def run_paced(
    fn: Callable[[str], None], names: list[str], *, rate_per_s: float | None, threads: int, prefix: str
) -> float:
    """fn(name) for every name in `threads` threads: as fast as they go, or each on its own schedule at
    `rate_per_s` (so one slow call does not delay the next). Returns the seconds it took."""
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix=prefix) as pool:
        if rate_per_s is None:
            list(pool.map(fn, names))
        else:
            for i, name in enumerate(names):
                delay = began + i / rate_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(fn, name)
    return time.monotonic() - began


# --------------------------------------------------------------------------------------- baseline


class BaselineAdmitter:
    """The minimal admission for one job: one status merge patch (Queued + Assigned transitions, node, pod,
    attempts, encoder, conditions), the job's own identity (ServiceAccount, Role, RoleBinding: its pod is
    refused without the ServiceAccount, its runner could not report without the Role) and one pod create,
    all built by the operator's pure builders, onto the least loaded node. No watch, no cache, no events:
    the ceiling a client gets from this apiserver."""

    def __init__(self, kube: Kube, *, namespace: str, nodes: list[str]) -> None:
        self.kube = kube
        self.ns = namespace
        self.load = {n: 0 for n in nodes}
        self.writes = 0
        self._lock = threading.Lock()
        self._settings = PodSettings()

    def _place(self) -> str:
        with self._lock:  # assume before writing, like the operator: no two threads pick one free slot
            node = min(self.load, key=self.load.__getitem__)
            self.load[node] += 1
            return node

    def admit(self, name: str, uid: str, body: dict[str, Any]) -> None:
        node = self._place()
        now = datetime.now(timezone.utc)
        job = api.TranscodeJob.model_validate(body)
        status = lifecycle.transition({}, api.Phase.QUEUED, reason=api.Reason.CREATED, now=now)
        status = {**status, **lifecycle.transition(status, api.Phase.ASSIGNED, reason=api.Reason.ADMITTED, now=now)}
        pod = pods.build_pod(
            job, namespace=self.ns, name=name, uid=uid, attempt=1, node=node, encoder="libx264", settings=self._settings
        )
        status.update(node=node, pod=pod["metadata"]["name"], attempts=1, encoder="libx264")
        self.kube.request(
            "PATCH", f"{JOBS.format(ns=self.ns)}/{name}/status", {"status": status}, content_type=api.MERGE_PATCH
        )
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{self.ns}"
        identity = {
            f"/api/v1/namespaces/{self.ns}/serviceaccounts": job_identity.service_account(self.ns, name, uid),
            f"{rbac}/roles": job_identity.role(self.ns, name, uid),
            f"{rbac}/rolebindings": job_identity.role_binding(self.ns, name, uid),
        }
        for path, obj in identity.items():
            self.kube.request("POST", path, obj)
        self.kube.request("POST", f"/api/v1/namespaces/{self.ns}/pods", pod)
        with self._lock:
            self.writes += 2 + len(identity)


def baseline_create_and_admit(
    creator: Creator, admitter: BaselineAdmitter, names: list[str], *, rate_per_s: float | None = None
) -> float:
    """Each of the creator's threads creates a job and admits it at once (create, status patch, identity,
    pod): as fast as they go, or each job on its own schedule at `rate_per_s`. Returns the seconds taken."""

    def one(name: str) -> None:
        creator.tracker.times(name).created = time.time()
        try:
            created = creator.kube.request("POST", JOBS.format(ns=creator.ns), job_manifest(name))
            with creator._lock:
                creator.writes += 1
            admitter.admit(name, created["metadata"]["uid"], created)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            with creator._lock:
                creator.errors.append(repr(exc)[:300])

    return run_paced(one, names, rate_per_s=rate_per_s, threads=creator.concurrency, prefix="baseline")
