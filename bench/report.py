"""Renders the results tables of BENCHMARKS.md from bench/results/*.json (between the RESULTS markers), so
the document always shows what the committed result files say. `python -m bench.report`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .common import REPO, RESULTS

DOC = REPO / "BENCHMARKS.md"
BEGIN, END = "<!-- RESULTS:BEGIN (python -m bench.report) -->", "<!-- RESULTS:END -->"


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        value = f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value}{unit}"


def _ok(flag: bool | None) -> str:
    return "n/a" if flag is None else ("met" if flag else "**missed**")


def _target(targets: dict[str, bool | None], figure: str) -> tuple[str, str]:
    """The bound a result was judged by and the verdict, from its own targets (keys like "ratio>=0.75"):
    results of an earlier round keep the targets of that round."""
    for key, met in targets.items():
        if key.startswith(figure) and key[len(figure)] in "<>":
            return key[len(figure) :].replace(">=", ">= ").replace("<=", "<= "), _ok(met)
    return "", "n/a"


def scheduler_table(r: dict[str, Any]) -> str:
    cfg, m, t = r["config"], r["machine"], r.get("targets", {})
    op = r.get("operator") or {}
    burst, paced = op.get("burst") or {}, op.get("paced") or {}
    bl = r.get("baseline") or {}
    lat = paced.get("latency_s") or {}
    rows = [
        ("admission throughput (burst, first create -> last pod bound)", f"{_fmt(r.get('jobs_per_s'))} jobs/s", "", ""),
        (
            "baseline: minimal admission client, same run (mean of runs)",
            f"{_fmt(r.get('baseline_per_s'))} jobs/s {r.get('baseline_runs_per_s') or ''}",
            "",
            "",
        ),
        ("ratio operator / baseline", _fmt(r.get("ratio")), *_target(t, "ratio")),
        ("CPU ratio: baseline CPU per job / operator run CPU per job", _fmt(r.get("cpu_ratio")), "", ""),
        ("queue -> assigned p50 (paced)", f"{_fmt(r.get('p50_s'))} s", "", ""),
        ("queue -> assigned p99 (paced)", f"{_fmt(r.get('p99_s'))} s", *_target(t, "p99")),
        ("create -> pod bound p99 (paced)", f"{_fmt((lat.get('create_to_bound') or {}).get('p99'))} s", "", ""),
        (
            "create -> pod bound p99, minimal client at the same paced rate",
            f"{_fmt(r.get('baseline_paced_create_to_bound_p99_s'))} s",
            "",
            "",
        ),
        (
            "queue -> assigned p50 / p99 (burst backlog)",
            f"{_fmt(((burst.get('latency_s') or {}).get('queued_to_assigned') or {}).get('p50'))} / "
            f"{_fmt(((burst.get('latency_s') or {}).get('queued_to_assigned') or {}).get('p99'))} s",
            "",
            "",
        ),
        ("operator peak RSS", f"{_fmt(r.get('operator_rss_mb'))} MB", *_target(t, "rss")),
        (
            "operator API writes per admitted job (burst; excl. the apiserver's own)",
            f"{r.get('writes_per_job')} (all: {r.get('writes_per_job_incl_apiserver_self')})",
            *_target(t, "writes"),
        ),
        ("operator API writes per admitted job (paced)", _fmt(paced.get("writes_per_job")), "", ""),
        (
            "operator CPU per admitted job (burst)",
            f"{_fmt((burst.get('cpu_ms_per_job') or {}).get('operator'))} ms",
            "",
            "",
        ),
        (
            "apiserver CPU per job: operator run / baseline",
            f"{_fmt((burst.get('cpu_ms_per_job') or {}).get('kube-apiserver'))} / "
            f"{_fmt((bl.get('cpu_ms_per_job') or {}).get('kube-apiserver'))} ms",
            "",
            "",
        ),
        ("all jobs admitted (burst / paced)", f"{_fmt(burst.get('complete'))} / {_fmt(paced.get('complete'))}", "", ""),
    ]
    head = (
        f"**{r['name']}** — M={cfg['jobs']} jobs, N={cfg['nodes']} nodes, {cfg['slots']} slots each, "
        f"client concurrency {cfg['concurrency']}, paced {cfg['paced_rate']:g} jobs/s for {cfg['paced_seconds']:g} s; "
        f"py-spy attached: {cfg.get('profile')}; leases {cfg.get('lease_seconds')} s renewed every "
        f"{cfg.get('renew_seconds')} s; {r['started']}, commit {m.get('git_commit')} "
        f"(+{len(m.get('uncommitted_operator_agent_files') or [])} uncommitted operator/agent files), "
        f"{m['cpu_model']}, {m['logical_cpus']} CPUs, {m['ram_gb']} GB, load average at start {m['load_avg_at_start']}, "
        f"at end {r.get('load_avg_at_end', 'n/a')}; "
        f"`{r['command']}` ({r.get('wall_seconds')} s)\n\n"
    )
    if r.get("note"):
        head += f"> {r['note']}\n\n"
    lines = ["| figure | value | target | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return head + "\n".join(lines) + "\n"


def transcode_table(r: dict[str, Any]) -> str:
    m, t = r["machine"], r.get("targets", {})
    note = f"> {r['note']}\n\n" if r.get("note") else ""
    head = (
        f"**{r['name']}** — {r['config']['pairs']} pairs, {r['config']['source_seconds']:g} s 1280x720 testsrc2, "
        f"libx264 veryfast; {r['started']}, commit {m.get('git_commit')}, {m['cpu_model']}, "
        f"{m['logical_cpus']} CPUs, load average at start {m['load_avg_at_start']}, at end "
        f"{r.get('load_avg_at_end', 'n/a')}; `{r['command'].strip()}`\n\n"
    ) + note
    lines = [
        "| pair | order | bare wall s | stack wall s | wall ratio | ffmpeg CPU s | agent+runner CPU s | overhead % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(r["pairs"]):
        lines.append(
            f"| {i} | {'/'.join(p['order'])} | {p['bare']['wall_s']} | {p['stack']['wall_s']} | "
            f"{p['wall_ratio']} | {p['stack']['ffmpeg_cpu_s']} | {p['stack']['agent_and_runner_cpu_s']} | "
            f"{p['cpu_overhead_percent']} |"
        )
    lines.append(
        f"| **median** | | | | **{r['wall_ratio_median']}** (target <= 1.10: {_ok(t.get('wall_ratio<=1.10'))}) "
        f"| | | **{r['cpu_overhead_percent_median']}** (target <= 2: {_ok(t.get('cpu_overhead<=2%'))}) |"
    )
    runner = [p["stack"].get("sampled_cpu_s_by_process", {}).get("runner") for p in r["pairs"]]
    tail = (
        f"\nStack fixed overhead (stack wall - the runner's own encode wall), median: "
        f"{_fmt(r.get('stack_fixed_overhead_s_median'))} s, implying a wall ratio of "
        f"{_fmt(r.get('wall_ratio_from_fixed_overhead'))} against the median bare run; ratio of summed walls "
        f"{_fmt(r.get('wall_ratio_of_sums'))}. Runner process CPU per job: {runner} s "
        f"(of the agent+runner column; the rest is ffprobe and the agent).\n"
    )
    return head + "\n".join(lines) + "\n" + tail


def cluster_table(r: dict[str, Any]) -> str:
    """bench.cluster_overhead: a TranscodeJob vs a plain Pod with the same argv on `make cluster`."""
    m = r["machine"]
    head = (
        f"**cluster-overhead** — {r['pairs']} alternated pairs, {r['clip']}; {m['cpu_model']}, "
        f"{m['logical_cpus']} CPUs, load average at end {r['load_average']}; `python -m bench.cluster_overhead`\n\n"
    )
    lines = [
        "| figure | TranscodeJob | plain Pod | |",
        "|---|---|---|---|",
        (
            f"| wall, create to completed, p50 | {r['job_wall_s']} s | {r['pod_wall_s']} s | ratio "
            f"**{r['ratio']}** (median of pair ratios; target <= 1.10: {_ok(r['ratio'] <= 1.10)}) |"
        ),
        f"| create to first frame, p50 | {_fmt(r['job_first_frame_s'])} s | {_fmt(r['pod_first_frame_s'])} s | |",
    ]
    return head + "\n".join(lines) + "\n"


def scaling_table(r: dict[str, Any]) -> str:
    """bench.scaling: operator CPU per admitted job, memory and latency at each (backlog, nodes) point."""
    m = r["machine"]
    head = (
        f"**{r['name']}** — {len(r['points'])} points, each a fresh control plane, 1,000 jobs admitted past B "
        f"queued jobs that no node can run, on N nodes; {r['started']}, commit {m.get('git_commit')}, "
        f"{m['cpu_model']}, {m['logical_cpus']} CPUs; `{r['command'].strip()}`\n\n"
    )
    if r.get("note"):
        head += f"> {r['note']}\n\n"
    lines = [
        "| queued B | nodes N | operator CPU / job | less idle | idle CPU | RSS settled / peak | jobs/s | "
        "create -> bound p50 / p99 | writes / job | settle |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in r["points"]:
        lat = (p.get("latency_s") or {}).get("create_to_bound") or {}
        lines.append(
            f"| {p['backlog']:,} | {p['nodes']:,} | {_fmt(p.get('cpu_ms_per_job'))} ms | "
            f"{_fmt(p.get('marginal_cpu_ms_per_job'))} ms | {_fmt(p.get('idle_cpu_ms_per_s'))} ms/s | "
            f"{_fmt(p.get('rss_settled_mb'))} / {_fmt(p.get('rss_peak_mb'))} MB | {_fmt(p.get('jobs_per_s'))} | "
            f"{_fmt(lat.get('p50'))} / {_fmt(lat.get('p99'))} s | {_fmt(p.get('writes_per_job'))} | "
            f"{_fmt(p.get('settle_s'))} s |"
        )
    tail = ""
    for axis, label in (("backlog_axis", "queued jobs (N=100)"), ("node_axis", "nodes (B=1,000)")):
        a = r.get(axis)
        if a:
            tail += (
                f"\nCPU per job less idle along {label}: max/min **{a['max_over_min']}** "
                f"(target flat within 1.5x: {_ok(a.get('flat_within_1.5x'))})."
            )
    return head + "\n".join(lines) + "\n" + tail + "\n"


def render(results: Path = RESULTS) -> str:
    parts = []
    first = (
        "scheduler-smoke",
        "scheduler-full",
        "scheduler-scaling",
        "transcode",
        "cluster-overhead",
    )  # the current results, then the history
    for path in sorted(results.glob("*.json"), key=lambda f: (first.index(f.stem) if f.stem in first else 9, f.stem)):
        r = json.loads(path.read_text())
        if r.get("benchmark") == "cluster-overhead":
            parts.append(cluster_table(r))
        elif "points" in r:
            parts.append(scaling_table(r))
        elif "pairs" in r:
            parts.append(transcode_table(r))
        elif "config" in r and "jobs" in r["config"]:
            parts.append(scheduler_table(r))
    return "\n\n".join(parts)


def main() -> int:
    doc = DOC.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    DOC.write_text(doc[:start] + "\n" + render() + doc[end:])
    print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
