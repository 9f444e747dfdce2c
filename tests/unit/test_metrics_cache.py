"""Scrape-time gauges from the operator's cache: the same series the API-listing snapshot gave, progress
kept only for slot holders (and never waking the scheduler), no gauges from a cache that is not live,
and the scrape thread's copy taken on the event loop."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
from ffrtmp_api.samples import job_sample, leases_by_node, node_sample
from ffrtmp_operator import metrics as m
from ffrtmp_operator.cache import Cache
from ffrtmp_operator.metrics_cache import cache_snapshot_source, snapshot_from_cache
from ffrtmp_operator.queues import queue_record
from ffrtmp_operator.records import job_record, lease_record, node_record
from prometheus_client.parser import text_string_to_metric_families

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SPEC = {
    "input": {"testSource": {"durationSeconds": 10}},
    "output": {"url": "rtmp://sink/live/x"},
    "video": {"codec": "h264"},
}


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
    for key, value in (
        ("node", node),
        ("progress", progress),
        ("pausedFrom", paused_from),
        ("queuedAt", queued_at and _iso(queued_at)),
    ):
        if value:
            status[key] = value
    return {
        "metadata": {"name": name, "namespace": "media", "uid": name, "resourceVersion": "1"},
        "spec": {**SPEC, "queue": queue, "priority": priority},
        "status": status,
    }


def _node(name: str, *, cordoned: bool = False) -> dict:
    return {
        "metadata": {"name": name, "labels": {"ffrtmp.io/worker": "true"}},
        "spec": {"unschedulable": True} if cordoned else {},
    }


def _lease(node: str, *, renewed: datetime, slots: str = "2") -> dict:
    return {
        "metadata": {"name": f"ffrtmp-agent-{node}", "annotations": {"ffrtmp.io/slots": slots}},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 15, "renewTime": _iso(renewed)},
    }


JOBS = [
    _job("a", "Processing", node="n1", progress={"percent": 42.0, "fps": 120.5, "speed": 4.0}),
    _job("b", "Paused", node="n1", paused_from="Processing", progress={"percent": 10}),
    _job("c", "Queued", queue="batch", priority="low", queued_at=NOW - timedelta(seconds=90)),
    _job("d", "Queued", queue="batch", priority="low", queued_at=NOW - timedelta(seconds=30)),
    _job("e", "Completed", node="n2", progress={"percent": 100.0, "fps": 300, "speed": 9}),
    _job("f", "Paused", paused_from="Queued"),
    _job("g", "Queued", queue="live", priority="high", queued_at=NOW - timedelta(seconds=5)),
    _job("h", "Assigned", node="n2"),
]
NODES = [_node("n1"), _node("n2"), _node("n3", cordoned=True), _node("n4")]
LEASES = [
    _lease("n1", renewed=NOW - timedelta(seconds=3)),
    _lease("n2", renewed=NOW - timedelta(seconds=60)),
    _lease("n3", renewed=NOW, slots="4"),
]


def _filled_cache() -> Cache:
    cache = Cache()
    cache.replace_all(
        jobs=[job_record(j) for j in JOBS],
        pods=[],
        nodes=[node_record(n) for n in NODES],
        leases=[r for x in LEASES if (r := lease_record(x))],
        priority_values={},
    )
    return cache


def _gauges(snap: m.MetricsSnapshot) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in m.snapshot_families(snap) for s in f.samples}


def test_given_the_same_cluster_then_the_cache_snapshot_exports_what_the_api_listing_did():
    cache = _filled_cache()
    from_cache = snapshot_from_cache(jobs=cache.jobs.values(), nodes=cache.nodes.values(), leases=cache.leases, now=NOW)
    by_node = leases_by_node(LEASES)  # the snapshot as listing the API gives it, the reference for the cache's
    from_api = m.MetricsSnapshot(
        now=NOW,
        jobs=[job_sample(j) for j in JOBS],
        nodes=[node_sample(n, by_node.get(n["metadata"]["name"]), now=NOW) for n in NODES],
    )
    cached, listed = _gauges(from_cache), _gauges(from_api)
    assert cached == listed
    assert cached[
        ("ffrtmp_job_progress_ratio", (("job_namespace", "media"), ("node", "n1"), ("transcodejob", "a")))
    ] == pytest.approx(0.42)
    assert cached[("ffrtmp_queue_depth", (("priority", "low"), ("queue", "batch")))] == 2
    assert cached[("ffrtmp_queue_oldest_wait_seconds", (("queue", "batch"),))] == 90
    assert cached[("ffrtmp_node_slots_used", (("node", "n2"),))] == 1
    assert cached[("ffrtmp_node_slots", (("node", "n3"),))] == 4
    assert {s: cached[("ffrtmp_nodes", (("status", s),))] for s in m.NODE_STATUSES} == {
        "ready": 1,
        "lost": 1,
        "cordoned": 1,
        "no_lease": 1,
    }


def test_given_progress_then_only_slot_holders_keep_it_and_a_progress_write_does_not_wake_the_scheduler():
    cache = _filled_cache()
    assert cache.jobs[("media", "e")].progress is None  # Completed: 10,000 finished jobs carry no progress
    assert cache.jobs[("media", "a")].progress == (42.0, 120.5, 4.0)
    cache.take_dirty()
    newer = _job("a", "Processing", node="n1", progress={"percent": 55.5, "fps": 99, "speed": 3.5})
    newer["metadata"]["resourceVersion"] = "2"
    assert cache.upsert_job(job_record(newer, previous=cache.jobs[("media", "a")])) is False
    assert cache.dirty == {}
    snap = snapshot_from_cache(jobs=cache.jobs.values(), nodes=[], leases={}, now=NOW)
    sample = next(j for j in snap.jobs if j.name == "a")
    assert (sample.progress_percent, sample.fps, sample.speed) == (55.5, 99.0, 3.5)


def test_given_a_cache_that_is_not_live_then_the_scrape_leaves_the_gauges_out_and_keeps_the_counters():
    cache = _filled_cache()
    cache.live = False  # a standby replica: peering paused its watches
    om = m.OperatorMetrics(process_metrics=False)
    om.record_transition(old="Queued", new="Assigned", queue="default", reason="Admitted", waited_s=1.0)

    async def scrape() -> str:  # on the loop itself: no hand-off needed
        om.set_snapshot_source(cache_snapshot_source(cache, loop=asyncio.get_running_loop()))
        return om.render().decode()

    text = asyncio.run(scrape())
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "ffrtmp_jobs" not in names and "ffrtmp_node_slots" not in names
    assert 'ffrtmp_job_transitions_total{phase="Assigned",reason="Admitted"} 1.0' in text
    assert "ffrtmp_metrics_snapshot_errors_total 0.0" in text


def test_given_a_loop_in_another_thread_then_the_scrape_thread_gets_the_cache_through_the_loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        cache = asyncio.run_coroutine_threadsafe(asyncio.to_thread(_filled_cache), loop).result(5)
        source = cache_snapshot_source(cache, loop=loop, now=lambda: NOW)
        snap = source()
        assert snap is not None and {j.name for j in snap.jobs} == set("abcdefgh")
        blocked = threading.Event()
        loop.call_soon_threadsafe(blocked.wait, 10)  # a loop stuck in a long step: the scrape gives up
        import ffrtmp_operator.metrics_cache as mc

        mc.CAPTURE_TIMEOUT_S, saved = 0.2, mc.CAPTURE_TIMEOUT_S
        try:
            om = m.OperatorMetrics(process_metrics=False)
            om.set_snapshot_source(source)
            text = om.render().decode()
        finally:
            mc.CAPTURE_TIMEOUT_S = saved
            blocked.set()
        assert "ffrtmp_metrics_snapshot_errors_total 1.0" in text
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def _with_queue(cache: Cache, name: str) -> Cache:
    cache.set_queue(name, queue_record({"metadata": {"name": name, "generation": 1, "resourceVersion": "1"}}))
    return cache


def test_given_an_admin_queue_then_its_jobs_are_counted_under_its_name_and_unknown_names_under_other():
    cache = _with_queue(_filled_cache(), "ingest")
    cache.upsert_job(job_record(_job("i", "Queued", queue="ingest", queued_at=NOW - timedelta(seconds=12))))
    cache.upsert_job(job_record(_job("j", "Queued", queue="nosuch", queued_at=NOW - timedelta(seconds=7))))
    om = m.OperatorMetrics(process_metrics=False)
    om.set_snapshot_source(
        lambda: snapshot_from_cache(jobs=cache.jobs.values(), nodes=[], leases={}, now=NOW, queues=cache.queues)
    )
    om.set_queue_source(lambda: cache.queues.keys())
    om.record_admission("admitted", queue="ingest", encoder="libx264")
    om.record_admission("admitted", queue="nosuch", encoder="libx264")
    om.record_transition(old="Queued", new="Assigned", queue="ingest", reason="Admitted", waited_s=12.0)
    gauges = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in om.registry.collect() for s in f.samples}
    assert gauges[("ffrtmp_queue_oldest_wait_seconds", (("queue", "ingest"),))] == 12
    assert gauges[("ffrtmp_queue_oldest_wait_seconds", (("queue", "other"),))] == 7
    assert gauges[("ffrtmp_jobs", (("phase", "Queued"), ("queue", "ingest")))] == 1
    assert gauges[("ffrtmp_admissions_total", (("queue", "ingest"), ("result", "admitted")))] == 1
    assert gauges[("ffrtmp_admissions_total", (("queue", "other"), ("result", "admitted")))] == 1
    assert gauges[("ffrtmp_job_queue_wait_seconds_count", (("queue", "ingest"),))] == 1
    assert not [labels for name, labels in gauges if ("queue", "nosuch") in labels]


def test_given_more_queues_than_the_label_cap_then_the_extra_ones_count_as_other():
    names = [f"q{i:03d}" for i in range(m.MAX_QUEUE_LABELS + 5)]
    om = m.OperatorMetrics(process_metrics=False)
    om.set_queue_source(lambda: names)
    for name in names:
        om.record_admission("admitted", queue=name)
    text = om.render().decode()
    counted = {n for n in names if f'ffrtmp_admissions_total{{queue="{n}",result="admitted"}} 1.0' in text}
    assert len(counted) == m.MAX_QUEUE_LABELS - len(m.QUEUES)
    assert f'ffrtmp_admissions_total{{queue="other",result="admitted"}} {len(names) - len(counted)}.0' in text
    snap = snapshot_from_cache(jobs=[], nodes=[], leases={}, now=NOW, queues=names)
    assert len(snap.queues) == m.MAX_QUEUE_LABELS and snap.queues[:3] == m.QUEUES
