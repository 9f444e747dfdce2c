"""The agent's timestamps keep the Kubernetes formats (through ffrtmp_api's formatters): Lease times are
MicroTime (six fraction digits, or the API server refuses the write), pod and node status times and the
hardware annotation's probedAt are whole seconds (metav1.Time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from ffrtmp_agent.kubelet import podstatus, registration
from ffrtmp_agent.node import lease, probe

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {"containers": [{"name": "runner"}]}}


def test_given_a_time_with_microseconds_when_the_lease_is_written_then_renew_time_keeps_all_six_digits() -> None:
    body = lease.lease_body("n1", namespace="ffrtmp-system", slots=2, lease_seconds=15, now=NOW)
    assert body["spec"]["renewTime"] == body["spec"]["acquireTime"] == "2026-01-02T03:04:05.678901Z"
    patch = lease.renewal_patch("n1", slots=2, lease_seconds=15, now=NOW.astimezone(timezone(timedelta(hours=2))))
    assert patch["spec"]["renewTime"] == "2026-01-02T03:04:05.678901Z"  # always UTC


def test_given_a_time_with_microseconds_when_pod_status_is_written_then_times_are_whole_seconds() -> None:
    running = podstatus.running_status(POD, pid=7, started=NOW)["status"]
    assert running["startTime"] == "2026-01-02T03:04:05Z"
    assert running["containerStatuses"][0]["state"]["running"]["startedAt"] == "2026-01-02T03:04:05Z"
    done = podstatus.terminated_status(POD, code=0, message="", started=NOW, finished=NOW)["status"]
    assert done["containerStatuses"][0]["state"]["terminated"]["finishedAt"] == "2026-01-02T03:04:05Z"
    assert {c["lastTransitionTime"] for c in done["conditions"]} == {"2026-01-02T03:04:05Z"}


def test_given_a_time_with_microseconds_when_node_status_and_hardware_are_written_then_whole_seconds() -> None:
    status = registration.standalone_node_status(cpu_cores=2, memory_bytes=2**30, slots=1, now=NOW)["status"]
    assert status["conditions"][0]["lastHeartbeatTime"] == "2026-01-02T03:04:05Z"
    doc = probe.hardware_document(
        cpu={},
        memory={},
        gpu_probe=probe.GpuProbe(gpus=[], error=None),
        trials=[],
        listed=[],
        ffmpeg_version=None,
        render_nodes=[],
        slots=1,
        probed_at=NOW,
    )
    assert doc["probedAt"] == "2026-01-02T03:04:05Z"
