"""The chart's ValidatingAdmissionPolicy (templates/job-admission-policy.yaml, rendered by helm from
values.jobPolicy) in the real API server: what the operator would fail after the fact is refused at once,
422 with the field named, nothing stored. Bound to the test's namespace only; an update is checked only
where it changes the field, so a tenant can always pause or cancel an existing job.
"""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import pytest
import yaml
from kubernetes import client

from tests.support.helm import CHART

from .conftest import api_message, job_body

pytestmark = pytest.mark.integration

BASE: dict[str, Any] = {
    "input": {"testSource": {"durationSeconds": 2}},
    "output": {"url": "file:///media/out/a.mp4"},
    "volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {}}],
}
GROUP = (api.GROUP, api.VERSION)


def _host(path: str) -> dict[str, Any]:
    return {"volumes": [{"name": "media", "mountPath": "/media", "hostPath": {"path": path}}]}


def _create(custom: client.CustomObjectsApi, namespace: str, name: str, **changes: Any) -> dict[str, Any]:
    spec = {**copy.deepcopy(BASE), **changes}
    return custom.create_namespaced_custom_object(*GROUP, namespace, api.PLURAL, job_body(name, spec))


ATTACKS: list[tuple[str, dict[str, Any], str]] = [
    ("hostPath outside every allowlist", _host("/etc"), "hostPath.path"),
    ("hostPath of the node's kubelet", _host("/var/lib/kubelet"), "hostPath.path"),
    ("hostPath sibling sharing the prefix", _host("/srv/media2"), "hostPath.path"),
    ("hostPath parent of the allowed folder", _host("/srv"), "hostPath.path"),
    ("hostPath allowed to another namespace", _host("/srv/other-tenant"), "hostPath.path"),
    ("an unlisted PriorityClass", {"priorityClassName": "ffrtmp-highest"}, "spec.priorityClassName"),
    ("cpu limit above the maximum", {"resources": {"limits": {"cpu": "64"}}}, "spec.resources.limits.cpu"),
    (
        "cpu request above the maximum in millicores",
        {"resources": {"requests": {"cpu": "16001m"}}},
        "spec.resources.requests.cpu",
    ),
    ("memory above the maximum", {"resources": {"requests": {"memory": "1Ti"}}}, "spec.resources.requests.memory"),
    (
        "a RAM emptyDir above the cap",
        {"volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}]},
        "emptyDir.sizeLimit",
    ),
]


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def enforced(job_policy: Callable[..., None], namespace: str) -> None:
    job_policy(hostPath={namespace: ["/srv/media"], "other-tenant": ["/srv/other-tenant"]}, priorityClassNames=["gold"])


@pytest.mark.parametrize(("attack", "changes", "field"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_given_the_chart_policy_when_a_job_asks_beyond_it_then_the_api_refuses_it_naming_the_field(
    enforced: None, custom: client.CustomObjectsApi, namespace: str, attack: str, changes: dict, field: str
) -> None:
    with pytest.raises(client.exceptions.ApiException) as refused:
        _create(custom, namespace, "attack", **changes)
    assert refused.value.status == 422, api_message(refused.value)
    assert field in api_message(refused.value), api_message(refused.value)
    assert custom.list_namespaced_custom_object(*GROUP, namespace, api.PLURAL)["items"] == []


def test_given_the_chart_policy_then_what_it_allows_is_created(
    enforced: None, custom: client.CustomObjectsApi, namespace: str
) -> None:
    _create(custom, namespace, "allowed-host", **_host("/srv/media/team-a"))
    _create(custom, namespace, "allowed-class", priorityClassName="gold")
    _create(custom, namespace, "chart-class", priorityClassName="ffrtmp-high")
    _create(custom, namespace, "at-the-max", resources={"limits": {"cpu": "16", "memory": "32Gi"}})
    assert len(custom.list_namespaced_custom_object(*GROUP, namespace, api.PLURAL)["items"]) == 4


def test_given_an_allowed_job_when_patched_to_a_host_path_then_refused_but_cancel_still_works(
    enforced: None, custom: client.CustomObjectsApi, namespace: str
) -> None:
    _create(custom, namespace, "job")
    with pytest.raises(client.exceptions.ApiException) as refused:
        custom.patch_namespaced_custom_object(*GROUP, namespace, api.PLURAL, "job", {"spec": _host("/etc")})
    assert refused.value.status == 422 and "hostPath.path" in api_message(refused.value)
    patched = custom.patch_namespaced_custom_object(
        *GROUP, namespace, api.PLURAL, "job", {"spec": {"paused": True, "canceled": True}}
    )
    assert patched["spec"]["canceled"] is True


def test_given_the_default_values_then_no_namespace_may_use_host_path(
    job_policy: Callable[..., None], custom: client.CustomObjectsApi, namespace: str
) -> None:
    job_policy()  # the chart's defaults: jobPolicy.hostPath is {}
    with pytest.raises(client.exceptions.ApiException) as refused:
        _create(custom, namespace, "any-host", **_host("/srv/media"))
    assert refused.value.status == 422 and "hostPath" in api_message(refused.value)
    assert f"not allowed in namespace {namespace}" in api_message(refused.value)


def test_given_the_chart_installed_then_its_policy_refuses_host_path_and_its_operator_gets_the_same_policy(
    release: dict[str, str], kubectl: Any, custom: client.CustomObjectsApi, namespace: str
) -> None:
    name = f"{release['name']}-ffrtmp-jobs"
    kubectl("get", "validatingadmissionpolicy", name)
    kubectl("get", "validatingadmissionpolicybinding", name)
    with pytest.raises(client.exceptions.ApiException) as refused:  # the policy syncs within a second or two
        for _ in range(60):
            _create(custom, namespace, "probe", **_host("/srv/media"))
            custom.delete_namespaced_custom_object(*GROUP, namespace, api.PLURAL, "probe")
            time.sleep(0.5)
    assert refused.value.status == 422 and "hostPath" in api_message(refused.value)
    deploy = json.loads(
        kubectl(
            "get", "deployment", f"{release['name']}-ffrtmp-operator", "-n", api.DEFAULT_SYSTEM_NAMESPACE, "-o", "json"
        ).stdout
    )
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--host-path")]
    assert {"--priority-class=ffrtmp-high", "--job-max-cpu=16", "--max-memory-empty-dir=1Gi"} <= set(args)


@pytest.mark.parametrize(
    "bad",
    [
        {"hostPath": {"media": ["/"]}},
        {"hostPath": {"media": ["/srv/../etc"]}},
        {"hostPath": {"media": ["/srv/media/"]}},
        {"hostPath": {"Not_A_Namespace": ["/srv"]}},
        {"priorityClassNames": ["system-node-critical"]},
        {"inputFormats": ["hls,tty"]},
        {"resources": {"max": {"cpu": "lots"}}},
        {"emptyDir": {"maxMemory": "1.2.3"}},
    ],
)
def test_given_unsafe_policy_values_then_the_chart_schema_refuses_them(control_plane: Any, bad: dict) -> None:
    done = subprocess.run(
        [str(Path(control_plane.bin_dir) / "helm"), "template", "rel", str(CHART), "-f", "-"],
        input=yaml.safe_dump({"jobPolicy": bad}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "values don't meet the specifications" in done.stderr, done.stderr
