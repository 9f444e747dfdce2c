"""The latency distribution plot of a scheduler result: empirical CDFs of queue-to-assigned (paced phase,
the target's figure) and create-to-bound (burst and paced), with the 1 s target marked.
`python -m bench.plot bench/results/scheduler-smoke.json` redraws it from the saved samples; given a
bench.scaling result, it draws operator CPU per admitted job along both scaling axes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402

CURVES = (  # (phase, latency kind, label)
    ("paced", "queued_to_assigned", "paced: queued -> assigned"),
    ("paced", "create_to_bound", "paced: create -> pod bound"),
    ("burst", "queued_to_assigned", "burst: queued -> assigned"),
    ("burst", "create_to_bound", "burst: create -> pod bound"),
)


def plot_latency(result: dict[str, Any], path: Path) -> Path:
    op = result.get("operator") or {}
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for phase, kind, label in CURVES:
        samples = ((op.get(phase) or {}).get("samples_s") or {}).get(kind) or []
        if not samples:
            continue
        n = len(samples)
        ax.step(sorted(samples), [(i + 1) / n for i in range(n)], where="post", label=f"{label} (n={n})")
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1, label="target p99 (paced) 0.5 s")
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log)")
    ax.set_ylabel("fraction of jobs")
    cfg = result.get("config", {})
    ax.set_title(f"{result.get('name')}: M={cfg.get('jobs')} N={cfg.get('nodes')}, paced {cfg.get('paced_rate')}/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_scaling(result: dict[str, Any], path: Path) -> Path:
    """Operator CPU per admitted job along both axes of bench.scaling (raw and less the idle rate), with the
    1.5x band over the smallest point that the issue allows."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110, sharey=True)
    for ax, (axis, fixed, value, label) in zip(
        axes,
        (
            ("backlog", "nodes", 100, "queued backlog (N=100 nodes)"),
            ("nodes", "backlog", 1000, "nodes (B=1,000 queued)"),
        ),
    ):
        points = sorted((p for p in result.get("points", []) if p.get(fixed) == value), key=lambda p: p[axis])
        xs = [p[axis] for p in points]
        for key, name in (("cpu_ms_per_job", "operator CPU / job"), ("marginal_cpu_ms_per_job", "less idle CPU")):
            ys = [p.get(key) for p in points]
            if any(y is not None for y in ys):
                ax.plot(xs, ys, marker="o", label=name)
        marginal = [p["marginal_cpu_ms_per_job"] for p in points if p.get("marginal_cpu_ms_per_job")]
        if marginal:
            ax.axhline(1.5 * min(marginal), color="grey", linestyle="--", linewidth=1, label="1.5x smallest")
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} (log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("ms of CPU per admitted job")
    axes[0].set_ylim(bottom=0)
    fig.suptitle(f"{result.get('name')}: operator CPU per admitted job as the cluster grows")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    for name in argv if argv is not None else sys.argv[1:]:
        src = Path(name)
        result = json.loads(src.read_text())
        if "points" in result:  # bench.scaling
            print(plot_scaling(result, src.with_suffix(".png")))
        else:
            print(plot_latency(result, src.with_name(src.stem + "-latency.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
