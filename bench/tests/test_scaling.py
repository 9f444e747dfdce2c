"""bench.scaling's pure parts (tests/integration/test_bench_scaling.py runs one tiny point end to end)."""

from __future__ import annotations

import ffrtmp_api as api

from bench.scaling import backlog_manifest, headline, parse_points, queued_in_cache, spread


def test_given_a_backlog_job_then_it_is_a_valid_batch_job_that_only_an_nvidia_encoder_may_run() -> None:
    job = api.TranscodeJob.model_validate(backlog_manifest("wait-00001"))
    assert job.spec.queue == "batch"
    assert job.spec.hardware.accelerator == "nvidia"


def test_given_operator_metrics_then_queued_jobs_are_summed_over_queues_and_other_phases_left_out() -> None:
    text = "\n".join(
        [
            "# HELP ffrtmp_jobs TranscodeJobs by phase and queue.",
            'ffrtmp_jobs{phase="Queued",queue="batch"} 40.0',
            'ffrtmp_jobs{phase="Queued",queue="default"} 2.0',
            'ffrtmp_jobs{phase="Assigned",queue="default"} 7.0',
            'ffrtmp_jobs_total{phase="Queued"} 99.0',
        ]
    )
    assert queued_in_cache(text) == 42


def test_given_points_then_growth_is_max_over_min_along_each_axis() -> None:
    points = [
        {"backlog": 1000, "nodes": 100, "marginal_cpu_ms_per_job": 10.0, "cpu_ms_per_job": 12.0, "rss_peak_mb": 120},
        {"backlog": 50000, "nodes": 100, "marginal_cpu_ms_per_job": 16.0, "cpu_ms_per_job": 20.0, "rss_peak_mb": 390},
        {"backlog": 1000, "nodes": 2000, "marginal_cpu_ms_per_job": 14.0, "cpu_ms_per_job": 30.0, "rss_peak_mb": 150},
    ]
    backlog = spread(points, "backlog", "nodes", 100, "marginal_cpu_ms_per_job")
    assert backlog == {"series": [(1000, 10.0), (50000, 16.0)], "max_over_min": 1.6, "flat_within_1.5x": False}
    h = headline(points)
    assert h["node_axis"]["max_over_min"] == 1.4 and h["node_axis"]["flat_within_1.5x"]
    assert h["rss_mb_by_backlog"] == {1000: 120, 50000: 390}
    assert parse_points("1000:100,50000:100") == [(1000, 100), (50000, 100)]
