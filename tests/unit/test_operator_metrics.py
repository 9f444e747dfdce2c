"""Operator metrics: names and label sets follow Prometheus conventions (checked by promtool), recorded
values land in the right series, and the scrape-time gauges follow the job/node snapshot."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from ffrtmp_api.samples import job_sample, leases_by_node, node_sample
from ffrtmp_operator import metrics as m
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _job(
    name: str,
    phase: str,
    *,
    queue: str = "default",
    priority: str = "medium",
    node: str | None = None,
    progress: dict | None = None,
    paused_from: str | None = None,
    queued_at: datetime | None = None,
) -> dict:
    status: dict = {"phase": phase}
    if node:
        status["node"] = node
    if progress:
        status["progress"] = progress
    if paused_from:
        status["pausedFrom"] = paused_from
    if queued_at:
        status["queuedAt"] = _iso(queued_at)
    return {
        "metadata": {"name": name, "namespace": "media"},
        "spec": {"queue": queue, "priority": priority},
        "status": status,
    }


def _node(name: str, *, cordoned: bool = False) -> dict:
    return {"metadata": {"name": name}, "spec": {"unschedulable": True} if cordoned else {}}


def _lease(node: str, *, renewed: datetime, slots: str = "2") -> dict:
    return {
        "metadata": {"name": f"ffrtmp-agent-{node}", "annotations": {"ffrtmp.io/slots": slots}},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 15, "renewTime": _iso(renewed)},
    }


def _snapshot() -> m.MetricsSnapshot:
    jobs = [
        _job("a", "Processing", node="n1", progress={"percent": 42.0, "fps": 120.5, "speed": 4.0}),
        _job("b", "Paused", node="n1", paused_from="Processing"),
        _job("c", "Queued", queue="batch", priority="low", queued_at=NOW - timedelta(seconds=90)),
        _job("d", "Queued", queue="batch", priority="low", queued_at=NOW - timedelta(seconds=30)),
        _job("e", "Completed", node="n2"),
        _job("f", "Paused", paused_from="Queued"),
        _job("g", "Queued", queue="weird-queue"),
    ]
    nodes = [_node("n1"), _node("n2"), _node("n3", cordoned=True), _node("n4")]
    leases = [
        _lease("n1", renewed=NOW - timedelta(seconds=3)),
        _lease("n2", renewed=NOW - timedelta(seconds=60)),
        _lease("n3", renewed=NOW),
    ]
    by_node = leases_by_node(leases)
    return m.MetricsSnapshot(
        now=NOW,
        jobs=[job_sample(j) for j in jobs],
        nodes=[node_sample(n, by_node.get(n["metadata"]["name"]), now=NOW) for n in nodes],
    )


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def metrics() -> m.OperatorMetrics:
    om = m.OperatorMetrics(process_metrics=False)
    om.set_snapshot_source(_snapshot)
    return om


def test_given_recorded_events_when_rendered_then_promtool_accepts_the_exposition(metrics):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (apt-get install -y prometheus)"
    metrics.record_transition(old="Queued", new="Assigned", queue="live", reason="Admitted", waited_s=2.5)
    metrics.record_transition(old="Processing", new="Completed", queue="live", reason="Succeeded", ran_s=61)
    metrics.record_admission("admitted", queue="live")
    metrics.record_scheduling_attempt("unschedulable", 3)
    metrics.record_cycle(0.004)
    metrics.record_result(
        {"psnr": 41.2, "ssim": 0.97, "energyJoules": 120.0, "unavailable": ["vmaf"]}, encoder="libx264"
    )
    text = metrics.render()
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert done.stdout.strip() == b"" and done.stderr.strip() == b"", "promtool has lint warnings"


def test_given_counters_then_only_counters_end_in_total():
    om = m.OperatorMetrics(process_metrics=False)
    for family in text_string_to_metric_families(om.render().decode()):
        if family.type == "counter":
            continue  # the parser strips _total from counter family names
        assert not family.name.endswith("_total"), family.name


def test_given_a_retry_and_a_final_failure_then_failures_retries_and_histograms_count_them(metrics):
    metrics.record_transition(
        old="Processing", new="Queued", queue="default", reason="Retrying", failure="EncoderError"
    )
    metrics.record_transition(
        old="Processing", new="Failed", queue="default", reason="InputError", failure="InputError", ran_s=12.0
    )
    metrics.record_transition(old="Queued", new="Assigned", queue="default", reason="Admitted", waited_s=7.0)
    s = _samples(metrics.render())
    assert _value(s, "ffrtmp_job_failures_total", reason="EncoderError") == 1
    assert _value(s, "ffrtmp_job_failures_total", reason="InputError") == 1
    assert _value(s, "ffrtmp_job_retries_total", reason="EncoderError") == 1
    assert _value(s, "ffrtmp_job_retries_total", reason="InputError") == 0
    assert _value(s, "ffrtmp_job_run_seconds_sum", queue="default", phase="Failed") == 12.0
    assert _value(s, "ffrtmp_job_queue_wait_seconds_sum", queue="default") == 7.0
    assert _value(s, "ffrtmp_job_queue_wait_seconds_bucket", queue="default", le="10.0") == 1
    assert _value(s, "ffrtmp_job_transitions_total", phase="Failed", reason="InputError") == 1


def test_given_unknown_label_values_then_they_become_other(metrics):
    metrics.record_transition(old=None, new="Bogus", queue="nope", reason="made-up " * 10)
    metrics.record_admission("whatever", queue="x")
    metrics.record_result({"psnr": 30.0}, encoder="my_custom_encoder")
    s = _samples(metrics.render())
    assert _value(s, "ffrtmp_job_transitions_total", phase="other", reason="other") == 1
    assert _value(s, "ffrtmp_admissions_total", queue="other", result="other") == 1
    assert _value(s, "ffrtmp_job_psnr_decibels_count", encoder="other") == 1


def test_given_a_snapshot_then_gauges_count_phases_queues_nodes_and_slots(metrics):
    s = _samples(metrics.render())
    assert _value(s, "ffrtmp_jobs", phase="Processing", queue="default") == 1
    assert _value(s, "ffrtmp_jobs", phase="Paused", queue="default") == 2
    assert _value(s, "ffrtmp_queue_depth", queue="batch", priority="low") == 2
    assert _value(s, "ffrtmp_queue_depth", queue="live", priority="high") == 0
    assert _value(s, "ffrtmp_queue_oldest_wait_seconds", queue="batch") == 90
    assert _value(s, "ffrtmp_nodes", status="ready") == 1
    assert _value(s, "ffrtmp_nodes", status="lost") == 1
    assert _value(s, "ffrtmp_nodes", status="cordoned") == 1
    assert _value(s, "ffrtmp_nodes", status="no_lease") == 1
    assert _value(s, "ffrtmp_node_slots", node="n1") == 2
    assert _value(s, "ffrtmp_node_slots", node="n4") == 0
    # The Processing job and the job paused while Processing hold slots; the one paused while Queued does not.
    assert _value(s, "ffrtmp_node_slots_used", node="n1") == 2
    assert _value(s, "ffrtmp_node_slots_used", node="n2") == 0


def test_given_a_running_job_then_progress_fps_and_speed_are_exported_per_job(metrics):
    s = _samples(metrics.render())
    labels = {"job_namespace": "media", "transcodejob": "a", "node": "n1"}
    assert _value(s, "ffrtmp_job_progress_ratio", **labels) == pytest.approx(0.42)
    assert _value(s, "ffrtmp_job_frames_per_second", **labels) == 120.5
    assert _value(s, "ffrtmp_job_speed_ratio", **labels) == 4.0
    assert not any(name == "ffrtmp_job_progress_ratio" and ("transcodejob", "e") in lbl for name, lbl in s)


def test_given_a_failing_snapshot_source_then_the_scrape_still_works_and_counts_the_error():
    om = m.OperatorMetrics(process_metrics=False)

    def broken() -> m.MetricsSnapshot:
        raise RuntimeError("apiserver down")

    om.set_snapshot_source(broken)
    s = _samples(om.render())
    assert _value(s, "ffrtmp_metrics_snapshot_errors_total") == 1
    assert _value(s, "ffrtmp_jobs", phase="Queued", queue="live") == 0


def test_given_a_served_registry_then_http_scrape_returns_the_metrics(metrics):
    import urllib.request

    port = free_port()
    server = metrics.serve(host="127.0.0.1", port=port)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        server.shutdown()
    assert b"ffrtmp_queue_depth" in body


def test_given_an_admission_when_its_job_has_not_finished_then_its_encoders_result_series_exist_at_zero():
    om = m.OperatorMetrics(process_metrics=False)
    om.record_admission("admitted", queue="default", encoder="libx265")
    samples = {
        (s.name, s.labels.get("encoder")): s.value
        for family in text_string_to_metric_families(om.render().decode())
        for s in family.samples
    }
    assert samples[("ffrtmp_job_psnr_decibels_count", "libx265")] == 0
    assert samples[("ffrtmp_job_output_bytes_total", "libx265")] == 0
