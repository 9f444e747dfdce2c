"""Operator fixtures: the operator as a real `python -m ffrtmp_operator` subprocess against the session's
API server, and the test's Cluster (tests/support/cluster.py: worker Nodes with heartbeat Leases the test
controls, and a stand-in kubelet that writes pod status). Nothing is mocked.

Each operator manages only the test's namespace (--namespace) and uses a peering name of its own, so
jobs and operators of other tests never meet; node names carry a per-test suffix for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support import OperatorProcess
from tests.support.cluster import FAST_FLAGS, Cluster


@pytest.fixture
def start_operator(control_plane: Any, namespace: str, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """start_operator(*extra_args, peering=<name>, priority=None) -> OperatorProcess, managing only
    the test's namespace, with fast timings (tick 0.5 s, backoff 1-2 s). Stopped after the test."""
    started: list[OperatorProcess] = []
    default_peering = f"ffrtmp-{namespace}"[:63]

    def start(*extra: str, peering: str | None = default_peering, priority: int | None = None) -> OperatorProcess:
        args = ["--namespace", namespace, *FAST_FLAGS, *extra]
        args += ["--peering", peering] if peering else ["--no-peering"]
        if priority is not None:
            args += ["--priority", str(priority)]
        env = control_plane.env() | {"PYTHONUNBUFFERED": "1"}
        op = OperatorProcess(env=env, args=args, log_path=tmp_path / f"operator-{len(started)}.log")
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    """A running, active operator for the test's namespace."""
    op = start_operator()
    op.wait_active()
    return op


@pytest.fixture
def cluster(api_client: client.ApiClient, namespace: str) -> Iterator[Cluster]:
    c = Cluster(api_client, namespace)
    yield c
    c.close()
