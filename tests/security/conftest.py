"""Security suite fixtures: every attack is a real TranscodeJob through the real kube-apiserver. The
operator-only cases reuse the integration fixtures (the operator, worker Nodes, a stand-in kubelet), the
end-to-end ones the e2e Stack (operator, standalone agent, runner, ffmpeg) and nginx-rtmp. `job_policy`
applies the chart's own ValidatingAdmissionPolicy, rendered by helm with the test's values and bound to
the test's namespace only, so it never touches another test's jobs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import pytest
import yaml
from kubernetes import client

from tests.e2e.conftest import rtmp_server, stack  # noqa: F401  (fixtures, reused as they are)
from tests.integration.conftest import cluster, operator, start_operator  # noqa: F401  (fixtures)
from tests.support import wait_until
from tests.support.helm import CHART

VAP_API = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"


def job_body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": name}, "spec": spec}


def api_message(exc: client.exceptions.ApiException) -> str:
    try:
        return json.loads(exc.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


def render_policy(control_plane: Any, *, release: str, namespace: str, values: dict[str, Any]) -> list[dict]:
    """The chart's ValidatingAdmissionPolicy and binding for `values` (merged under jobPolicy), bound to
    `namespace` only, as `helm template` renders them for a cluster that serves the API."""
    values = {
        "jobPolicy": {
            **values,
            "admissionPolicy": {
                "enabled": True,
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            },
        }
    }
    done = subprocess.run(
        [
            str(Path(control_plane.bin_dir) / "helm"),
            "template",
            release,
            str(CHART),
            "--api-versions",
            VAP_API,
            "--show-only",
            "templates/job-admission-policy.yaml",
            "-f",
            "-",
        ],
        input=yaml.safe_dump(values),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture
def job_policy(control_plane: Any, api_client: client.ApiClient, namespace: str) -> Iterator[Callable[..., None]]:
    """job_policy(**jobPolicy values): apply the chart's admission policy for this namespace and wait until the
    API server enforces it (a dry-run create of a hostPath job outside every allowlist is refused)."""
    admission = client.AdmissionregistrationV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    made: list[str] = []

    def apply(**values: Any) -> None:
        release = f"sec-{namespace[-6:]}-{len(made)}"
        policy, binding = render_policy(control_plane, release=release, namespace=namespace, values=values)
        admission.create_validating_admission_policy(policy)
        admission.create_validating_admission_policy_binding(binding)
        made.append(policy["metadata"]["name"])
        probe = job_body(
            "policy-probe",
            {
                "input": {"testSource": {"durationSeconds": 1}},
                "output": {"url": "file:///m/x.mp4"},
                "volumes": [{"name": "m", "mountPath": "/m", "hostPath": {"path": "/policy-probe-never-allowed"}}],
            },
        )

        def enforced() -> bool:
            try:
                custom.create_namespaced_custom_object(
                    api.GROUP, api.VERSION, namespace, api.PLURAL, probe, dry_run="All"
                )
            except client.exceptions.ApiException as exc:
                return exc.status == 422 and "hostPath" in api_message(exc)
            return False

        wait_until(enforced, timeout=30, interval=0.5, what="the admission policy to be enforced")

    yield apply
    for name in made:
        for delete in (
            admission.delete_validating_admission_policy_binding,
            admission.delete_validating_admission_policy,
        ):
            try:
                delete(name)
            except client.exceptions.ApiException:
                pass
