"""Scheduler scaling: the operator's CPU per admitted job, its memory and the admission latency as the backlog
of queued jobs grows (1k -> 50k) and as the fleet grows (100 -> 2,000 nodes). `python -m bench.scaling`.

Each point is a fresh control plane with N fake nodes (bench.fleet) and B backlog jobs that wait in the batch
queue for an NVIDIA encoder no node has: they stay Queued the whole time, so the operator carries all of them
in its cache and its queues, as it would carry GPU jobs waiting for GPU nodes. The benchmark writes them
straight to Queued (create + status patch, what an operator restart finds), starts the operator, waits until
its cache holds them all and it is idle, measures its idle CPU (the Lease traffic of N nodes), then creates M
jobs in the default queue as fast as a client can. The figure is operator CPU during that burst per admitted
job, raw and less the idle rate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import psutil
from ffrtmp_operator import lifecycle
from prometheus_client.parser import text_string_to_metric_families

from . import common
from .common import RssSampler
from .kube import Kube, write_counts
from .profiling import PySpy
from .scheduler import NAMESPACE, Cluster, Config, Phase, latencies, operator_process, throughput, wait_bound
from .workload import JOBS, Creator, Tracker, job_manifest, run_paced

log = logging.getLogger("bench.scaling")

# (backlog B, nodes N): the backlog axis at N=100, the node axis at B=1,000.
POINTS = ((1000, 100), (10000, 100), (50000, 100), (1000, 500), (1000, 2000))
FLAT_WITHIN = 1.5  # the bound: the largest point may cost at most 1.5x the smallest


@dataclass(frozen=True)
class Point:
    backlog: int
    nodes: int
    jobs: int = 1000
    lease_seconds: int = 120  # 2,000 nodes renewing every 30 s is 67 writes/s: what 2 CPUs keep up with
    renew_seconds: float = 30.0
    concurrency: int = 8
    settle_timeout_s: float = 1800.0
    profile: Path | None = None  # py-spy the operator during the burst, raw stacks here

    def config(self) -> Config:
        return Config(
            jobs=self.jobs,
            nodes=self.nodes,
            concurrency=self.concurrency,
            paced_seconds=0,
            lease_seconds=self.lease_seconds,
            renew_seconds=self.renew_seconds,
        )


# What the operator says on a backlog job's Scheduled condition (scheduling.no_room): written with the backlog,
# so the operator need not tell 50,000 jobs why they wait before the measurement (32 a pass: ~30 min). If
# the wording drifts, the operator writes it itself and the point only takes longer to settle.
WAITS = "no ready, uncordoned worker node has a proven h264_nvenc encoder"


def backlog_manifest(name: str) -> dict[str, Any]:
    """A batch job that only an NVIDIA encoder may run: it waits in the queue on a fleet without one."""
    body = job_manifest(name)
    body["spec"].update(queue="batch", hardware={"accelerator": "nvidia"})
    return body


def write_backlog(kube: Kube, count: int, *, concurrency: int) -> dict[str, Any]:
    """Create `count` backlog jobs and write each one's status to Queued, like the operator would have."""
    errors: list[str] = []

    def one(name: str) -> None:
        try:
            kube.request("POST", JOBS.format(ns=NAMESPACE), backlog_manifest(name))
            now = datetime.now(timezone.utc)
            status = lifecycle.transition({}, api.Phase.QUEUED, reason=api.Reason.CREATED, now=now, generation=1)
            status.update(lifecycle.waiting(status, reason=api.Reason.NO_MATCHING_NODE, message=WAITS, now=now) or {})
            kube.request(
                "PATCH",
                f"{JOBS.format(ns=NAMESPACE)}/{name}/status",
                {"status": status},
                content_type=api.MERGE_PATCH,
            )
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors.append(repr(exc)[:300])

    names = [f"wait-{i:05d}" for i in range(count)]
    seconds = run_paced(one, names, rate_per_s=None, threads=concurrency, prefix="backlog")
    return {"seconds": round(seconds, 1), "error_count": len(errors), "errors": errors[:5]}


def queued_in_cache(metrics_text: str) -> int:
    """Jobs the operator's cache holds as Queued, from its ffrtmp_jobs gauge (summed over queues)."""
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(metrics_text)
            for sample in family.samples
            if sample.name == "ffrtmp_jobs" and sample.labels.get("phase") == "Queued"
        )
    )


def cpu_rate(proc: psutil.Process, seconds: float) -> float:
    """CPU seconds per second the process used over the next `seconds`."""
    before = common.cpu_seconds([proc], children=False)
    time.sleep(seconds)
    return (common.cpu_seconds([proc], children=False) - before) / seconds


def job_status_writes(kube: Kube) -> int:
    """Status writes to TranscodeJobs so far, from the apiserver's request counters."""
    return sum(n for key, n in write_counts(kube).items() if key.resource == f"{api.GROUP}/{api.PLURAL}/status")


def settle(metrics_url: str, kube: Kube, *, backlog: int, timeout_s: float) -> float:
    """Wait until the operator's cache holds the whole backlog and it has written nothing to a job for 5 s
    (it tells waiting jobs why they wait, a few dozen per pass); returns the seconds it took. Not a CPU
    threshold: with 50,000 queued jobs its idle passes alone take half a CPU, and the API server is the
    slower side while it writes."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        try:
            with urllib.request.urlopen(metrics_url, timeout=10) as r:
                held = queued_in_cache(r.read().decode())
        except OSError:
            held = -1
        if held >= backlog:
            writes = job_status_writes(kube)
            time.sleep(5.0)
            if job_status_writes(kube) == writes:
                return time.monotonic() - began
        time.sleep(2)
    raise TimeoutError(f"operator did not settle with {backlog} queued jobs in {timeout_s:.0f} s")


def run_point(point: Point, work: Path) -> dict[str, Any]:
    cfg = point.config()
    out: dict[str, Any] = {"backlog": point.backlog, "nodes": point.nodes, "jobs": point.jobs}
    with Cluster(cfg, work) as cluster:
        log.info("point B=%d N=%d: writing the backlog", point.backlog, point.nodes)
        out["backlog_write"] = write_backlog(cluster.kube, point.backlog, concurrency=point.concurrency)
        with operator_process(cluster, work) as (op, metrics_url):
            with RssSampler(op.pid) as rss:
                out["settle_s"] = round(
                    settle(metrics_url, cluster.kube, backlog=point.backlog, timeout_s=point.settle_timeout_s), 1
                )
                out["rss_settled_mb"] = round(op.memory_info().rss / 1e6, 1)
                idle = cpu_rate(op, 10.0)
                out["idle_cpu_ms_per_s"] = round(1000 * idle, 1)
                log.info(
                    "point B=%d N=%d: settled in %.0f s, burst of %d",
                    point.backlog,
                    point.nodes,
                    out["settle_s"],
                    point.jobs,
                )
                tracker = Tracker(prefix="job-")
                watches = cluster.watches(tracker, listed=False)
                creator = Creator(cluster.kube, namespace=NAMESPACE, tracker=tracker, concurrency=point.concurrency)
                spy = PySpy(op.pid, point.profile) if point.profile else None
                with Phase(cluster, {"operator": op}) as phase:
                    creator.burst([f"job-{i:05d}" for i in range(point.jobs)])
                    out["complete"] = wait_bound(tracker, expected=point.jobs, stall_s=300)
                    time.sleep(3)  # trailing writes of the last admissions belong to this phase
                if spy:
                    out["profile"] = spy.stop()
                for w in watches:
                    w.stop()
            out["rss_peak_mb"] = rss.peak_mb
        report = phase.report(bench_writes=creator.writes, admitted=tracker.bound)
        admitted = tracker.bound
        op_cpu = report["cpu_seconds"]["operator"]
        out.update(throughput(tracker))
        out["seconds"] = report["seconds"]
        out["operator_cpu_s"] = op_cpu
        out["cpu_ms_per_job"] = (report["cpu_ms_per_job"] or {}).get("operator")
        out["marginal_cpu_ms_per_job"] = (
            round(1000 * max(0.0, op_cpu - idle * report["seconds"]) / admitted, 2) if admitted else None
        )
        out["cpu_ms_per_job_all"] = report["cpu_ms_per_job"]
        out["writes_per_job"] = report["writes_per_job"]
        out["create_errors"] = creator.errors[:5]
        out["latency_s"] = {k: common.summary(v) for k, v in latencies(tracker).items()}
        out["lease_late_rounds"] = cluster.fleet.late_rounds
    return out


def spread(points: list[dict[str, Any]], axis: str, fixed: str, value: int, key: str) -> dict[str, Any] | None:
    """How `key` grows along one axis (the other held at `value`): the series and max/min."""
    series = sorted((p[axis], p[key]) for p in points if p.get(fixed) == value and p.get(key))
    if len(series) < 2:
        return None
    values = [v for _, v in series]
    growth = round(max(values) / min(values), 2)
    return {"series": series, "max_over_min": growth, f"flat_within_{FLAT_WITHIN}x": growth <= FLAT_WITHIN}


def headline(points: list[dict[str, Any]]) -> dict[str, Any]:
    by_backlog = {p["backlog"]: p for p in points if p["nodes"] == 100}
    return {
        "backlog_axis": spread(points, "backlog", "nodes", 100, "marginal_cpu_ms_per_job"),
        "backlog_axis_raw": spread(points, "backlog", "nodes", 100, "cpu_ms_per_job"),
        "node_axis": spread(points, "nodes", "backlog", 1000, "marginal_cpu_ms_per_job"),
        "node_axis_raw": spread(points, "nodes", "backlog", 1000, "cpu_ms_per_job"),
        "rss_mb_by_backlog": {b: p.get("rss_peak_mb") for b, p in sorted(by_backlog.items())},
    }


def parse_points(text: str) -> list[tuple[int, int]]:
    """ "1000:100,50000:100" -> [(1000, 100), (50000, 100)]."""
    return [tuple(int(x) for x in item.split(":")) for item in text.split(",") if item]  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--points", default=",".join(f"{b}:{n}" for b, n in POINTS), help="BACKLOG:NODES,...")
    parser.add_argument("--jobs", type=int, default=1000, help="M, the jobs admitted at each point")
    parser.add_argument("--name", default="scheduler-scaling")
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS)
    parser.add_argument("--profile", action="store_true", help="py-spy the operator during each burst")
    parser.add_argument("--keep", action="store_true", help="keep the points already in the results file; run the rest")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result: dict[str, Any] = {
        "name": args.name,
        "started": common.utc_stamp(),
        "command": "python -m bench.scaling " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": common.machine(),
        "points": [],
    }
    path = args.results_dir / f"{args.name}.json"
    if args.keep and path.exists():
        result["points"] = json.loads(path.read_text())["points"]
    done = {(p["backlog"], p["nodes"]) for p in result["points"]}
    for backlog, nodes in parse_points(args.points):
        if (backlog, nodes) in done:
            continue
        profile = (
            common.REPO / "bench" / "work" / f"{args.name}-{backlog}-{nodes}-profile.txt" if args.profile else None
        )
        point = Point(backlog=backlog, nodes=nodes, jobs=args.jobs, profile=profile)
        work = Path(tempfile.mkdtemp(prefix="ffrtmp-scaling-"))
        result["points"].append(
            {"load_avg_before": [round(x, 2) for x in psutil.getloadavg()], **run_point(point, work)}
        )
        result.update(headline(result["points"]))
        common.write_result(args.name, result, directory=args.results_dir)  # after each point: a long run may stop
    result["finished"] = common.utc_stamp()
    common.write_result(args.name, result, directory=args.results_dir)
    try:
        from .plot import plot_scaling

        log.info("plot: %s", plot_scaling(result, args.results_dir / f"{args.name}.png"))
    except ImportError as exc:
        log.warning("no plot (%s): pip install '.[bench]'", exc)
    print(json.dumps({k: v for k, v in result.items() if k not in ("points", "machine")}, indent=2))
    log.info("results: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
