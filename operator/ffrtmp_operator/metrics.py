"""The operator's Prometheus metrics (served on :9090): counters and histograms the handlers record as
jobs move, and gauges computed at scrape time from a snapshot of jobs, nodes and leases (metrics_cache
builds it from the operator's cache).

Naming follows Prometheus: `_total` only on counters, seconds and bytes as units, and every label value
comes from a closed set (unknown values become "other") so a bad object cannot explode the series count.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from wsgiref.simple_server import WSGIServer

import ffrtmp_api as api
from ffrtmp_api import parse_time
from ffrtmp_api.samples import JobSample, NodeSample  # the snapshot's rows; built from API dicts or the cache
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

OTHER = "other"
PHASES = tuple(p.value for p in api.Phase)
QUEUES = tuple(api.QUEUE_RANK)
# The queue label takes the names of existing TranscodeQueues (an admin creates them; a job cannot invent
# one), up to this many; beyond it, and for names no queue object has, "other".
MAX_QUEUE_LABELS = 100
PRIORITIES = tuple(api.PRIORITY_CLASSES)
REASONS = tuple(r.value for r in api.Reason)
ENCODERS = tuple(sorted({e for table in api.ENCODERS.values() for e in table.values()} | {"copy"}))
# Outcome of one attempt to admit a job onto a node (assume, then write the pod and status).
ADMISSION_RESULTS = ("admitted", "unschedulable", "conflict", "error")
# Outcome of considering one queued job in a scheduling cycle.
SCHEDULING_RESULTS = ("scheduled", "unschedulable", "backoff", "preempting", "error")
# Reasons a run can fail with (pre-listed so failure panels show 0, not "no data").
FAILURE_REASONS = tuple(
    r.value
    for r in (
        api.Reason.INPUT_ERROR,
        api.Reason.ENCODER_ERROR,
        api.Reason.OUTPUT_ERROR,
        api.Reason.NODE_LOST,
        api.Reason.TIMEOUT,
        api.Reason.PREEMPTED,
        api.Reason.POD_ERROR,
    )
)
NODE_STATUSES = api.NODE_STATUSES

WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
RUN_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 2 * 3600, 4 * 3600, 12 * 3600)
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
PSNR_BUCKETS = (20, 25, 30, 33, 36, 38, 40, 42, 45, 50, 60)
SSIM_BUCKETS = (0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 1.0)
SCORE_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)  # VMAF and QoE are 0-100
ENERGY_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000, 100_000)
EFFICIENCY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 50, 100, 500, 1000)


def bounded(value: object, allowed: Iterable[str]) -> str:
    """The label value if it is one of `allowed`, else "other" (keeps label sets closed)."""
    text = "" if value is None else str(value)
    return text if text in allowed else OTHER


def queue_labels(names: Iterable[str]) -> tuple[str, ...]:
    """The queue label values: the built-in queues, then the other queue names in order, capped."""
    others = sorted(set(names) - set(QUEUES))[: max(MAX_QUEUE_LABELS - len(QUEUES), 0)]
    return (*QUEUES, *others)


# -------------------------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class MetricsSnapshot:
    """What the scrape-time gauges are computed from; lives for one scrape."""

    now: datetime
    jobs: list[JobSample] = field(default_factory=list)
    nodes: list[NodeSample] = field(default_factory=list)
    queues: tuple[str, ...] = QUEUES  # the queue label values (queue_labels of the TranscodeQueues)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def snapshot_families(snap: MetricsSnapshot) -> list[GaugeMetricFamily]:
    """Pure: the scrape-time gauges for one snapshot."""
    jobs = GaugeMetricFamily("ffrtmp_jobs", "TranscodeJobs by phase and queue.", labels=["phase", "queue"])
    depth = GaugeMetricFamily(
        "ffrtmp_queue_depth", "Queued jobs waiting for a node, by queue and priority.", labels=["queue", "priority"]
    )
    oldest = GaugeMetricFamily(
        "ffrtmp_queue_oldest_wait_seconds", "How long the oldest queued job of each queue has waited.", labels=["queue"]
    )
    nodes = GaugeMetricFamily("ffrtmp_nodes", "Worker nodes by status.", labels=["status"])
    slots = GaugeMetricFamily("ffrtmp_node_slots", "Job slots a node offers (from its Lease).", labels=["node"])
    used = GaugeMetricFamily("ffrtmp_node_slots_used", "Job slots in use on a node.", labels=["node"])
    running = ["job_namespace", "transcodejob", "node"]
    progress = GaugeMetricFamily("ffrtmp_job_progress_ratio", "Running job progress, 0-1.", labels=running)
    fps = GaugeMetricFamily("ffrtmp_job_frames_per_second", "Running job encode rate in frames/s.", labels=running)
    speed = GaugeMetricFamily(
        "ffrtmp_job_speed_ratio", "Running job encode speed as a multiple of real time.", labels=running
    )

    queues = frozenset(snap.queues)
    by_phase = Tally((bounded(j.phase, PHASES), bounded(j.queue, queues)) for j in snap.jobs)
    by_queue = Tally(
        (bounded(j.queue, queues), bounded(j.priority, PRIORITIES)) for j in snap.jobs if j.phase == api.Phase.QUEUED
    )
    # Jobs naming no existing queue (they wait for it) show under "other" while there are any.
    labels = (*snap.queues, OTHER) if any(q == OTHER for _, q in by_phase) else snap.queues
    for phase in PHASES:  # every phase always present, so a panel shows 0 rather than "no data"
        for queue in labels:
            jobs.add_metric([phase, queue], by_phase.get((phase, queue), 0))
    for queue in labels:
        for priority in PRIORITIES:
            depth.add_metric([queue, priority], by_queue.get((queue, priority), 0))
        waits = [
            (snap.now - j.queued_at).total_seconds()
            for j in snap.jobs
            if j.phase == api.Phase.QUEUED and bounded(j.queue, queues) == queue and j.queued_at
        ]
        oldest.add_metric([queue], max(waits, default=0.0))

    statuses = Tally(n.status for n in snap.nodes)
    for status in NODE_STATUSES:
        nodes.add_metric([status], statuses.get(status, 0))
    slot_users = Tally(j.node for j in snap.jobs if j.holds_slot and j.node)
    for node in snap.nodes:
        slots.add_metric([node.name], node.slots)
        used.add_metric([node.name], slot_users.get(node.name, 0))

    for job in snap.jobs:
        if not job.holds_slot:
            continue
        labels = [job.namespace, job.name, job.node or ""]
        progress.add_metric(labels, min(max((job.progress_percent or 0.0) / 100.0, 0.0), 1.0))
        fps.add_metric(labels, job.fps or 0.0)
        speed.add_metric(labels, job.speed or 0.0)
    return [jobs, depth, oldest, nodes, slots, used, progress, fps, speed]


class SnapshotCollector(Collector):
    """Computes the gauges at scrape time from the snapshot callable (None until the operator sets one).
    A source that returns None has no current view (a standby replica): the gauges are left out."""

    def __init__(self) -> None:
        self.source: Callable[[], MetricsSnapshot | None] | None = None
        self.errors = 0  # scrapes whose snapshot failed; only the scrape thread writes it

    def describe(self) -> list[Metric]:
        return [*snapshot_families(MetricsSnapshot(now=datetime.now(timezone.utc))), self._errors_family()]

    def collect(self) -> Iterator[Metric]:
        snap: MetricsSnapshot | None = MetricsSnapshot(now=datetime.now(timezone.utc))
        if self.source is not None:
            try:
                snap = self.source()
            except Exception as error:  # a failed snapshot must not fail the whole scrape; counters still matter
                log.warning("metrics snapshot failed: %r", error)
                self.errors += 1
                snap = MetricsSnapshot(now=datetime.now(timezone.utc))
        if snap is not None:
            yield from snapshot_families(snap)
        yield self._errors_family()

    def _errors_family(self) -> CounterMetricFamily:
        family = CounterMetricFamily("ffrtmp_metrics_snapshot_errors", "Scrapes whose job/node snapshot failed.")
        family.add_metric([], self.errors)
        return family


# ----------------------------------------------------------------------------------------- recording


class OperatorMetrics:
    """All operator metrics on one registry; the scheduler reports through recorder.MetricsRecorder, which
    calls the record_* methods."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        if process_metrics:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.transitions = Counter(
            "ffrtmp_job_transitions_total",
            "Job phase changes, by the phase entered and reason.",
            ["phase", "reason"],
            registry=r,
        )
        self.admissions = Counter(
            "ffrtmp_admissions_total",
            "Attempts to admit a queued job onto a node, by queue and result.",
            ["queue", "result"],
            registry=r,
        )
        self.scheduling_attempts = Counter(
            "ffrtmp_scheduling_attempts_total",
            "Queued jobs considered by a scheduling cycle, by result.",
            ["result"],
            registry=r,
        )
        self.failures = Counter(
            "ffrtmp_job_failures_total", "Failed job attempts (retried or final), by reason.", ["reason"], registry=r
        )
        self.retries = Counter(
            "ffrtmp_job_retries_total",
            "Failed attempts that were queued again, by failure reason.",
            ["reason"],
            registry=r,
        )
        self.wait = Histogram(
            "ffrtmp_job_queue_wait_seconds",
            "Time from queued to assigned to a node.",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.run = Histogram(
            "ffrtmp_job_run_seconds",
            "Time from start to the end of the run, by queue and final phase.",
            ["queue", "phase"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.cycle = Histogram(
            "ffrtmp_scheduling_cycle_duration_seconds",
            "Duration of one scheduling cycle.",
            buckets=CYCLE_BUCKETS,
            registry=r,
        )
        results = {
            "psnr": ("ffrtmp_job_psnr_decibels", "PSNR of completed jobs' output against input.", PSNR_BUCKETS),
            "ssim": ("ffrtmp_job_ssim_ratio", "SSIM (0-1) of completed jobs' output against input.", SSIM_BUCKETS),
            "vmaf": ("ffrtmp_job_vmaf_score", "VMAF (0-100) of completed jobs' output.", SCORE_BUCKETS),
            "qoeScore": ("ffrtmp_job_qoe_score", "QoE score (0-100) of completed jobs.", SCORE_BUCKETS),
            "energyJoules": ("ffrtmp_job_energy_joules", "Energy used per completed job.", ENERGY_BUCKETS),
            "efficiencyScore": (
                "ffrtmp_job_efficiency_score",
                "Output media seconds per kJ of completed jobs.",
                EFFICIENCY_BUCKETS,
            ),
        }
        self.result_histograms = {
            key: Histogram(name, doc, ["encoder"], buckets=buckets, registry=r)
            for key, (name, doc, buckets) in results.items()
        }
        self.output_bytes = Counter(
            "ffrtmp_job_output_bytes_total", "Bytes written by completed jobs, by encoder.", ["encoder"], registry=r
        )
        self.output_seconds = Counter(
            "ffrtmp_job_output_media_seconds_total",
            "Media seconds produced by completed jobs, by encoder.",
            ["encoder"],
            registry=r,
        )
        self.unavailable = Counter(
            "ffrtmp_job_measurements_unavailable_total",
            "Completed jobs whose node could not take a measure (vmaf, energy, ...), by measure.",
            ["measure"],
            registry=r,
        )
        self.collector = SnapshotCollector()
        r.register(self.collector)
        # Queue names that label the counters: the built-ins, then TranscodeQueues as their jobs show up.
        self.queues: set[str] = set()
        self.queue_source: Callable[[], Collection[str]] = lambda: QUEUES
        self._pre_create()

    def set_queue_source(self, source: Callable[[], Collection[str]]) -> None:
        """The names of the TranscodeQueues that exist now (the cache's; read on the operator's loop, where
        the record_* calls come from)."""
        self.queue_source = source

    def _queue_label(self, queue: str) -> str:
        """`queue` when it names an existing queue, within MAX_QUEUE_LABELS names; else "other". A queue
        deleted later keeps its series until the operator restarts (as Kueue's ClusterQueue metrics do)."""
        if queue in self.queues:
            return queue
        if len(self.queues) >= MAX_QUEUE_LABELS or queue not in self.queue_source():
            return OTHER
        self._pre_create_queue(queue)
        return queue

    def _pre_create_queue(self, queue: str) -> None:
        self.queues.add(queue)
        self.wait.labels(queue=queue)
        for result in ADMISSION_RESULTS:
            self.admissions.labels(queue=queue, result=result)
        for phase in api.TERMINAL_PHASES:
            self.run.labels(queue=queue, phase=phase.value)

    def _pre_create(self) -> None:
        # Series that exist from the start show 0 instead of "no data" and make rate() work from the first event.
        for queue in QUEUES:
            self._pre_create_queue(queue)
        for result in SCHEDULING_RESULTS:
            self.scheduling_attempts.labels(result=result)
        for reason in FAILURE_REASONS:
            self.failures.labels(reason=reason)
            self.retries.labels(reason=reason)

    def set_snapshot_source(self, source: Callable[[], MetricsSnapshot | None] | None) -> None:
        self.collector.source = source

    def record_transition(
        self,
        *,
        old: str | None,
        new: str,
        queue: str,
        reason: str | None = None,
        failure: str | None = None,
        waited_s: float | None = None,
        ran_s: float | None = None,
    ) -> None:
        """Count one phase change. `failure` is the classified failure reason when the change ends a run
        in failure (to Failed, or back to Queued for a retry); waited_s when leaving Queued for a node;
        ran_s when a run ends (terminal phase)."""
        queue = self._queue_label(queue)
        self.transitions.labels(phase=bounded(new, PHASES), reason=bounded(reason, REASONS)).inc()
        if failure:
            self.failures.labels(reason=bounded(failure, REASONS)).inc()
            if new == api.Phase.QUEUED:
                self.retries.labels(reason=bounded(failure, REASONS)).inc()
        if waited_s is not None:  # leaving the queue for a node (from Queued, or Pending admitted at once)
            self.wait.labels(queue=queue).observe(max(waited_s, 0.0))
        if ran_s is not None and new in api.TERMINAL_PHASES:
            self.run.labels(queue=queue, phase=bounded(new, PHASES)).observe(max(ran_s, 0.0))

    def record_admission(self, result: str, *, queue: str, encoder: str | None = None) -> None:
        self.admissions.labels(queue=self._queue_label(queue), result=bounded(result, ADMISSION_RESULTS)).inc()
        if encoder is not None and result == "admitted":
            # The result series of this encoder exist at 0 while its first job runs, so increase() over
            # the quality/energy panels sees that job instead of a series born at 1 (no data).
            enc = bounded(encoder, ENCODERS)
            for histogram in self.result_histograms.values():
                histogram.labels(encoder=enc)
            self.output_bytes.labels(encoder=enc)
            self.output_seconds.labels(encoder=enc)

    def record_scheduling_attempt(self, result: str, count: int = 1) -> None:
        if count > 0:
            self.scheduling_attempts.labels(result=bounded(result, SCHEDULING_RESULTS)).inc(count)

    def record_cycle(self, seconds: float) -> None:
        self.cycle.observe(max(seconds, 0.0))

    def record_result(self, result: Mapping[str, Any] | None, *, encoder: str | None) -> None:
        """Observe a Completed job's status.result (quality, energy, output)."""
        if not result:
            return
        enc = bounded(encoder or result.get("encoder"), ENCODERS)
        for key, histogram in self.result_histograms.items():
            value = _number(result.get(key))
            if value is not None:
                histogram.labels(encoder=enc).observe(value)
        if (size := _number(result.get("outputBytes"))) is not None:
            self.output_bytes.labels(encoder=enc).inc(size)
        if (seconds := _number(result.get("durationSeconds"))) is not None:
            self.output_seconds.labels(encoder=enc).inc(seconds)
        for measure in result.get("unavailable") or []:
            self.unavailable.labels(measure=bounded(measure, ("psnr", "ssim", "vmaf", "energy"))).inc()

    def render(self) -> bytes:
        """The exposition text, as a scrape would see it."""
        return generate_latest(self.registry)

    def serve(self, *, host: str, port: int) -> WSGIServer | None:
        """Serve /metrics on host:port in a daemon thread; port 0 turns metrics off. Returns the server
        (call .shutdown() to stop it)."""
        if port == 0:
            return None
        # The *_created series double the series count for no dashboard use; the switch is process-wide,
        # which is fine in the operator process.
        disable_created_metrics()
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, server.server_port)
        return server


def seconds_since(start: object, *, now: datetime) -> float | None:
    """Seconds from an RFC 3339 timestamp (e.g. status.queuedAt) to `now`; None when unset or bad."""
    parsed = parse_time(start)
    return None if parsed is None else (now - parsed).total_seconds()
