"""The scaling benchmark's code runs end to end at a tiny size: a real control plane, a backlog the fleet
cannot run, the real operator, a burst past the backlog (the figures at this size mean nothing)."""

from __future__ import annotations

from pathlib import Path

from bench.scaling import Point, run_point


def test_given_a_tiny_point_when_run_then_every_job_is_admitted_past_the_backlog(tmp_path: Path) -> None:
    out = run_point(Point(backlog=30, nodes=3, jobs=12, settle_timeout_s=120), tmp_path)
    assert out["backlog_write"]["error_count"] == 0
    assert out["complete"] and out["jobs_bound"] == 12
    assert out["cpu_ms_per_job"] > 0 and out["marginal_cpu_ms_per_job"] is not None
    assert out["rss_settled_mb"] > 0 and out["writes_per_job"] > 0
