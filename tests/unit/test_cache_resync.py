"""The operator's cache around an API server restart: a resync must not undo watch events that arrive while
its lists are read (a pod that finished meanwhile kept its job Assigned forever), nor be undone by older ones;
a job whose status write conflicted is looked at again even if the newer version changes nothing compared."""

from __future__ import annotations

from ffrtmp_operator.cache import Cache
from ffrtmp_operator.records import job_record, pod_record


def _job(phase: str, rv: int) -> dict:
    return {
        "metadata": {"name": "a", "namespace": "media", "uid": "u1", "resourceVersion": str(rv)},
        "spec": {"input": {"testSource": {"durationSeconds": 1}}, "output": {"url": "rtmp://sink/live/x"}},
        "status": {"phase": phase, "node": "n1"},
    }


def _pod(phase: str, rv: int) -> dict:
    labels = {"ffrtmp.io/job": "a", "ffrtmp.io/job-uid": "u1", "ffrtmp.io/attempt": "1"}
    return {
        "metadata": {"name": "a-1", "namespace": "media", "labels": labels, "resourceVersion": str(rv)},
        "status": {"phase": phase},
    }


def _resync(cache: Cache, *, listed_pods: list[dict], listed_jobs: list[dict], during: list) -> None:
    cache.begin_resync()
    for event in during:  # watch events handled while the lists are in flight
        event(cache)
    cache.replace_all(
        jobs=[job_record(j) for j in listed_jobs],
        pods=[pod_record(p) for p in listed_pods],
        nodes=[],
        leases=[],
        priority_values={},
    )


def test_given_a_pod_that_finished_while_the_lists_were_read_when_the_resync_ends_then_the_cache_keeps_it() -> None:
    cache = Cache()
    _resync(
        cache,
        listed_pods=[_pod("Running", 10)],
        listed_jobs=[_job("Assigned", 9)],
        during=[lambda c: c.upsert_pod(pod_record(_pod("Succeeded", 12)))],
    )
    assert cache.pods[("media", "a-1")].phase == "Succeeded"
    assert ("media", "a") in cache.take_dirty()


def test_given_a_late_older_event_when_the_resync_ends_then_the_newer_listing_wins() -> None:
    cache = Cache()
    _resync(
        cache,
        listed_pods=[_pod("Succeeded", 12)],
        listed_jobs=[_job("Processing", 11)],
        during=[
            lambda c: c.upsert_pod(pod_record(_pod("Running", 10))),
            lambda c: c.upsert_job(job_record(_job("Assigned", 9))),
        ],
    )
    assert cache.pods[("media", "a-1")].phase == "Succeeded"
    assert cache.jobs[("media", "a")].phase.value == "Processing"


def test_given_a_deletion_while_the_lists_were_read_when_the_resync_ends_then_the_object_is_gone() -> None:
    cache = Cache()
    _resync(
        cache,
        listed_pods=[_pod("Succeeded", 12)],
        listed_jobs=[_job("Completed", 13)],
        during=[
            lambda c: c.delete_pod("media", "a-1", resource_version="14"),
            lambda c: c.delete_job(("media", "a"), resource_version="15"),
        ],
    )
    assert cache.pods == {} and cache.jobs == {}


def test_given_no_resync_when_events_arrive_then_nothing_is_journaled() -> None:
    cache = Cache()
    cache.upsert_pod(pod_record(_pod("Running", 10)))
    cache.replace_all(jobs=[], pods=[], nodes=[], leases=[], priority_values={})
    assert cache.pods == {}


def test_given_a_conflicted_write_when_the_newer_version_differs_only_in_progress_then_the_job_is_looked_at_again() -> (
    None
):
    cache = Cache()
    cache.upsert_job(job_record(_job("Processing", 9)))
    cache.take_dirty()
    newer = _job("Processing", 11)
    newer["status"]["progress"] = {"percent": 80}
    assert cache.upsert_job(job_record(newer)) is False  # progress alone does not wake the loop
    cache.recheck(("media", "a"))  # what the scheduler does after its Processing -> Completed write conflicted
    assert cache.take_dirty() == [("media", "a")]
