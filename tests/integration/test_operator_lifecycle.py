"""The operator against a real API server: jobs are queued, placed, run (the test plays the kubelet),
paused, resumed, canceled, retried and failed, with transitions, conditions and Events."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ffrtmp_operator import api

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_jobs() -> list[tuple[Path, str]]:
    return [
        (path, doc["metadata"]["name"])
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == api.KIND
    ]


def test_given_the_examples_when_applied_then_each_job_is_accepted_and_queued(operator, cluster, kubectl, namespace):
    jobs = example_jobs()
    assert len(jobs) >= 4
    for path, _ in jobs:
        kubectl("apply", "-n", namespace, "-f", str(path))
    for _, name in jobs:
        status = cluster.wait_phase(name, "Queued")
        assert status["queuedAt"]
        assert status["transitions"][-1]["phase"] == "Queued"
        assert {c["type"] for c in status["conditions"]} == set(api.CONDITION_TYPES)
        assert status["observedGeneration"] == 1
        meta = cluster.job(name)["metadata"]
        # kopf wrote nothing of its own on the job (no progress annotations, no finalizers).
        assert not [k for k in meta.get("annotations") or {} if "kopf" in k]
        assert not meta.get("finalizers")


def test_given_a_job_and_a_node_when_the_pod_runs_and_succeeds_then_the_job_completes(operator, cluster):
    node = cluster.add_node("w", slots=1)
    cluster.create_job("ok")
    status = cluster.wait_phase("ok", "Assigned")
    assert (status["node"], status["pod"], status["attempts"], status["encoder"]) == (node, "ok-1", 1, "libx264")
    pod = cluster.core.read_namespaced_pod("ok-1", cluster.ns)
    assert pod.spec.node_name == node
    assert pod.metadata.owner_references[0].name == "ok"
    assert cluster.core.read_namespaced_service_account("ffrtmp-runner", cluster.ns)
    cluster.pod_running("ok-1")
    status = cluster.wait_phase("ok", "Processing")
    assert status["startedAt"]
    cluster.pod_succeeded("ok-1")
    status = cluster.wait_phase("ok", "Completed")
    assert [t["phase"] for t in status["transitions"]] == ["Queued", "Assigned", "Processing", "Completed"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Complete"] == "True"
    # One Event per transition (Event times have second precision, so compare as a multiset).
    assert sorted(e.reason for e in cluster.events("ok")) == ["Admitted", "Created", "Started", "Succeeded"]
