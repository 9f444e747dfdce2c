"""Pure helpers of the benchmarks: percentiles, apiserver write counters, profile summaries, the headline
figures and targets. No cluster needed: `python -m pytest bench/tests`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from bench.common import percentile, summary
from bench.kube import WriteKey, writes_delta
from bench.profiling import summarize
from bench.scheduler import Config, headline, latencies
from bench.transcode import NAMESPACE, runner_log_cpu
from bench.workload import JobTimes, Tracker

METRICS = """\
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="ffrtmp.io",resource="transcodejobs",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 4
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 99
"""


class FakeKube:
    def text(self, path: str) -> str:
        assert path == "/metrics"
        return METRICS


def test_given_a_sample_when_percentiles_then_they_interpolate_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 99) == 9.9
    assert summary([1.0, 2.0, 3.0, 4.0])["p50"] == 2.5


def test_given_apiserver_metrics_when_counting_writes_then_reads_are_left_out_and_deltas_are_by_resource() -> None:
    from bench.kube import write_counts

    after = write_counts(FakeKube())  # type: ignore[arg-type]
    assert after == Counter(
        {WriteKey("POST", "/pods", "201"): 7, WriteKey("PATCH", "ffrtmp.io/transcodejobs/status", "200"): 4}
    )
    before = Counter({WriteKey("POST", "/pods", "201"): 2})
    assert writes_delta(before, after) == {"POST /pods 201": 5, "PATCH ffrtmp.io/transcodejobs/status 200": 4}


def test_given_pyspy_raw_stacks_when_summarized_then_own_and_inclusive_shares_add_up() -> None:
    raw = (
        "process 1:python;main (/x/operator/ffrtmp_operator/loop.py:10);json_loads (json/decoder.py:5) 3\n"
        "process 1:python;main (/x/operator/ffrtmp_operator/loop.py:12) 1\n"
    )
    out = summarize(raw)
    assert out["samples"] == 4
    assert out["self"][0] == {"function": "json_loads (json/decoder.py)", "samples": 3, "percent": 75.0}
    assert out["ours"][0] == {"function": "main (ffrtmp_operator/loop.py)", "samples": 4, "percent": 100.0}


def test_given_stamps_and_watch_times_when_latencies_then_queued_to_assigned_uses_the_operator_queued_stamp() -> None:
    tracker = Tracker(prefix="job-")
    tracker.jobs["job-1"] = JobTimes(
        created=1000.0,
        queued_seen=1000.2,
        assigned_seen=1000.5,
        bound_seen=1000.6,
        queued_at="1970-01-01T00:16:40.100Z",
        assigned_at="1970-01-01T00:16:40.400Z",
    )
    lat = latencies(tracker)
    assert round(lat["queued_to_assigned"][0], 3) == 0.4
    assert round(lat["stamps_only"][0], 3) == 0.3
    assert round(lat["watch_only"][0], 3) == 0.3
    assert round(lat["create_to_bound"][0], 3) == 0.6


def test_given_a_job_watch_event_of_another_phase_when_tracking_then_it_is_ignored() -> None:
    tracker = Tracker(prefix="paced-")
    tracker.on_job("ADDED", {"metadata": {"name": "job-00001"}, "status": {"phase": "Assigned"}}, 1.0)
    tracker.on_pod("ADDED", {"metadata": {"labels": {"ffrtmp.io/job": "job-00001"}}, "spec": {"nodeName": "n"}}, 1.0)
    assert tracker.jobs == {} and tracker.bound == 0


def test_given_results_when_headline_then_ratio_and_targets_follow_the_issue() -> None:
    result = {
        "baseline": {"jobs_per_s": 40.0},
        "operator": {
            "operator_rss_peak_mb": 140.0,
            "burst": {
                "jobs_per_s": 32.0,
                "jobs_bound": 100,
                "other_writes": 460,
                "writes_by_verb_resource_code": {
                    "PUT coordination.k8s.io/leases 200": 5,
                    "POST /endpoints 422": 5,
                    "POST /events 201": 200,
                },
            },
            "paced": {"latency_s": {"queued_to_assigned": {"p50": 0.2, "p99": 0.4}}},
        },
    }
    h = headline(result)
    assert h["ratio"] == 0.8
    assert h["writes_per_job"] == 4.5  # (460 - 10 apiserver self-writes) / 100
    assert h["targets"] == {"ratio>=0.75": True, "p99<=0.5s": True, "rss<=150MB": True, "writes<=3": False}


def test_given_sizes_when_configuring_then_every_job_of_both_phases_fits_in_the_slots() -> None:
    cfg = Config(jobs=10000, nodes=500, paced_rate=20, paced_seconds=30)
    assert cfg.slots * cfg.nodes >= cfg.jobs + cfg.paced_jobs


def test_given_runner_logs_of_two_attempts_when_read_then_exact_cpu_summed_per_kind(tmp_path: Path) -> None:
    lines = {
        "1": [
            "ffmpeg 7 exited 1 after 0.500 s of CPU",
            "finished: failed (EncoderError: x); CPU 0.250 s, of ffmpeg and ffprobe 0.550 s",
        ],
        "2": [
            "not json",
            "ffmpeg 9 exited 0 after 6.000 s of CPU",
            "finished: succeeded; CPU 0.240 s, of ffmpeg and ffprobe 6.080 s",
        ],
    }
    for attempt, msgs in lines.items():
        folder = tmp_path / f"{NAMESPACE}_tc-1-{attempt}_abcdef12"
        folder.mkdir()
        text = "\n".join(m if m == "not json" else json.dumps({"msg": m}) for m in msgs)
        (folder / "runner.log").write_text(text)
    (tmp_path / f"{NAMESPACE}_tc-10-1_abcdef12").mkdir()  # another job's pod: not counted
    (tmp_path / f"{NAMESPACE}_tc-10-1_abcdef12" / "runner.log").write_text(json.dumps({"msg": lines["2"][1]}))
    assert runner_log_cpu(tmp_path, "tc-1") == {"ffmpeg": 6.5, "runner": 0.49, "runner_children": 6.63}
    assert runner_log_cpu(tmp_path, "tc-2") == {}


def test_given_results_of_two_rounds_when_reported_then_each_is_judged_by_its_own_targets() -> None:
    from bench.report import _target

    assert _target({"ratio>=0.5": True, "p99<=1s": True}, "ratio") == (">= 0.5", "met")
    assert _target({"ratio>=0.75": False, "rss<=150MB": True}, "ratio") == (">= 0.75", "**missed**")
    assert _target({"rss<=150MB": True}, "rss") == ("<= 150MB", "met")
    assert _target({}, "p99") == ("", "n/a")
