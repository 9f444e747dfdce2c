"""Scheduler benchmark: the real control plane and operator, N fake worker nodes with fresh Leases, M jobs
created as fast as a client can. Measures admission throughput against a baseline client doing only the
minimal admission writes, queue-to-assigned latency in a separate paced phase, the operator's peak RSS and
its API writes per admitted job. `python -m bench.scheduler --size smoke|full`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ffrtmp_api as api  # noqa: E402
import psutil
from ffrtmp_stack import ControlPlane, procs  # bench/__init__ puts tools/ on sys.path

from . import common
from .common import RssSampler, summary
from .fleet import Fleet
from .kube import Kube, Watch, write_counts, writes_delta
from .profiling import PySpy
from .workload import JOBS, BaselineAdmitter, Creator, Tracker, baseline_create_and_admit

log = logging.getLogger("bench.scheduler")
NAMESPACE = "bench"
# (jobs M, nodes N, lease seconds, renew seconds). Smoke renews like the agent (15 s / 5 s). At N=500 that is
# 100 lease writes/s from one client on 2 CPUs: renewal rounds fell behind and the operator requeued jobs as
# NodeLost (a harness artefact, see BENCHMARKS.md), so the full size uses 60 s leases renewed every 15 s.
SIZES = {"smoke": (1000, 100, 15, 5.0), "full": (10000, 500, 60, 15.0)}


@dataclass(frozen=True)
class Config:
    jobs: int
    nodes: int
    concurrency: int = 8
    paced_rate: float = 50.0  # issue 14: queue-to-assigned p99 at 50 jobs/s
    paced_seconds: float = 30.0
    lease_seconds: int = 15
    renew_seconds: float = 5.0
    stall_seconds: float = 300.0  # give up when no job moved for this long
    profile: bool = False

    @property
    def paced_jobs(self) -> int:
        return int(self.paced_rate * self.paced_seconds)

    @property
    def slots(self) -> int:
        # Every job of both phases must fit (pods never run, so nothing frees a slot).
        return math.ceil((self.jobs + self.paced_jobs) / self.nodes) + 1


def _parse(ts: str | None) -> float | None:
    at = api.parse_time(ts)
    return at.timestamp() if at else None


def latencies(tracker: Tracker) -> dict[str, list[float]]:
    """Per-job latencies (s). queued_to_assigned: from the operator's Queued stamp to the moment our watch saw
    the job placed (what a user sees); stamps_only: both ends from the operator's transitions; watch_only:
    both ends seen by our watch; create_to_bound: our create call to the pod with nodeName appearing."""
    out: dict[str, list[float]] = {"queued_to_assigned": [], "stamps_only": [], "watch_only": [], "create_to_bound": []}
    for t in tracker.jobs.values():
        queued = _parse(t.queued_at)
        if queued is not None and t.assigned_seen is not None:
            out["queued_to_assigned"].append(max(0.0, t.assigned_seen - queued))
        assigned = _parse(t.assigned_at)
        if queued is not None and assigned is not None:
            out["stamps_only"].append(assigned - queued)
        if t.queued_seen is not None and t.assigned_seen is not None:
            out["watch_only"].append(t.assigned_seen - t.queued_seen)
        if t.created is not None and t.bound_seen is not None:
            out["create_to_bound"].append(t.bound_seen - t.created)
    return out


def throughput(tracker: Tracker) -> dict[str, Any]:
    created = [t.created for t in tracker.jobs.values() if t.created is not None]
    bound = [t.bound_seen for t in tracker.jobs.values() if t.bound_seen is not None]
    if not created or not bound:
        return {"jobs_bound": len(bound), "window_s": None, "jobs_per_s": None}
    window = max(bound) - min(created)
    return {
        "jobs_created": len(created),
        "jobs_bound": len(bound),
        "window_s": round(window, 3),
        "jobs_per_s": round(len(bound) / window, 2) if window > 0 else None,
    }


def wait_bound(tracker: Tracker, *, expected: int, stall_s: float) -> bool:
    """Wait until `expected` jobs have a bound pod; False when nothing moved (no job newly Queued,
    Assigned or bound) for stall_s. Bound pods alone are not progress enough: the operator may spend
    minutes writing Queued for a big backlog before it creates the first pod of the next batch."""
    tracker.expected = expected
    last, last_change = tracker.progress, time.monotonic()
    while not tracker.all_bound.wait(1.0):
        if tracker.bound >= expected:
            return True
        if tracker.progress != last:
            last, last_change = tracker.progress, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            return False
    return True


class Cluster:
    """One fresh control plane with the benchmark namespace and the fleet; a context manager."""

    def __init__(self, cfg: Config, work: Path) -> None:
        self.cfg = cfg
        self.cp = ControlPlane(work)
        self.kube: Kube | None = None
        self.fleet: Fleet | None = None

    def __enter__(self) -> Cluster:
        self.cp.start()
        self.kube = Kube(
            server=self.cp.server, token=self.cp.token, ca_file=self.cp.ca_file, pool_size=self.cfg.concurrency + 8
        )
        self.kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        self.fleet = Fleet(
            self.kube,
            nodes=self.cfg.nodes,
            slots=self.cfg.slots,
            lease_s=self.cfg.lease_seconds,
            renew_s=self.cfg.renew_seconds,
        )
        self.fleet.create()
        self.fleet.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fleet:
            self.fleet.stop()
        self.cp.stop()

    def processes(self) -> dict[str, psutil.Process]:
        found = {}
        for child in psutil.Process().children(recursive=True):
            try:
                name = child.name()
            except psutil.NoSuchProcess:
                continue
            if name in ("kube-apiserver", "etcd"):
                found[name] = child
        return found

    def version(self) -> str | None:
        try:
            return self.kube.request("GET", "/version").get("gitVersion")
        except Exception:  # noqa: BLE001
            return None

    def watches(self, tracker: Tracker, *, listed: bool = True) -> list[Watch]:
        """Job and pod watches feeding `tracker`; listed=False starts them at the current version (a backlog
        of 50,000 jobs takes longer to list than a watch may take to start)."""
        return [
            Watch(self.kube, JOBS.format(ns=NAMESPACE), tracker.on_job, listed=listed).start(),
            Watch(self.kube, f"/api/v1/namespaces/{NAMESPACE}/pods", tracker.on_pod, listed=listed).start(),
        ]


class Phase:
    """Brackets one measured phase: API write counters, lease renewals and CPU seconds of the parts."""

    def __init__(self, cluster: Cluster, extra: dict[str, psutil.Process] | None = None) -> None:
        self.cluster = cluster
        self.procs = {**cluster.processes(), **(extra or {}), "bench": psutil.Process()}

    def __enter__(self) -> Phase:
        self.writes0 = write_counts(self.cluster.kube)
        self.renewals0 = self.cluster.fleet.renewals
        self.cpu0 = {k: common.cpu_seconds([p], children=False) for k, p in self.procs.items()}
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.t0
        self.writes = writes_delta(self.writes0, write_counts(self.cluster.kube))
        self.renewals = self.cluster.fleet.renewals - self.renewals0
        self.cpu = {k: round(common.cpu_seconds([p], children=False) - self.cpu0[k], 2) for k, p in self.procs.items()}

    def report(self, *, bench_writes: int, admitted: int) -> dict[str, Any]:
        total = sum(self.writes.values())
        others = total - bench_writes - self.renewals
        return {
            "seconds": round(self.seconds, 2),
            "api_writes_total": total,
            "bench_job_creates": bench_writes,
            "bench_lease_renewals": self.renewals,
            "other_writes": others,
            "writes_per_job": round(others / admitted, 3) if admitted else None,
            "writes_by_verb_resource_code": self.writes,
            "cpu_seconds": self.cpu,
            "cpu_ms_per_job": {k: round(1000 * v / admitted, 2) for k, v in self.cpu.items()} if admitted else None,
        }


def _summaries(lat: dict[str, list[float]]) -> dict[str, Any]:
    return {k: summary(v) for k, v in lat.items()}


def _samples(lat: dict[str, list[float]]) -> dict[str, list[float]]:
    return {k: [round(x, 4) for x in sorted(v)] for k, v in lat.items() if v}


def run_baseline(cfg: Config, work: Path) -> dict[str, Any]:
    """The ceiling: a plain client creating each job and at once writing its admission (status, the job's
    identity objects, pod), as fast as it can; then the same at the paced rate, whose create-to-bound
    latency is what the operator's paced phase compares with."""
    with Cluster(cfg, work) as cluster:
        kube = cluster.kube
        admitter = BaselineAdmitter(kube, namespace=NAMESPACE, nodes=cluster.fleet.names)
        result: dict[str, Any] = {}
        for prefix, count, rate in (("base", cfg.jobs, None), ("basepaced", cfg.paced_jobs, cfg.paced_rate)):
            if not count:
                continue
            tracker = Tracker(prefix=f"{prefix}-")
            watches = cluster.watches(tracker)
            creator = Creator(kube, namespace=NAMESPACE, tracker=tracker, concurrency=cfg.concurrency)
            names = [f"{prefix}-{i:05d}" for i in range(count)]
            writes0 = admitter.writes
            with Phase(cluster) as phase:
                seconds = baseline_create_and_admit(creator, admitter, names, rate_per_s=rate)
                complete = wait_bound(tracker, expected=count, stall_s=30)
                time.sleep(1)
            for w in watches:
                w.stop()
            lat = latencies(tracker)
            part = {
                "complete": complete,
                **throughput(tracker),
                "errors": creator.errors[:10],
                "error_count": len(creator.errors),
                **phase.report(bench_writes=creator.writes, admitted=tracker.bound),
                "latency_s": _summaries(lat),
                "baseline_admission_writes": admitter.writes - writes0,
            }
            if rate is None:
                result.update(part)
            else:
                part["achieved_rate_per_s"] = round(count / seconds, 2) if seconds > 0 else None
                result["paced"] = part
        result["apiserver_version"] = cluster.version()
        result["lease_late_rounds"] = cluster.fleet.late_rounds
        return result


def _operator_argv(metrics_port: int) -> list[str]:
    return [sys.executable, "-m", "ffrtmp_operator", "--metrics-port", str(metrics_port)]


@contextmanager
def operator_process(
    cluster: Cluster, work: Path, *, operator_src: Path | None = None
) -> Iterator[tuple[psutil.Process, str]]:
    """The real operator against `cluster`, serving metrics; yields its process and metrics URL once it
    answers, and stops it (its log tail in the error) when the block ends."""
    port = procs.free_port()
    op_log = work / "logs" / "operator.log"
    env = cluster.cp.env()
    if operator_src:  # a snapshot of the operator package, for A/B runs while the tree keeps changing
        env["PYTHONPATH"] = f"{operator_src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    op = procs.start(
        _operator_argv(port), log=op_log, marker=f"{work}:operator", env=env, cwd=common.REPO, tie_to_parent=True
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        procs.wait_until(
            lambda: procs.http_ok(url), timeout_s=120, what="operator", alive=lambda: op.poll() is None, log=op_log
        )
        yield psutil.Process(op.pid), url
    finally:
        procs.stop(op.pid, marker=f"{work}:operator", grace_s=10)
        op.wait()
        log.info("operator log tail:\n%s", procs.tail(op_log, 5))


def run_operator(
    cfg: Config, work: Path, *, results_dir: Path, name: str, operator_src: Path | None = None
) -> dict[str, Any]:
    """The real operator: a burst of M jobs, then a paced phase at cfg.paced_rate with free slots."""
    out: dict[str, Any] = {}
    with Cluster(cfg, work) as cluster:
        began = time.monotonic()
        with operator_process(cluster, work, operator_src=operator_src) as (op_proc, _):
            time.sleep(2)  # let its first list+watch of jobs, nodes and leases finish
            out["operator_start_s"] = round(time.monotonic() - began, 2)
            with RssSampler(op_proc.pid) as rss:
                out["rss_idle_mb"] = round(op_proc.memory_info().rss / 1e6, 1)
                out["burst"] = _operator_phase(
                    cluster,
                    cfg,
                    op_proc,
                    prefix="job",
                    count=cfg.jobs,
                    paced=False,
                    profile=common.REPO / "bench" / "work" / f"{name}-profile.txt" if cfg.profile else None,
                )
                out["rss_after_burst_mb"] = round(op_proc.memory_info().rss / 1e6, 1)
                out["paced"] = _operator_phase(
                    cluster, cfg, op_proc, prefix="paced", count=cfg.paced_jobs, paced=True, profile=None
                )
            out["operator_rss_peak_mb"] = rss.peak_mb
            out["rss_series_mb"] = [(t, round(b / 1e6, 1)) for t, b in rss.series]
            out["apiserver_version"] = cluster.version()
            out["lease_late_rounds"] = cluster.fleet.late_rounds
            out["operator_alive_at_end"] = op_proc.is_running() and op_proc.status() != psutil.STATUS_ZOMBIE
        out["operator_log_tail"] = procs.tail(work / "logs" / "operator.log", 15).splitlines()
    return out


def _operator_phase(
    cluster: Cluster, cfg: Config, op: psutil.Process, *, prefix: str, count: int, paced: bool, profile: Path | None
) -> dict[str, Any]:
    tracker = Tracker(prefix=f"{prefix}-")
    watches = cluster.watches(tracker)
    creator = Creator(cluster.kube, namespace=NAMESPACE, tracker=tracker, concurrency=cfg.concurrency)
    names = [f"{prefix}-{i:05d}" for i in range(count)]
    spy = PySpy(op.pid, profile) if profile else None
    extra = {"operator": op}
    if spy and spy.proc:  # the profiler's own CPU is shown, so its cost on a 2-core machine is visible
        extra["py-spy"] = psutil.Process(spy.proc.pid)
    result: dict[str, Any] = {"profiled": bool(spy and spy.proc)}
    with Phase(cluster, extra) as phase:
        if paced:
            result["achieved_rate_per_s"] = round(creator.paced(names, rate_per_s=cfg.paced_rate), 2)
        else:
            result["create_seconds"] = round(creator.burst(names), 2)
        result["complete"] = wait_bound(tracker, expected=count, stall_s=cfg.stall_seconds)
        time.sleep(3)  # trailing writes of the last admissions (events, status) belong to this phase
    if spy:
        result["profile"] = spy.stop()
    for w in watches:
        w.stop()
        result.setdefault("watch_errors", []).extend(w.errors[:5])
    lat = latencies(tracker)
    result.update(throughput(tracker))
    result.update(errors=creator.errors[:10], error_count=len(creator.errors))
    result.update(phase.report(bench_writes=creator.writes, admitted=tracker.bound))
    result["latency_s"] = _summaries(lat)
    result["samples_s"] = _samples(lat)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="smoke")
    parser.add_argument("--jobs", type=int, help="M (default from --size)")
    parser.add_argument("--nodes", type=int, help="N (default from --size)")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="client threads creating jobs (and admitting, baseline)"
    )
    parser.add_argument("--paced-rate", type=float, default=50.0, help="jobs/s in the paced latency phase")
    parser.add_argument("--paced-seconds", type=float, default=30.0)
    parser.add_argument("--lease-seconds", type=int, help="leaseDurationSeconds of the fake nodes (default by size)")
    parser.add_argument("--renew-seconds", type=float, help="lease renewal period (default by size)")
    parser.add_argument("--profile", action="store_true", help="py-spy the operator during the burst")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--baselines",
        type=int,
        help="baseline runs: 1 before, 2 = also after the operator (default 2 for smoke, 1 for full)",
    )
    parser.add_argument(
        "--operator-src",
        type=Path,
        help="run the operator from this folder (holding ffrtmp_operator/) instead of the tree",
    )
    parser.add_argument("--skip-operator", action="store_true")
    parser.add_argument("--name", help="results name (default scheduler-<size>)")
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    jobs, nodes, lease_s, renew_s = SIZES[args.size]
    cfg = Config(
        jobs=args.jobs or jobs,
        nodes=args.nodes or nodes,
        concurrency=args.concurrency,
        paced_rate=args.paced_rate,
        paced_seconds=args.paced_seconds,
        profile=args.profile,
        lease_seconds=args.lease_seconds or lease_s,
        renew_seconds=args.renew_seconds or renew_s,
    )
    name = args.name or f"scheduler-{args.size}"
    work = Path(tempfile.mkdtemp(prefix="ffrtmp-bench-"))
    result: dict[str, Any] = {
        "name": name,
        "started": common.utc_stamp(),
        "config": {**asdict(cfg), "slots": cfg.slots},
        "command": "python -m bench.scheduler " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    result["machine"] = common.machine()
    began = time.monotonic()
    baselines = args.baselines if args.baselines is not None else (2 if args.size == "smoke" else 1)
    if not args.skip_baseline and baselines > 0:
        log.info("baseline: %d jobs, %d nodes", cfg.jobs, cfg.nodes)
        result["baseline"] = run_baseline(cfg, work / "baseline")
        log.info("baseline: %.1f jobs/s", result["baseline"]["jobs_per_s"] or 0)
    if not args.skip_operator:
        log.info(
            "operator: %d jobs, %d nodes, then %d paced at %.0f/s", cfg.jobs, cfg.nodes, cfg.paced_jobs, cfg.paced_rate
        )
        result["operator"] = run_operator(
            cfg, work / "operator", results_dir=args.results_dir, name=name, operator_src=args.operator_src
        )
        if args.operator_src:
            result["operator"]["operator_src"] = str(args.operator_src)
    if not args.skip_baseline and baselines > 1:
        # Again after the operator: other load on a shared machine drifts over minutes, and the mean of a
        # baseline before and one after brackets the operator's run.
        result["baseline_after"] = run_baseline(cfg, work / "baseline-after")
        log.info("baseline after: %.1f jobs/s", result["baseline_after"]["jobs_per_s"] or 0)
    result["wall_seconds"] = round(time.monotonic() - began, 1)
    result["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result.update(headline(result))
    result["machine"]["versions"]["kube_apiserver"] = (result.get("baseline") or result.get("operator") or {}).get(
        "apiserver_version"
    )
    path = common.write_result(name, result, directory=args.results_dir)
    try:
        from .plot import plot_latency

        result_png = plot_latency(result, args.results_dir / f"{name}-latency.png")
        log.info("plot: %s", result_png)
    except ImportError as exc:
        log.warning("no plot (%s): pip install '.[bench]'", exc)
    print(json.dumps({k: result[k] for k in HEADLINE if k in result}, indent=2))
    log.info("results: %s", path)
    return 0


HEADLINE = (
    "jobs_per_s",
    "baseline_per_s",
    "baseline_runs_per_s",
    "ratio",
    "cpu_ratio",
    "p50_s",
    "p99_s",
    "operator_rss_mb",
    "writes_per_job",
    "burst_complete",
    "paced_complete",
    "targets",
)


# Writes the apiserver makes itself (its identity Lease, the `kubernetes` Service endpoints): they show up at
# the same rate in the baseline phase, where no operator runs, and neither the operator nor the benchmark
# issues these verbs on these resources (the benchmark renews Leases with PATCH).
APISERVER_SELF_WRITES = (
    "PUT coordination.k8s.io/leases ",
    "POST /endpoints ",
    "PUT /endpoints ",
    "POST discovery.k8s.io/endpointslices ",
    "PUT discovery.k8s.io/endpointslices ",
)


def operator_writes_per_job(phase: dict[str, Any]) -> float | None:
    """Writes per admitted job that are the operator's: all writes minus the benchmark's and the
    apiserver's own background writes."""
    admitted = phase.get("jobs_bound")
    if not admitted or phase.get("other_writes") is None:
        return None
    own = sum(
        n for k, n in (phase.get("writes_by_verb_resource_code") or {}).items() if k.startswith(APISERVER_SELF_WRITES)
    )
    return round((phase["other_writes"] - own) / admitted, 3)


def _cpu_per_job(phase: dict[str, Any]) -> float | None:
    """CPU ms per job of everything the admission path runs on (the profiler left out)."""
    per_job = phase.get("cpu_ms_per_job") or {}
    return sum(v for k, v in per_job.items() if k != "py-spy") or None


def _p99_paced(bases: list[dict[str, Any]]) -> float | None:
    found = [
        b["paced"]["latency_s"]["create_to_bound"]["p99"]
        for b in bases
        if ((b.get("paced") or {}).get("latency_s") or {}).get("create_to_bound", {}).get("p99") is not None
    ]
    return round(sum(found) / len(found), 4) if found else None


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The figures the issue asks for, flat, and whether each meets its target."""
    bases = [b for b in (result.get("baseline"), result.get("baseline_after")) if b and b.get("jobs_per_s")]
    op = result.get("operator") or {}
    burst, paced = op.get("burst") or {}, op.get("paced") or {}
    base_cpu = [_cpu_per_job(b) for b in bases if _cpu_per_job(b)]
    h: dict[str, Any] = {
        "jobs_per_s": burst.get("jobs_per_s"),
        "baseline_per_s": round(sum(b["jobs_per_s"] for b in bases) / len(bases), 2) if bases else None,
        "baseline_runs_per_s": [b["jobs_per_s"] for b in bases],
        # Throughput ratio as if the machine were ours alone and CPU-bound: CPU per job (apiserver + etcd +
        # client + operator) of the baseline over that of the operator run. Other load barely moves it.
        "cpu_ratio": (
            round(sum(base_cpu) / len(base_cpu) / _cpu_per_job(burst), 3) if base_cpu and _cpu_per_job(burst) else None
        ),
        "p50_s": (paced.get("latency_s") or {}).get("queued_to_assigned", {}).get("p50"),
        "p99_s": (paced.get("latency_s") or {}).get("queued_to_assigned", {}).get("p99"),
        # Create call to pod bound, paced: the same figure for the operator and for the minimal client at the
        # same rate, so how much of the latency is the machine's and how much the operator's shows.
        "paced_create_to_bound_p99_s": (paced.get("latency_s") or {}).get("create_to_bound", {}).get("p99"),
        "baseline_paced_create_to_bound_p99_s": _p99_paced(bases),
        "operator_rss_mb": op.get("operator_rss_peak_mb"),
        "writes_per_job": operator_writes_per_job(burst),
        "writes_per_job_incl_apiserver_self": burst.get("writes_per_job"),
        "burst_complete": burst.get("complete"),
        "paced_complete": paced.get("complete"),
    }
    h["ratio"] = round(h["jobs_per_s"] / h["baseline_per_s"], 3) if h["jobs_per_s"] and h["baseline_per_s"] else None
    # Issue 14's targets (the second round); the RSS one is set for 10,000 jobs, so it is strict at smoke size.
    h["targets"] = {
        "ratio>=0.75": None if h["ratio"] is None else h["ratio"] >= 0.75,
        "p99<=0.5s": None if h["p99_s"] is None else h["p99_s"] <= 0.5,
        "rss<=150MB": None if h["operator_rss_mb"] is None else h["operator_rss_mb"] <= 150,
        # Two decimals: the per-namespace objects and kopf's peering keep-alives are fixed writes per run,
        # not per job (8 in a 10,000-job run).
        "writes<=3": None if h["writes_per_job"] is None else round(h["writes_per_job"], 2) <= 3,
    }
    return h


if __name__ == "__main__":
    sys.exit(main())
