"""The operator's scrape-time gauges come from its watch-fed cache: a running job's progress, its node's
slots and the job counts show up on /metrics, a scrape makes no LIST request to the API server
(apiserver_request_total{verb="LIST"} before and after), and a standby replica leaves the gauges out
while still serving its counters."""

from __future__ import annotations

import ssl
import time
import urllib.request

import ffrtmp_api as api
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port, wait_until

WATCHED = ("transcodejobs", "nodes", "leases")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def apiserver_lists(control_plane) -> dict[str, float]:
    """LIST requests the API server has served so far, per watched resource (its own /metrics)."""
    context = ssl.create_default_context(cafile=str(control_plane.ca_file))
    request = urllib.request.Request(
        f"{control_plane.server}/metrics", headers={"Authorization": f"Bearer {control_plane.token}"}
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        text = response.read().decode()
    counts = dict.fromkeys(WATCHED, 0.0)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "apiserver_request_total" and s.labels.get("verb") == "LIST":
                if s.labels.get("resource") in counts:
                    counts[s.labels["resource"]] += s.value
    return counts


def gauge(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_given_a_running_job_then_scrapes_show_it_from_the_cache_without_listing_the_api(
    start_operator, cluster, control_plane
):
    port = free_port()
    # A long tick: the scheduler's once-per-tick reachability probe (a 1-item Lease LIST) stays out of the way.
    active = start_operator("--metrics-port", str(port), "--tick-seconds", "30", priority=200)
    active.wait_active()
    node = cluster.add_node("m", slots=2)
    cluster.create_job("prog")
    cluster.wait_phase("prog", "Assigned")
    cluster.pod_running("prog-1")
    cluster.wait_phase("prog", "Processing")
    cluster.custom.patch_namespaced_custom_object_status(  # what the runner writes
        api.GROUP,
        api.VERSION,
        cluster.ns,
        api.PLURAL,
        "prog",
        {"status": {"progress": {"percent": 37.5, "fps": 48.0, "speed": 1.6}}},
    )
    running = {"job_namespace": cluster.ns, "transcodejob": "prog", "node": node}

    def progressed() -> dict | None:
        samples = scrape(port)
        return samples if gauge(samples, "ffrtmp_job_progress_ratio", **running) == 0.375 else None

    samples = wait_until(progressed, timeout=20, what="the runner's progress on /metrics")
    assert gauge(samples, "ffrtmp_job_frames_per_second", **running) == 48.0
    assert gauge(samples, "ffrtmp_job_speed_ratio", **running) == 1.6
    assert gauge(samples, "ffrtmp_node_slots", node=node) == 2
    assert gauge(samples, "ffrtmp_node_slots_used", node=node) == 1
    assert gauge(samples, "ffrtmp_jobs", phase="Processing", queue="default") == 1
    assert gauge(samples, "ffrtmp_nodes", status="ready") >= 1

    before = apiserver_lists(control_plane)
    assert before["transcodejobs"] > 0, "the operator's own resync and watches list jobs: the counter works"
    for _ in range(10):
        scrape(port)
    after = apiserver_lists(control_plane)
    print(f"apiserver LIST requests before {before}, after 10 scrapes {after}")
    assert after["transcodejobs"] == before["transcodejobs"]
    assert after["nodes"] == before["nodes"]
    assert after["leases"] - before["leases"] <= 1  # at most one reachability probe; never one per scrape

    standby = start_operator("--metrics-port", str(standby_port := free_port()), priority=100)
    time.sleep(5)  # the standby has seen the active peer by now (as in test_operator_resilience)
    assert standby.alive() and '"scheduler started' not in standby.log_text()
    paused = scrape(standby_port)
    names = {name for name, _ in paused}
    assert "ffrtmp_jobs" not in names and "ffrtmp_job_progress_ratio" not in names, "stale gauges from a standby"
    assert gauge(paused, "ffrtmp_job_failures_total", reason="EncoderError") == 0  # counters still served
    assert gauge(paused, "ffrtmp_metrics_snapshot_errors_total") == 0
    assert gauge(scrape(port), "ffrtmp_job_progress_ratio", **running) == 0.375  # the active one still does
