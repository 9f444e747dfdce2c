"""The operator survives crashes and runs highly available: a SIGKILL mid-run places no job twice,
an Assigned job whose pod was never created gets it on restart, and a standby replica (kopf peering)
takes over when the active one dies."""

from __future__ import annotations

import time

import ffrtmp_api as api

from tests.support import wait_until


def pods_per_job(cluster, names):
    counts = {n: 0 for n in names}
    for pod in cluster.pods():
        counts[pod.metadata.labels[api.LABEL_JOB]] += 1
    return counts


def test_given_an_operator_killed_mid_run_when_restarted_then_no_job_is_assigned_twice(start_operator, cluster):
    names = [f"j{i:02d}" for i in range(12)]
    cluster.add_node("a", slots=6)
    cluster.add_node("b", slots=6)
    first = start_operator()
    first.wait_active()
    for name in names:
        cluster.create_job(name)
    wait_until(
        lambda: any(cluster.status(n).get("phase") == "Assigned" for n in names), timeout=30, what="first assignment"
    )
    first.kill()  # SIGKILL: no cleanup, possibly between a status write and its pod
    second = start_operator()
    second.wait_active()
    wait_until(
        lambda: all(cluster.status(n).get("phase") == "Assigned" for n in names), timeout=30, what="all assigned"
    )
    wait_until(lambda: sum(pods_per_job(cluster, names).values()) == 12, timeout=15, what="12 pods")
    time.sleep(1.5)  # a few more scheduler passes: still nothing doubled
    assert pods_per_job(cluster, names) == {n: 1 for n in names}
    assert {cluster.status(n)["attempts"] for n in names} == {1}
    for name in names:
        cluster.pod_succeeded(f"{name}-1")
    for name in names:
        cluster.wait_phase(name, "Completed")
    assert pods_per_job(cluster, names) == {n: 1 for n in names}


def test_given_an_assigned_job_without_its_pod_when_the_operator_starts_then_it_creates_exactly_that_pod(
    start_operator, cluster
):
    node = cluster.add_node("w", slots=1)
    cluster.create_job("orphan")
    # What a crash between "write Assigned" and "create pod" leaves behind.
    status = {
        "phase": "Assigned",
        "node": node,
        "pod": "orphan-1",
        "attempts": 1,
        "encoder": "libx264",
        "queuedAt": "2026-01-01T00:00:00.000Z",
    }
    cluster.custom.patch_namespaced_custom_object_status(
        api.GROUP, api.VERSION, cluster.ns, api.PLURAL, "orphan", {"status": status}
    )
    op = start_operator()
    op.wait_active()
    wait_until(lambda: [p.metadata.name for p in cluster.pods("orphan")] == ["orphan-1"], timeout=15, what="the pod")
    pod = cluster.core.read_namespaced_pod("orphan-1", cluster.ns)
    assert pod.spec.node_name == node
    cluster.pod_running("orphan-1")
    assert cluster.wait_phase("orphan", "Processing")["attempts"] == 1


def test_given_two_replicas_when_the_active_one_is_killed_then_the_standby_takes_over(start_operator, cluster):
    cluster.add_node("w", slots=4)
    active = start_operator(priority=200)
    active.wait_active()
    standby = start_operator(priority=100)
    time.sleep(5)  # the standby has seen the active peer by now
    assert standby.alive() and '"scheduler started' not in standby.log_text()
    cluster.create_job("before")
    cluster.wait_phase("before", "Assigned")
    assert "/before" in active.log_text() and "/before" not in standby.log_text()
    active.kill()
    started = time.monotonic()
    standby.wait_active(timeout=40)  # the dead peer's entry expires after --peering-lifetime 10 s
    takeover = time.monotonic() - started
    cluster.create_job("after")
    assert cluster.wait_phase("after", "Assigned")["pod"] == "after-1"
    assert "/after" in standby.log_text()
    assert len(cluster.pods("before")) == 1
    print(f"standby took over {takeover:.1f}s after the active replica was killed")
