"""Never two encoders for one job: a real runner whose run the operator gave up (its node declared lost,
the job requeued or moved on to a newer run) stops encoding and never commits its output under the
final name (agent/ffrtmp_agent/runner/currency.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ffrtmp_api as api
import pytest
from kubernetes import client

from tests.support import wait_until
from tests.support.runner import (
    RunnerProcess,
    build,
    create_job,
    get_job,
    runner_kubeconfig,
)

SLOW_SPEC = {
    "input": {"testSource": {"pattern": "testsrc2", "width": 1280, "height": 720, "fps": 30, "durationSeconds": 600}},
    "video": {"codec": "h264", "preset": "slow", "crf": 23},
}


def set_status(api_client: client.ApiClient, namespace: str, name: str, status: dict[str, Any]) -> None:
    """What the operator writes (the test plays it)."""
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object_status(
        api.GROUP, api.VERSION, namespace, api.PLURAL, name, {"status": status}
    )


@pytest.mark.parametrize("taken_over", [{"phase": "Queued", "reason": "NodeLost"}, {"attempts": 2, "pod": "old-2"}])
def test_given_a_run_the_operator_gave_up_when_its_runner_learns_it_then_it_stops_and_commits_nothing(
    api_client: client.ApiClient, control_plane: Any, namespace: str, tmp_path: Path, taken_over: dict
) -> None:
    out = tmp_path / "media" / "out"
    out.mkdir(parents=True)
    media = str(tmp_path / "media")
    job = create_job(
        api_client,
        namespace,
        "old",
        {
            **SLOW_SPEC,
            "output": {"url": f"file://{out}/old.mp4"},
            "volumes": [{"name": "media", "mountPath": media, "hostPath": {"path": media}}],
        },
    )
    set_status(api_client, namespace, "old", {"phase": "Processing", "attempts": 1, "pod": "old-1", "node": "n1"})
    kubeconfig = runner_kubeconfig(api_client, control_plane, namespace, tmp_path / "kubeconfig")
    runner = RunnerProcess(build(job, interval=0.5), kubeconfig=kubeconfig, work=tmp_path)
    try:
        wait_until(
            lambda: ((get_job(api_client, namespace, "old").get("status") or {}).get("progress") or {}).get("frame"),
            timeout=60,
            what="the run encoding",
        )
        wait_until(runner.encoder, timeout=10, what="the ffmpeg child")
        set_status(api_client, namespace, "old", taken_over)  # the operator moved on
        assert runner.wait(timeout=30) == 143, runner.log_text()[-2000:]  # a stop, never a success
        assert runner.encoder() is None
        assert "no longer the job's current one" in runner.log_text()
        assert sorted(p.name for p in out.iterdir()) == []  # nothing under the final name, no part left
    finally:
        runner.close()
