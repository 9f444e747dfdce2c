"""What a user sees through the real kubectl binary: `kubectl get tj` columns filled in by the
operator, `kubectl wait --for=condition=Complete`, and Events in `kubectl describe`."""

from __future__ import annotations

import re
import subprocess
import threading


def table(text: str) -> list[dict[str, str]]:
    """kubectl's column output as dicts (cells may be empty, so split by the header's column starts)."""
    header, *lines = text.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [{n: line[a:b].strip() for n, (a, b) in zip(names, bounds, strict=True)} for line in lines]


def test_given_running_jobs_when_listed_with_kubectl_then_phase_queue_priority_and_node_show(
    operator, cluster, kubectl, namespace
):
    node = cluster.add_node("w", slots=1)
    cluster.create_job("first", queue="live", priority="high")
    cluster.wait_phase("first", "Assigned")
    cluster.create_job("second", queue="batch", priority="low")
    cluster.wait_phase("second", "Queued")
    rows = table(kubectl("get", "tj", "-n", namespace).stdout)
    assert list(rows[0]) == ["NAME", "PHASE", "PROGRESS", "QUEUE", "PRIORITY", "NODE", "AGE"]
    shown = {r["NAME"]: (r["PHASE"], r["QUEUE"], r["PRIORITY"], r["NODE"]) for r in rows}
    assert shown == {"first": ("Assigned", "live", "high", node), "second": ("Queued", "batch", "low", "")}
    wide = table(kubectl("get", "tj", "second", "-n", namespace, "-o", "wide").stdout)
    assert (wide[0]["REASON"], wide[0]["ATTEMPTS"]) == ("Created", "0")


def test_given_a_job_when_it_completes_then_kubectl_wait_for_condition_complete_returns(
    operator, cluster, kubectl, namespace, control_plane
):
    cluster.add_node("w", slots=1)
    cluster.create_job("done")
    cluster.wait_phase("done", "Assigned")
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    waiter = threading.Thread(
        target=lambda: result.setdefault(
            "wait",
            kubectl("wait", "--for=condition=Complete", "tj/done", "-n", namespace, "--timeout=60s", check=False),
        )
    )
    waiter.start()
    cluster.pod_running("done-1")
    cluster.wait_phase("done", "Processing")
    assert waiter.is_alive(), "kubectl wait returned before the job completed"
    cluster.pod_succeeded("done-1")
    waiter.join(timeout=70)
    assert result["wait"].returncode == 0, result["wait"].stderr
    assert "condition met" in result["wait"].stdout
    described = kubectl("describe", "tj", "done", "-n", namespace).stdout
    for reason in ("Admitted", "Started", "Succeeded"):  # queued and admitted at once: one Admitted Event
        assert reason in described
