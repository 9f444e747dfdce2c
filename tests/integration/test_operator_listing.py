"""The operator's resync reads every object page by page, without managedFields (what keeps a start with a
large backlog from holding every job twice as whole objects: BENCHMARKS.md, scaling)."""

from __future__ import annotations

import asyncio

import ffrtmp_api as api
import pytest
from ffrtmp_operator import kube as operator_kube
from kubernetes import client

from tests.support.cli import create_job


def test_given_more_jobs_than_a_page_when_resyncing_then_every_one_is_read_without_managed_fields(
    api_client: client.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {f"listed-{i}" for i in range(5)}
    for name in sorted(names):
        create_job(api_client, namespace, name, phase="Queued")
    monkeypatch.setattr(operator_kube, "LIST_CHUNK", 2)  # 5 jobs: three pages
    raw = asyncio.run(
        operator_kube.KubeClient(api_client).list_all(
            system_namespace=api.DEFAULT_SYSTEM_NAMESPACE, keep=lambda kind, obj: obj
        )
    )
    ours = [j for j in raw["jobs"] if j["metadata"]["namespace"] == namespace]
    assert sorted(j["metadata"]["name"] for j in ours) == sorted(names)
    assert all(j["status"]["phase"] == "Queued" and "managedFields" not in j["metadata"] for j in ours)


def test_given_a_keep_function_when_resyncing_then_only_what_it_keeps_of_each_object_is_returned(
    api_client: client.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        create_job(api_client, namespace, f"kept-{i}", phase="Queued" if i else "Paused")
    monkeypatch.setattr(operator_kube, "LIST_CHUNK", 2)

    def keep(kind: str, obj: dict) -> tuple[str, str] | None:
        meta, status = obj["metadata"], obj.get("status") or {}
        if kind != "jobs" or meta["namespace"] != namespace or status.get("phase") != "Queued":
            return None
        return (meta["name"], status["phase"])

    kept = asyncio.run(
        operator_kube.KubeClient(api_client).list_all(system_namespace=api.DEFAULT_SYSTEM_NAMESPACE, keep=keep)
    )
    assert sorted(kept["jobs"]) == [("kept-1", "Queued"), ("kept-2", "Queued")]
    assert kept["pods"] == [] and kept["nodes"] == []
