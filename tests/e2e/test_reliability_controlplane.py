"""etcd and kube-apiserver stopped and restarted while jobs run: the operator's watches, the agents' watches and
heartbeats, and the runners' status writes all reconnect, and every job still completes exactly once.

Runs its own control plane (same ports, data and keys across the restart) so the session's stays up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ffrtmp_stack import ControlPlane, controlplane
from kubernetes import client

from tests.support import wait_until
from tests.support.stack import Stack, elapsed

JOBS = 30


@pytest.fixture
def own_control_plane(control_plane: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlPlane]:
    # A durable etcd: with --unsafe-no-fsync etcd does not even flush its WAL buffer to the kernel, so a
    # SIGKILL loses the last writes (a job's status reverts and it runs again): the test's fault, not ours.
    argv = controlplane.etcd_argv
    monkeypatch.setattr(controlplane, "etcd_argv", lambda lay: [a for a in argv(lay) if a != "--unsafe-no-fsync"])
    with ControlPlane(tmp_path / "cp", bin_dir=Path(control_plane.bin_dir)) as cp:
        yield cp


@pytest.mark.timeout(480)
def test_given_running_jobs_when_etcd_and_the_apiserver_restart_then_everything_reconnects_and_all_complete(
    own_control_plane: ControlPlane, tmp_path: Path
) -> None:
    cp = own_control_plane
    api_client = cp.api_client()
    namespace = "restart"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})
    stack = Stack(env=cp.env(), api_client=api_client, namespace=namespace, work=tmp_path / "stack")
    stack.work.mkdir()
    try:
        stack.agent(slots=2)
        stack.agent(slots=2)
        operator = stack.operator()
        stack.wait_agents()
        operator.wait_active()
        names = [f"steady-{i:02d}" for i in range(JOBS)]
        for i, name in enumerate(names):
            seconds = 1 + i % 3
            stack.create(
                name, input={"testSource": {"width": 320, "height": 240, "durationSeconds": seconds, "audio": False}}
            )

        def completed() -> int:
            return sum(1 for j in stack.jobs().values() if (j.get("status") or {}).get("phase") == "Completed")

        wait_until(lambda: completed() >= JOBS // 4, timeout=120, interval=0.5, what="a quarter of the jobs done")
        down_at = time.time()
        cp.stop()  # SIGTERM: the apiserver closes its watches and drains (a SIGKILL crash: see README)
        time.sleep(3)  # jobs keep encoding while nobody can write anything
        cp.start()
        downtime_s = elapsed(down_at)
        api_client.close()
        api_client = cp.api_client()  # the old pool's connections died with the server
        stack.core = client.CoreV1Api(api_client)
        stack.custom = client.CustomObjectsApi(api_client)
        late = [f"late-{i}" for i in range(4)]  # created after the restart: the operator's watch must see them
        for name in late:
            stack.create(name)
        names += late
        final = stack.wait_all_terminal(names, timeout=90)
        recovered_s = elapsed(down_at)
        phases = {n: j["status"]["phase"] for n, j in final.items()}
        assert set(phases.values()) == {"Completed"}, {n: p for n, p in phases.items() if p != "Completed"}
        assert operator.alive() and all(a.proc.poll() is None for a in stack.agents)
        runs = stack.runs()
        succeeded = {n: r["succeeded"] for n, r in runs.items()}
        assert succeeded == dict.fromkeys(names, 1), succeeded
        retried = {  # with why: the transitions that sent a job back to the queue
            n: [t for t in j["status"].get("transitions", []) if t["phase"] == "Queued" and t["reason"] != "Created"]
            for n, j in final.items()
            if j["status"]["attempts"] != 1
        }
        # The outage is shorter than the agents' 15 s heartbeat Lease: no node is lost, nothing reruns.
        assert not retried, retried
        print(
            f"\nFIGURE controlplane_restart_downtime_s={downtime_s} all_{JOBS}_completed_after_s={recovered_s} "
            f"retried={retried}"
        )
    finally:
        stack.close()
        api_client.close()
