"""The operator's in-memory view of the cluster and its pending-work queue.

Fed by the watch handlers and by the scheduler's own write responses, read by the scheduler (driver.py).
Everything runs on kopf's one event loop, so no locks: the asyncio.Condition only wakes the loop.
The queue is a heap keyed by job (update and delete by key, lazily) in scheduling.order_key order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ffrtmp_api import Phase

from . import fairshare, queues
from .queues import QueueRecord
from .records import JobKey, JobRecord, LeaseRecord, NodeRecord, PodRecord
from .scheduling import OrderKey, order_key


def _newer(old: str, new: str) -> bool:
    """Whether `new` is not older than `old`. resourceVersions are opaque, but in practice etcd
    revisions; comparing them keeps a late watch event from undoing a fresher write response."""
    try:
        return int(new) >= int(old)
    except ValueError:
        return True


class JobHeap:
    """Queued jobs by order key. Entries are replaced and removed lazily through an index."""

    def __init__(self) -> None:
        self._heap: list[list[Any]] = []
        self._index: dict[JobKey, list[Any]] = {}
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: JobKey) -> bool:
        return key in self._index

    def keys(self) -> list[JobKey]:
        return list(self._index)

    def push(self, key: JobKey, sort_key: OrderKey) -> None:
        old = self._index.get(key)
        if old is not None and old[0] == sort_key:
            return
        self.remove(key)
        entry = [sort_key, next(self._counter), key]
        self._index[key] = entry
        heapq.heappush(self._heap, entry)

    def remove(self, key: JobKey) -> None:
        entry = self._index.pop(key, None)
        if entry is not None:
            entry[2] = None  # tombstone; dropped when it reaches the top
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._index):
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)

    def ordered(self) -> Iterator[JobKey]:
        """Keys in order, lazily: a cycle that stops after k jobs pays O(k log n), not a full sort."""
        heap = list(self._heap)
        while heap:
            entry = heapq.heappop(heap)
            if entry[2] is not None:
                yield entry[2]


class Cache:
    def __init__(self) -> None:
        self.jobs: dict[JobKey, JobRecord] = {}
        self.nodes: dict[str, NodeRecord] = {}
        self.leases: dict[str, LeaseRecord] = {}
        self.pods: dict[tuple[str, str], PodRecord] = {}
        self.pods_by_job: dict[JobKey, set[str]] = {}
        self.priority_values: dict[str, int] = {}
        # TranscodeQueue objects by name, and the queues jobs may name: those plus the built-in live,
        # default and batch where no object of the name exists (queues.effective).
        self.queue_objects: dict[str, QueueRecord] = {}
        self.queues: dict[str, QueueRecord] = queues.effective({})
        self.usage = fairshare.Usage()  # past admissions per (queue, namespace), for fair sharing
        # TranscodePresets by (namespace, name), fed by presets.register's watch; not reset by a resync
        # (kopf lists them again whenever its watch starts) and read when a job's preset is resolved.
        self.presets: dict[tuple[str, str], Any] = {}
        self.queue = JobHeap()
        self.dirty: dict[JobKey, None] = {}  # insertion-ordered: jobs are reconciled in arrival order
        self.changed = asyncio.Condition()
        self.nodes_changed = False
        # Namespaces being deleted: their jobs are left alone (not queued, not reconciled) until they go,
        # since nothing can be created there (pods, Events) and the namespace controller deletes them.
        self.terminating: set[str] = set()
        # Whether the cache reflects the cluster now: set by the scheduler's resync, cleared when the
        # scheduler stops. A standby replica (kopf peering paused) gets no watch events, so its cache is
        # stale; its scrape then leaves out the gauges built from the cache (metrics_cache), so that a
        # dashboard's max over replicas is the active one's view, not a mix with an outdated one.
        self.live = False
        # Watch events seen while a resync reads its lists (None: no resync in flight), replayed over
        # them: a list answered before an event may be older than it (a pod that finished meanwhile).
        self._journal: list[Callable[[], Any]] | None = None

    # ------------------------------------------------------------------------------------ updates

    def _journaled(self, replay: Callable[[], Any]) -> None:
        if self._journal is not None:
            self._journal.append(replay)

    def upsert_job(self, job: JobRecord) -> bool:
        """Store `job`; True when the operator has something to look at (not an older version, and
        more than a new resourceVersion: progress writes every few seconds must not wake the loop)."""
        self._journaled(lambda: self.upsert_job(job))
        old = self.jobs.get(job.key)
        if old is not None and not _newer(old.resource_version, job.resource_version):
            return False
        self.jobs[job.key] = job
        if old is not None and old.same_state(job):
            return False
        self.recheck(job.key)
        return True

    def recheck(self, key: JobKey) -> None:
        """Look at the job again in the next pass, queued or not as its cached record says. Also after a
        write conflict: the newer version read back may differ only in progress (same_state), and the
        decision the failed write carried (say Processing -> Completed) must still be made."""
        job = self.jobs.get(key)
        if job is None:
            return
        if job.phase == Phase.QUEUED and not (
            job.paused or job.canceled or job.broken or job.deleting or key[0] in self.terminating
        ):
            self.queue.push(key, order_key(job, self.priority_values, self.queues))
        else:
            self.queue.remove(key)
        self.dirty[key] = None

    def delete_job(self, key: JobKey, *, resource_version: str = "") -> None:
        """Forget the job unless the cache holds a newer object of that name (recreated since)."""
        self._journaled(lambda: self.delete_job(key, resource_version=resource_version))
        old = self.jobs.get(key)
        if old is not None and not _newer(old.resource_version, resource_version):
            return
        self.jobs.pop(key, None)
        self.queue.remove(key)
        self.dirty.pop(key, None)

    def set_namespace_terminating(self, name: str, terminating: bool) -> bool:
        """Record whether namespace `name` is being deleted; True when that is news. Its queued jobs
        leave the queue; if it turns out live again (deleted and created anew), its jobs are looked at."""
        self._journaled(lambda: self.set_namespace_terminating(name, terminating))
        if (name in self.terminating) == terminating:
            return False
        if terminating:
            self.terminating.add(name)
            for key in [k for k in self.queue.keys() if k[0] == name]:
                self.queue.remove(key)
        else:
            self.terminating.discard(name)
            for key in [k for k in self.jobs if k[0] == name]:
                self.recheck(key)
        return True

    def upsert_pod(self, pod: PodRecord) -> bool:
        self._journaled(lambda: self.upsert_pod(pod))
        old = self.pods.get((pod.namespace, pod.name))
        if old is not None and (old == pod or not _newer(old.resource_version, pod.resource_version)):
            return False
        self.pods[(pod.namespace, pod.name)] = pod
        self.pods_by_job.setdefault(pod.job_key, set()).add(pod.name)
        self.dirty[pod.job_key] = None
        return True

    def delete_pod(self, namespace: str, name: str, *, resource_version: str = "") -> None:
        self._journaled(lambda: self.delete_pod(namespace, name, resource_version=resource_version))
        old = self.pods.get((namespace, name))
        if old is not None and not _newer(old.resource_version, resource_version):
            return  # a newer pod of that name
        pod = self.pods.pop((namespace, name), None)
        if pod is not None:
            names = self.pods_by_job.get(pod.job_key, set())
            names.discard(name)
            if not names:
                self.pods_by_job.pop(pod.job_key, None)
            self.dirty[pod.job_key] = None

    def pods_of(self, key: JobKey) -> list[PodRecord]:
        return [self.pods[(key[0], n)] for n in self.pods_by_job.get(key, ()) if (key[0], n) in self.pods]

    def set_node(self, name: str, node: NodeRecord | None) -> bool:
        """True when placement could change (labels, cordon, appearance); kubelet status churn is not."""
        old = self.nodes.pop(name, None) if node is None else self.nodes.get(name)
        if node is not None:
            self.nodes[name] = node
        changed = old != node
        self.nodes_changed |= changed
        return changed

    def set_lease(self, name: str, lease: LeaseRecord | None) -> bool:
        """True unless this is a plain renewal of a live lease (every few seconds per node): expiry
        has no event anyway and is found by the scheduler's periodic sweep. An older version than the
        cached one (a lagging watch behind the scheduler's own read of the Lease) is ignored."""
        old = self.leases.get(name)
        if lease is not None and old is not None and not _newer(old.resource_version, lease.resource_version):
            return False
        if lease is None:
            self.leases.pop(name, None)
        else:
            self.leases[name] = lease
        renewal = (
            old is not None
            and lease is not None
            and (old.slots, old.duration_seconds) == (lease.slots, lease.duration_seconds)
            and old.renew_time is not None
            and lease.renew_time is not None
            and (lease.renew_time - old.renew_time).total_seconds() < old.duration_seconds
        )
        self.nodes_changed |= not renewal
        return not renewal

    def set_priority_values(self, values: Mapping[str, int]) -> None:
        if dict(values) == self.priority_values:
            return
        self.priority_values = dict(values)
        self._rekey()  # order depends on class values

    def _rekey(self) -> None:
        for key in self.queue.keys():
            self.queue.push(key, order_key(self.jobs[key], self.priority_values, self.queues))

    def set_queue(self, name: str, record: QueueRecord | None) -> bool:
        """Store or forget a TranscodeQueue object; True when scheduling may change (not an older version,
        not only a status write of ours)."""
        self._journaled(lambda: self.set_queue(name, record))
        old = self.queue_objects.get(name)
        if record is not None and old is not None and not _newer(old.resource_version, record.resource_version):
            return False
        if record is None:
            self.queue_objects.pop(name, None)
        else:
            self.queue_objects[name] = record
        if old == record:
            return False
        before, self.queues = self.queues, queues.effective(self.queue_objects)
        if {n: q.order for n, q in before.items()} != {n: q.order for n, q in self.queues.items()}:
            self._rekey()
        self.nodes_changed = True  # placement may change (a queue resumed, appeared, raised its cap): wake the loop
        return True

    def replace_all(
        self,
        *,
        jobs: list[JobRecord],
        pods: list[PodRecord],
        nodes: list[NodeRecord],
        leases: list[LeaseRecord],
        priority_values: Mapping[str, int],
        terminating: Iterable[str] = (),
        queue_objects: Iterable[QueueRecord] = (),
    ) -> None:
        """A full resync (at scheduler start): drop what a paused replica may have missed, then replay
        the watch events that arrived since begin_resync() (each is applied only if not older)."""
        journal, self._journal = self._journal or [], None
        self.jobs, self.nodes, self.leases, self.pods, self.pods_by_job = {}, {}, {}, {}, {}
        self.queue, self.dirty = JobHeap(), {}
        self.priority_values = dict(priority_values)
        self.terminating = set(terminating)  # before the jobs: theirs are not queued
        self.queue_objects = {q.name: q for q in queue_objects}  # before the jobs: their order keys read them
        self.queues = queues.effective(self.queue_objects)
        for node in nodes:
            self.nodes[node.name] = node
        for lease in leases:
            self.leases[lease.node] = lease
        for pod in pods:
            self.upsert_pod(pod)
        # Arrival order, so Pending jobs are queued first-come first-served.
        for job in sorted(jobs, key=lambda j: j.arrival):
            self.upsert_job(job)
        for replay in journal:
            replay()
        self.nodes_changed = True
        self.live = True

    def begin_resync(self) -> None:
        """Lists are about to be read for replace_all(): journal the watch events from now on."""
        self._journal = []

    def abandon_resync(self) -> None:
        self._journal = None

    def take_dirty(self) -> list[JobKey]:
        keys = list(self.dirty)
        self.dirty.clear()
        return keys

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()
