"""Standalone agent while the API server does not answer: a pod it cannot check or prepare is tried again
shortly, never failed (that would cost its job an attempt); a refusal that is the pod's own fault still fails it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import urllib3
from ffrtmp_agent.kubelet import tokens, volumes
from ffrtmp_agent.kubelet.standalone import START_RETRY_SECONDS, ApiTarget, StandaloneRunner, api_unreachable
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support import free_port

from .test_node_admission import operator_pod


def _token_error(status: int) -> tokens.TokenError:
    try:
        raise tokens.TokenError("TokenRequest failed") from ApiException(status=status)
    except tokens.TokenError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "unreachable"),
    [
        (ApiException(status=503), True),
        (ApiException(status=500), True),
        (ApiException(status=429), True),
        (ApiException(status=0), True),
        (urllib3.exceptions.MaxRetryError(None, "/", "connection refused"), True),
        (ConnectionResetError(), True),
        (_token_error(503), True),
        (ApiException(status=403), False),
        (ApiException(status=404), False),
        (_token_error(404), False),
        (volumes.VolumeError("no such claim"), False),
        (PermissionError("mount"), False),
    ],
    ids=repr,
)
def test_given_a_failed_call_then_only_an_unanswering_api_counts_as_an_outage(exc: Exception, unreachable: bool):
    assert api_unreachable(exc) is unreachable


def test_given_an_api_server_that_refuses_connections_when_a_pod_arrives_then_it_waits_and_is_not_failed(
    tmp_path: Path,
):
    config = client.Configuration(host=f"https://127.0.0.1:{free_port()}")
    config.retries = False
    core = client.CoreV1Api(client.ApiClient(config))
    runner = StandaloneRunner(
        core=core, node="n1", work_dir=tmp_path, target=ApiTarget("https://x", None, True), cgroup_hierarchy=None
    )
    job_pod = operator_pod()
    job_pod["metadata"]["uid"] = "pod-uid-1"
    runner.handle(job_pod)
    assert list(runner.deferred) == [job_pod["metadata"]["uid"]]
    assert not runner.procs and not runner.finished and not runner.unsent  # nothing ran, nothing reported
    at, _ = runner.deferred[job_pod["metadata"]["uid"]]
    runner.deferred[job_pod["metadata"]["uid"]] = (at - START_RETRY_SECONDS, job_pod)
    runner._start_deferred()  # tried again: the API still refuses, so it waits again
    assert list(runner.deferred) == [job_pod["metadata"]["uid"]] and not runner.finished
    deleted = copy.deepcopy(job_pod)
    deleted["metadata"].update(deletionTimestamp="2026-01-02T03:04:05Z", deletionGracePeriodSeconds=0)
    runner.handle(deleted)  # a newer view of the pod decides: deleted before it ever started
    assert not runner.deferred and not runner.procs
