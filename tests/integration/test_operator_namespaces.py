"""A namespace being deleted is a normal cluster state: the operator leaves its jobs alone (not admitted,
not retried: nothing can be created there) and logs no warning about it. The light stack has no namespace
controller, so a deleted namespace stays Terminating with its jobs for as long as the test needs.
"""

from __future__ import annotations

import json
import time

import ffrtmp_api as api
from kubernetes import client

from tests.support import wait_until


def _job(cluster, namespace: str, name: str, selector: dict[str, str]) -> None:
    body = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "input": {"testSource": {"durationSeconds": 10}},
            "output": {"url": f"rtmp://sink.invalid/live/{name}"},
            "video": {"codec": "h264", "preset": "ultrafast"},
            "hardware": {"accelerator": "none"},
            "nodeSelector": selector,
        },
    }
    cluster.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)


def _status(cluster, namespace: str, name: str) -> dict:
    return (
        cluster.custom.get_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, name).get("status")
        or {}
    )


def test_given_jobs_in_namespaces_being_deleted_then_they_are_not_admitted_and_no_warning_is_logged(
    api_client, cluster, start_operator, namespace
):
    core = client.CoreV1Api(api_client)
    gone, dies = f"{namespace}-gone", f"{namespace}-dies"  # terminating before / after the operator starts
    # Every job waits for a node that comes last, so the pass that places one would place all that may run.
    late = {**cluster.selector, "ffrtmp.io/late": "true"}
    for ns in (gone, dies):
        core.create_namespace({"metadata": {"name": ns, "labels": {"ffrtmp.io/test": "true"}}})
    try:
        _job(cluster, gone, "early", late)
        core.delete_namespace(gone)
        op = start_operator("--namespace", gone, "--namespace", dies, "--verbose")
        op.wait_active()
        _job(cluster, dies, "waiting", late)
        wait_until(lambda: _status(cluster, dies, "waiting").get("phase") == "Queued", what="waiting Queued")
        core.delete_namespace(dies)
        wait_until(lambda: f'"namespace": "{dies}"' in op.log_text(), what="the operator to see it terminating")

        cluster.create_job("alive", nodeSelector=late)
        cluster.add_node("late", slots=4, labels={"ffrtmp.io/late": "true"})
        cluster.wait_phase("alive", "Assigned")
        time.sleep(2)  # four more ticks, in which nothing must change

        assert _status(cluster, gone, "early") == {}  # never written: no Queued, no Assigned
        assert _status(cluster, dies, "waiting")["phase"] == "Queued"
        for ns in (gone, dies):
            assert not core.list_namespaced_pod(ns).items
        logged = [json.loads(line) for line in op.log_text().splitlines() if line.startswith("{")]
        loud = [
            e
            for e in logged
            if e["level"] in ("warning", "error", "critical")
            and (gone in json.dumps(e) or dies in json.dumps(e) or e.get("status") == 403)
        ]
        assert not loud, loud
        # One debug line per namespace at most (`gone` may be known from the resync list alone).
        terminating = [e for e in logged if e["msg"] == "namespace terminating: its jobs are left alone"]
        assert {e["level"] for e in terminating} == {"debug"}
        assert sorted(e["namespace"] for e in terminating) in ([dies], sorted([gone, dies]))
    finally:
        for ns, name in ((gone, "early"), (dies, "waiting")):  # the namespaces stay Terminating; the jobs go
            try:
                cluster.custom.delete_namespaced_custom_object(api.GROUP, api.VERSION, ns, api.PLURAL, name)
            except client.exceptions.ApiException:
                pass
