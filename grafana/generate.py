"""Generates the Grafana dashboards (grafana/*.json, copied into helm/ffrtmp/dashboards/) from the panel
lists below: `python grafana/generate.py` (or `make dashboards`). tests/unit/test_dashboards.py fails when
the JSON drifts from this file or a query names a metric the code does not export.

Queries take `max by (...)` over the operator's scrape-time gauges: every operator replica exports the same
cluster snapshot, so summing across replicas would double it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHART_COPY = HERE.parent / "helm" / "ffrtmp" / "dashboards"
RI = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: list[tuple[str, str]]  # (PromQL, legend)
    kind: str = "timeseries"  # timeseries | stat | bargauge | table
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    max: float | None = None
    needs: str | None = None  # "gpu" | "energy" | "vmaf": no data on machines without it (the e2e test checks)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)


def _quantiles(metric: str, by: str) -> list[tuple[str, str]]:
    return [
        (f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket[{RI}])))", f"p{int(q * 100)} {{{{{by}}}}}")
        for q in (0.5, 0.95)
    ]


def _mean(metric: str, by: str, window: str = "1h") -> str:
    return f"sum by ({by}) (increase({metric}_sum[{window}])) / sum by ({by}) (increase({metric}_count[{window}]))"


SCHEDULER = Dashboard(
    uid="ffrtmp-scheduler",
    title="ffrtmp / Scheduler overview",
    description="Queues, admissions, scheduling, waits and failures of the ffrtmp operator.",
    panels=[
        Panel(
            "Jobs by phase",
            [("sum by (phase) (max by (phase, queue) (ffrtmp_jobs))", "{{phase}}")],
            kind="bargauge",
            width=8,
        ),
        Panel(
            "Queue depth by queue",
            [("sum by (queue) (max by (queue, priority) (ffrtmp_queue_depth))", "{{queue}}")],
            width=8,
        ),
        Panel(
            "Queue depth by priority",
            [("sum by (priority) (max by (queue, priority) (ffrtmp_queue_depth))", "{{priority}}")],
            width=8,
        ),
        Panel(
            "Jobs holding a node by queue",
            [('sum by (queue) (max by (phase, queue) (ffrtmp_jobs{phase=~"Assigned|Processing"}))', "{{queue}}")],
            description="What a TranscodeQueue's maxRunning caps (paused jobs holding a slot not included).",
        ),
        Panel(
            "Admissions by result",
            [(f"sum by (result) (rate(ffrtmp_admissions_total[{RI}]))", "{{result}}")],
            unit="ops",
        ),
        Panel(
            "Scheduling attempts by result",
            [(f"sum by (result) (rate(ffrtmp_scheduling_attempts_total[{RI}]))", "{{result}}")],
            unit="ops",
        ),
        Panel(
            "Queue wait (p50, p95)",
            _quantiles("ffrtmp_job_queue_wait_seconds", "queue"),
            unit="s",
            description="Time from Queued to Assigned.",
        ),
        Panel("Oldest queued job", [("max by (queue) (ffrtmp_queue_oldest_wait_seconds)", "{{queue}}")], unit="s"),
        Panel(
            "Failures by reason (1h)",
            [("sum by (reason) (increase(ffrtmp_job_failures_total[1h]))", "{{reason}}")],
            kind="bargauge",
            description="Failed attempts, retried or final.",
        ),
        Panel(
            "Retries by reason", [(f"sum by (reason) (rate(ffrtmp_job_retries_total[{RI}]))", "{{reason}}")], unit="ops"
        ),
        Panel(
            "Phase changes", [(f"sum by (phase) (rate(ffrtmp_job_transitions_total[{RI}]))", "{{phase}}")], unit="ops"
        ),
        Panel(
            "Scheduling cycle duration (p95)",
            [
                (
                    f"histogram_quantile(0.95, sum by (le) (rate(ffrtmp_scheduling_cycle_duration_seconds_bucket[{RI}])))",
                    "p95",
                )
            ],
            unit="s",
        ),
    ],
)

NODES = Dashboard(
    uid="ffrtmp-nodes",
    title="ffrtmp / Nodes",
    description="Worker nodes: heartbeat status, slots, and the agents' hardware utilisation.",
    panels=[
        Panel("Nodes by status", [("max by (status) (ffrtmp_nodes)", "{{status}}")], kind="bargauge", width=8),
        Panel(
            "Slot utilisation",
            [("sum(max by (node) (ffrtmp_node_slots_used)) / sum(max by (node) (ffrtmp_node_slots))", "used")],
            kind="stat",
            unit="percentunit",
            width=8,
            max=1,
        ),
        Panel(
            "Free slots",
            [("sum(max by (node) (ffrtmp_node_slots)) - sum(max by (node) (ffrtmp_node_slots_used))", "free")],
            kind="stat",
            width=8,
        ),
        Panel(
            "Slots used per node",
            [
                ("max by (node) (ffrtmp_node_slots_used)", "{{node}} used"),
                ("max by (node) (ffrtmp_node_slots)", "{{node}} total"),
            ],
        ),
        Panel("Hardware: CPU cores", [("max by (node) (ffrtmp_node_cpu_cores)", "{{node}}")], kind="bargauge"),
        Panel(
            "Hardware: memory",
            [("max by (node) (ffrtmp_node_memory_total_bytes)", "{{node}}")],
            kind="bargauge",
            unit="bytes",
        ),
        Panel(
            "Proven encoders",
            [("max by (node, encoder) (ffrtmp_node_encoder_available) == 1", "{{node}} {{encoder}}")],
            kind="table",
            description="Encoders a one-second trial encode proved on each node.",
        ),
        Panel(
            "CPU utilisation",
            [("max by (node) (ffrtmp_node_cpu_utilization_ratio)", "{{node}}")],
            unit="percentunit",
            max=1,
        ),
        Panel(
            "Memory in use",
            [("max by (node) (ffrtmp_node_memory_total_bytes - ffrtmp_node_memory_available_bytes)", "{{node}}")],
            unit="bytes",
        ),
        Panel("Load average (1m)", [('max by (node) (ffrtmp_node_load_average{window="1m"})', "{{node}}")]),
        Panel(
            "Jobs' CPU use",
            [(f"sum by (node) (rate(ffrtmp_agent_job_cpu_seconds_total[{RI}]))", "{{node}}")],
            description="CPU cores busy with job processes (runner + ffmpeg), per node.",
        ),
        Panel("Jobs' memory", [("sum by (node) (ffrtmp_agent_job_memory_bytes)", "{{node}}")], unit="bytes"),
        Panel(
            "Jobs running (agent view)",
            [
                ("max by (node) (ffrtmp_agent_slots_used)", "{{node}} used"),
                ("max by (node) (ffrtmp_agent_slots)", "{{node}} slots"),
            ],
        ),
        Panel(
            "GPU utilisation",
            [("max by (node, gpu) (ffrtmp_gpu_utilization_ratio)", "{{node}} gpu{{gpu}}")],
            unit="percentunit",
            max=1,
            needs="gpu",
        ),
        Panel(
            "GPU encoder (NVENC) utilisation",
            [("max by (node, gpu) (ffrtmp_gpu_encoder_utilization_ratio)", "{{node}} gpu{{gpu}}")],
            unit="percentunit",
            max=1,
            needs="gpu",
        ),
        Panel(
            "GPU memory in use",
            [("max by (node, gpu) (ffrtmp_gpu_memory_used_bytes)", "{{node}} gpu{{gpu}}")],
            unit="bytes",
            needs="gpu",
        ),
        Panel(
            "Power",
            [
                (f"sum by (node) (rate(ffrtmp_node_cpu_energy_joules_total[{RI}]))", "{{node}} CPU"),
                ("sum by (node) (ffrtmp_gpu_power_watts)", "{{node}} GPU"),
            ],
            unit="watt",
            needs="energy",
        ),
    ],
)

JOBS = Dashboard(
    uid="ffrtmp-jobs",
    title="ffrtmp / Jobs",
    description="Running jobs' progress and speed, and how long jobs take.",
    panels=[
        Panel(
            "Running jobs: progress",
            [
                (
                    "max by (job_namespace, transcodejob, node) (ffrtmp_job_progress_ratio)",
                    "{{job_namespace}}/{{transcodejob}}",
                )
            ],
            kind="bargauge",
            unit="percentunit",
            max=1,
        ),
        Panel(
            "Running jobs: encode speed (x real time)",
            [("max by (job_namespace, transcodejob) (ffrtmp_job_speed_ratio)", "{{job_namespace}}/{{transcodejob}}")],
            unit="x",
        ),
        Panel(
            "Running jobs: frames per second",
            [
                (
                    "max by (job_namespace, transcodejob) (ffrtmp_job_frames_per_second)",
                    "{{job_namespace}}/{{transcodejob}}",
                )
            ],
            unit="fps",
        ),
        Panel(
            "Run time (p50, p95)",
            _quantiles("ffrtmp_job_run_seconds", "phase"),
            unit="s",
            description="From start to Completed, Failed or Canceled.",
        ),
        Panel(
            "Jobs finished (1h)",
            [
                (
                    'sum by (phase) (increase(ffrtmp_job_transitions_total{phase=~"Completed|Failed|Canceled"}[1h]))',
                    "{{phase}}",
                )
            ],
            kind="bargauge",
        ),
        Panel(
            "Media produced (seconds of output per second)",
            [(f"sum by (encoder) (rate(ffrtmp_job_output_media_seconds_total[{RI}]))", "{{encoder}}")],
        ),
        Panel(
            "Output written",
            [(f"sum by (encoder) (rate(ffrtmp_job_output_bytes_total[{RI}]))", "{{encoder}}")],
            unit="Bps",
        ),
    ],
)

QUALITY = Dashboard(
    uid="ffrtmp-quality-energy",
    title="ffrtmp / Quality and energy",
    description="PSNR, SSIM, VMAF and QoE of completed jobs; energy per job and efficiency, by encoder.",
    panels=[
        Panel("PSNR (mean, 1h)", [(_mean("ffrtmp_job_psnr_decibels", "encoder"), "{{encoder}}")], unit="dB", width=8),
        Panel("SSIM (mean, 1h)", [(_mean("ffrtmp_job_ssim_ratio", "encoder"), "{{encoder}}")], width=8, max=1),
        Panel(
            "VMAF (mean, 1h)",
            [(_mean("ffrtmp_job_vmaf_score", "encoder"), "{{encoder}}")],
            width=8,
            max=100,
            description="Needs an ffmpeg built with libvmaf on the node.",
            needs="vmaf",
        ),
        Panel("QoE score (mean, 1h)", [(_mean("ffrtmp_job_qoe_score", "encoder"), "{{encoder}}")], width=8, max=100),
        Panel(
            "Energy per job (mean, 1h)",
            [(_mean("ffrtmp_job_energy_joules", "encoder"), "{{encoder}}")],
            unit="joule",
            width=8,
            description="RAPL / NVML counters; absent where the node has none.",
            needs="energy",
        ),
        Panel(
            "Efficiency (output seconds per kJ, mean 1h)",
            [(_mean("ffrtmp_job_efficiency_score", "encoder"), "{{encoder}}")],
            width=8,
            needs="energy",
        ),
        Panel(
            "Jobs' power (attributed)",
            [(f"sum by (node) (rate(ffrtmp_agent_job_energy_joules_total[{RI}]))", "{{node}}")],
            unit="watt",
            width=12,
            needs="energy",
            description="CPU package energy split between jobs by CPU-time share.",
        ),
        Panel(
            "Measures a node could not take (1h)",
            [("sum by (measure) (increase(ffrtmp_job_measurements_unavailable_total[1h]))", "{{measure}}")],
            kind="bargauge",
            width=12,
        ),
    ],
)

DASHBOARDS = {"scheduler": SCHEDULER, "nodes": NODES, "jobs": JOBS, "quality-energy": QUALITY}

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def panel_json(panel: Panel, *, panel_id: int, x: int, y: int) -> dict:
    defaults: dict = {"unit": panel.unit}
    if panel.max is not None:
        defaults.update(min=0, max=panel.max)
    out = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": _DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        **({"ffrtmpNeeds": panel.needs} if panel.needs else {}),
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": _DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                "range": panel.kind == "timeseries",
                "instant": panel.kind != "timeseries",
            }
            for i, (expr, legend) in enumerate(panel.exprs)
        ],
    }
    if panel.kind in ("bargauge", "stat"):
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return out


def dashboard_json(board: Dashboard) -> dict:
    panels, x, y, row_height = [], 0, 0, 0
    for i, panel in enumerate(board.panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(panel_json(panel, panel_id=i, x=x, y=y))
        x, row_height = x + panel.width, max(row_height, panel.height)
    return {
        "uid": board.uid,
        "title": board.title,
        "description": board.description,
        "tags": ["ffrtmp"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> dict[str, str]:
    """File name -> JSON text for every dashboard."""
    return {f"{name}.json": json.dumps(dashboard_json(board), indent=2) + "\n" for name, board in DASHBOARDS.items()}


def main() -> int:
    CHART_COPY.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        for folder in (HERE, CHART_COPY):
            (folder / name).write_text(text)
    print(f"wrote {len(DASHBOARDS)} dashboards to {HERE} and {CHART_COPY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
