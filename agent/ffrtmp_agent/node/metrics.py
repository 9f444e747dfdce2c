"""Node metrics on :9091: CPU, memory, load, GPUs (NVML), proven encoders, slots, and per-job CPU time,
memory and energy. A job's processes are the ones whose environment holds FFRTMP_PLAN (the runner and
the ffmpeg it starts); CPU package energy (RAPL) is split between jobs by their share of busy CPU time.

Label sets stay bounded: node, encoder (a fixed list), gpu index, and namespace/job only for jobs running
now. Metrics a machine cannot measure (no RAPL, no NVML) are absent rather than zero.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import psutil
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import energy

log = logging.getLogger(__name__)
SAMPLE_SECONDS = 2.0
JobKey = tuple[str, str]  # (namespace, job)


# ------------------------------------------------------------------------------------------- pure


def job_key(environ: dict[str, str]) -> JobKey | None:
    """The job a process works for, from the ExecutionPlan in its environment."""
    raw = environ.get(api.ENV_PLAN)
    if not raw:
        return None
    try:
        plan = json.loads(raw)
        return str(plan["namespace"]), str(plan["job"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class JobUsage:
    cpu_seconds: float = 0.0  # monotonic
    memory_bytes: int = 0
    energy_joules: float = 0.0  # monotonic; stays 0 without RAPL


@dataclass
class Sampler:
    """Samples job processes and RAPL every SAMPLE_SECONDS; the collector reads its snapshot."""

    root_pid: int | None = None
    """Standalone: count only descendants of this process (the agent), not the jobs of other standalone
    agents on the same machine. None (DaemonSet with hostPID): every process on the host."""
    jobs: dict[JobKey, JobUsage] = field(default_factory=dict)
    node_energy_joules: float | None = None  # None: no RAPL on this machine
    cpu_ratio: float = 0.0
    rapl_root: Path = field(default_factory=energy.rapl_root)
    """The same counters the runner reads, so dashboards and status.result.energyJoules agree."""
    _keys: dict[tuple[int, float], JobKey | None] = field(default_factory=dict)
    _rapl_prev: dict[str, int] | None = None
    _busy_prev: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _key_of(self, proc: psutil.Process) -> JobKey | None:
        ident = (proc.pid, proc.create_time())
        if ident not in self._keys:
            try:
                self._keys[ident] = job_key(proc.environ())
            except psutil.Error:
                self._keys[ident] = None
        return self._keys[ident]

    def _processes(self) -> list[psutil.Process]:
        if self.root_pid is None:
            return list(psutil.process_iter())
        try:
            return psutil.Process(self.root_pid).children(recursive=True)
        except psutil.Error:
            return []

    def sample(self) -> None:
        cpu: dict[JobKey, float] = {}
        mem: dict[JobKey, int] = {}
        alive: set[tuple[int, float]] = set()
        for proc in self._processes():
            try:
                key = self._key_of(proc)
                alive.add((proc.pid, proc.create_time()))
                if key is None:
                    continue
                t = proc.cpu_times()
                # Live processes plus their reaped children: nothing counted twice, exited helpers included.
                cpu[key] = cpu.get(key, 0.0) + t.user + t.system + t.children_user + t.children_system
                mem[key] = mem.get(key, 0) + proc.memory_info().rss
            except psutil.Error:
                continue
        self._keys = {k: v for k, v in self._keys.items() if k in alive}
        joules = self._rapl_joules()
        busy = energy.busy_cpu_seconds()
        busy_delta = busy - self._busy_prev if self._busy_prev is not None else 0.0
        self._busy_prev = busy
        with self._lock:
            cpu_delta = {k: max(0.0, c - self.jobs[k].cpu_seconds) if k in self.jobs else 0.0 for k, c in cpu.items()}
            shares = energy.attribute_energy(joules or 0.0, cpu_delta, busy_delta)
            jobs: dict[JobKey, JobUsage] = {}
            for key, seconds in cpu.items():
                prev = self.jobs.get(key, JobUsage())
                jobs[key] = JobUsage(max(prev.cpu_seconds, seconds), mem[key], prev.energy_joules + shares[key])
            self.jobs = jobs  # jobs with no process left drop out: their series end with the job
            self.cpu_ratio = psutil.cpu_percent(interval=None) / 100.0
            if joules is not None:
                self.node_energy_joules = (self.node_energy_joules or 0.0) + joules

    def _rapl_joules(self) -> float | None:
        """Joules used by all CPU packages since the last sample; None without readable RAPL."""
        values, wraps = energy.read_rapl(self.rapl_root)
        if values is None:
            return None
        joules = energy.package_joules(self._rapl_prev, values, wraps) if self._rapl_prev is not None else 0.0
        self._rapl_prev = values
        return joules

    def snapshot(self) -> tuple[dict[JobKey, JobUsage], float | None, float]:
        with self._lock:
            return dict(self.jobs), self.node_energy_joules, self.cpu_ratio

    def run(self, stop: threading.Event) -> None:
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline
        while not stop.is_set():
            try:
                self.sample()
            except Exception:
                log.exception("metrics sample failed")
            stop.wait(SAMPLE_SECONDS)


class NodeCollector(Collector):
    """Scrape-time collector: cheap reads (psutil, NVML) plus the sampler's job snapshot."""

    def __init__(self, node: str, *, slots: int, trials: dict[str, bool], sampler: Sampler):
        self.node = node
        self.slots = slots
        self.trials = trials
        self.sampler = sampler
        self.nvml = _nvml_init()

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=["node", *labels])

    def collect(self) -> Iterator[Any]:
        n = self.node
        jobs, node_energy, cpu_ratio = self.sampler.snapshot()
        vm = psutil.virtual_memory()
        simple = [
            ("ffrtmp_node_cpu_cores", "Logical CPU cores.", os.cpu_count() or 1),
            ("ffrtmp_node_cpu_utilization_ratio", "CPU busy share across all cores (0-1).", cpu_ratio),
            ("ffrtmp_node_memory_total_bytes", "Physical memory.", vm.total),
            ("ffrtmp_node_memory_available_bytes", "Memory available for new work.", vm.available),
            ("ffrtmp_agent_slots", "Jobs this node runs at once.", self.slots),
            ("ffrtmp_agent_slots_used", "Jobs running on this node now.", len(jobs)),
        ]
        for name, doc, value in simple:
            g = self._gauge(name, doc)
            g.add_metric([n], value)
            yield g
        load = self._gauge("ffrtmp_node_load_average", "Run-queue load average.", ("window",))
        for window, value in zip(("1m", "5m", "15m"), os.getloadavg()):
            load.add_metric([n, window], value)
        yield load
        enc = self._gauge("ffrtmp_node_encoder_available", "1 when a trial encode proved the encoder.", ("encoder",))
        for encoder, ok in sorted(self.trials.items()):
            enc.add_metric([n, encoder], 1.0 if ok else 0.0)
        yield enc
        if node_energy is not None:
            c = CounterMetricFamily("ffrtmp_node_cpu_energy_joules", "CPU package energy (RAPL).", labels=["node"])
            c.add_metric([n], node_energy)
            yield c
        yield from self._jobs(jobs, rapl=node_energy is not None)
        yield from self._gpus()

    def _jobs(self, jobs: dict[JobKey, JobUsage], *, rapl: bool) -> Iterator[Any]:
        labels = ["node", "namespace", "job"]
        cpu = CounterMetricFamily("ffrtmp_agent_job_cpu_seconds", "CPU time used by a job's processes.", labels=labels)
        mem = GaugeMetricFamily("ffrtmp_agent_job_memory_bytes", "Resident memory of a job's processes.", labels=labels)
        energy = CounterMetricFamily(
            "ffrtmp_agent_job_energy_joules",
            "CPU energy attributed to a job by its CPU-time share (RAPL).",
            labels=labels,
        )
        for (ns, job), usage in sorted(jobs.items()):
            cpu.add_metric([self.node, ns, job], usage.cpu_seconds)
            mem.add_metric([self.node, ns, job], usage.memory_bytes)
            energy.add_metric([self.node, ns, job], usage.energy_joules)
        yield cpu
        yield mem
        if rapl:
            yield energy

    def _gpus(self) -> Iterator[Any]:
        if self.nvml is None:
            return
        pynvml = self.nvml
        labels = ("gpu", "model")
        fams = {
            "util": self._gauge("ffrtmp_gpu_utilization_ratio", "GPU busy share (0-1).", labels),
            "enc": self._gauge("ffrtmp_gpu_encoder_utilization_ratio", "NVENC busy share (0-1).", labels),
            "dec": self._gauge("ffrtmp_gpu_decoder_utilization_ratio", "NVDEC busy share (0-1).", labels),
            "sessions": self._gauge("ffrtmp_gpu_encoder_sessions", "Active NVENC sessions.", labels),
            "power": self._gauge("ffrtmp_gpu_power_watts", "Board power draw.", labels),
            "mem": self._gauge("ffrtmp_gpu_memory_used_bytes", "GPU memory in use.", labels),
            "memtotal": self._gauge("ffrtmp_gpu_memory_total_bytes", "GPU memory.", labels),
        }
        energy = CounterMetricFamily(
            "ffrtmp_gpu_energy_joules", "GPU energy since driver load.", labels=["node", *labels]
        )
        try:
            count = pynvml.nvmlDeviceGetCount()
        except Exception:
            return
        for i in range(count):
            try:
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                model = pynvml.nvmlDeviceGetName(h)
                model = model.decode() if isinstance(model, bytes) else model
            except Exception:
                continue
            lv = [self.node, str(i), model]
            reads = {
                "util": lambda h=h: pynvml.nvmlDeviceGetUtilizationRates(h).gpu / 100.0,
                "enc": lambda h=h: pynvml.nvmlDeviceGetEncoderUtilization(h)[0] / 100.0,
                "dec": lambda h=h: pynvml.nvmlDeviceGetDecoderUtilization(h)[0] / 100.0,
                "sessions": lambda h=h: pynvml.nvmlDeviceGetEncoderStats(h)[0],
                "power": lambda h=h: pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
                "mem": lambda h=h: pynvml.nvmlDeviceGetMemoryInfo(h).used,
                "memtotal": lambda h=h: pynvml.nvmlDeviceGetMemoryInfo(h).total,
            }
            for key, read in reads.items():
                try:
                    fams[key].add_metric(lv, float(read()))
                except Exception:
                    pass  # not supported on this GPU: the series is absent
            try:
                energy.add_metric(lv, pynvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0)
            except Exception:
                pass
        yield from fams.values()
        yield energy


def _nvml_init() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def serve(
    node: str,
    *,
    host: str,
    port: int,
    slots: int,
    trials: dict[str, bool],
    stop: threading.Event,
    own_children_only: bool = False,
) -> tuple[CollectorRegistry, Sampler]:
    """Start the sampler thread and the HTTP endpoint; port 0 only builds the registry (tests, --metrics-port 0)."""
    sampler = Sampler(root_pid=os.getpid() if own_children_only else None)
    registry = CollectorRegistry()
    registry.register(NodeCollector(node, slots=slots, trials=trials, sampler=sampler))
    threading.Thread(target=sampler.run, args=(stop,), name="metrics-sampler", daemon=True).start()
    if port:
        start_http_server(port, addr=host, registry=registry)
        log.info("metrics on http://%s:%d/metrics", host, port)
    return registry, sampler
