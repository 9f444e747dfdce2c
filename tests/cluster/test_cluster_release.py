"""The release over its life on a real cluster: the active operator pod deleted mid-run (the standby takes
over and every job completes exactly once), `helm upgrade` rolling the agents with a new value, and
`helm uninstall` leaving nothing running (the suite then installs it again for the tests that follow).
"""

from __future__ import annotations

from .kit import CHART, RELEASE, SYSTEM_NS, Kube, file_job_spec, wait_until


def test_given_running_jobs_when_the_active_operator_pod_is_deleted_then_the_standby_finishes_them_once(
    kube: Kube, media_ns: str
) -> None:
    names = [f"ha-{i}" for i in range(3)]
    for name in names:
        kube.create_job(media_ns, name, file_job_spec(f"{name}.mp4", seconds=20, preset="veryfast"))
    wait_until(
        lambda: any(kube.status(media_ns, n).get("phase") == "Processing" for n in names),
        timeout=120,
        what="a job running",
    )
    [active] = wait_until(
        lambda: [p for p in kube.operator_pods() if kube.is_active(p.metadata.name)] or None,
        timeout=60,
        what="the active replica",
    )
    standby = {p.metadata.name for p in kube.operator_pods()} - {active.metadata.name}
    kube.core.delete_namespaced_pod(active.metadata.name, SYSTEM_NS, grace_period_seconds=0)
    wait_until(lambda: any(kube.is_active(s) for s in standby), timeout=120, what="the standby to take over")
    wait_until(
        lambda: all(kube.status(media_ns, n).get("phase") in ("Completed", "Failed") for n in names),
        timeout=300,
        what="every job to finish",
    )
    for name in names:
        status = kube.status(media_ns, name)
        assert status["phase"] == "Completed", status
        assert status.get("attempts", 1) == 1, f"{name} ran more than once: {status}"
        assert len(kube.job_pods(media_ns, name)) == 1
    # the Deployment replaces the deleted replica
    wait_until(
        lambda: (
            (kube.apps.read_namespaced_deployment(f"{RELEASE}-operator", SYSTEM_NS).status.ready_replicas or 0) == 2
        ),
        timeout=120,
        what="two operator replicas again",
    )


def _agent_slots(kube: Kube) -> set[str]:
    pods = kube.core.list_namespaced_pod(SYSTEM_NS, label_selector="app.kubernetes.io/name=ffrtmp-agent").items
    return {a.split("=", 1)[1] for p in pods for a in p.spec.containers[0].args if a.startswith("--slots=")}


def test_given_the_release_when_upgraded_and_uninstalled_then_pods_follow_and_nothing_is_left(kube: Kube) -> None:
    try:
        kube.helm(
            "upgrade",
            RELEASE,
            str(CHART),
            "-n",
            SYSTEM_NS,
            "--reuse-values",
            "--set",
            "agent.slots=3",
            "--wait",
            "--timeout",
            "300s",
        )
        wait_until(lambda: _agent_slots(kube) == {"3"}, timeout=120, what="agents rolled with --slots=3")
        # helm's --wait counts a DaemonSet ready at desired - maxUnavailable: wait for every agent
        kube.kubectl("rollout", "status", "-n", SYSTEM_NS, f"daemonset/{RELEASE}-agent", "--timeout=120s")

        kube.helm("uninstall", RELEASE, "-n", SYSTEM_NS, "--wait", "--timeout", "120s")
        wait_until(
            lambda: not kube.core.list_namespaced_pod(SYSTEM_NS).items,
            timeout=120,
            what="no pod left in the release namespace",
        )
        assert not kube.apps.list_namespaced_deployment(SYSTEM_NS).items
        assert not kube.apps.list_namespaced_daemon_set(SYSTEM_NS).items
    finally:
        # leave the release as the suite found it, whatever failed above
        installed = kube.helm("status", RELEASE, "-n", SYSTEM_NS, check=False).returncode == 0
        verb = ["upgrade", "--reset-values"] if installed else ["install"]
        kube.helm(*verb, RELEASE, str(CHART), "-n", SYSTEM_NS, *kube.image_values(), "--wait", "--timeout", "300s")
        for kind in ("deployment", "daemonset"):
            name = f"{RELEASE}-operator" if kind == "deployment" else f"{RELEASE}-agent"
            kube.kubectl("rollout", "status", "-n", SYSTEM_NS, f"{kind}/{name}", "--timeout=180s")
