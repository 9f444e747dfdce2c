"""Attacks the API server itself refuses (the CRD's schema and CEL rules): each is a real create through the
real kube-apiserver, refused with 422 and the field named, and nothing is stored, so nothing can run.

Class 1 (path confinement): mountPaths and file:// URLs in every spelling that is not the normal form, or
that decodes to something else than it shows (%2e%2e, %2f, //, /./, trailing /, unicode spaces, bidi
overrides, NUL). Class 2: a forced demuxer in another case. Class 5: hostPath not in normal form. Class 6:
system-* PriorityClasses. The models refuse the same (tests/unit/test_plan.py, test_paths.py).
"""

from __future__ import annotations

import copy
from typing import Any

import ffrtmp_api as api
import pytest
from kubernetes import client

from .conftest import api_message, job_body

pytestmark = pytest.mark.integration

BASE: dict[str, Any] = {
    "input": {"url": "file:///media/in/a.mp4"},
    "output": {"url": "file:///media/out/a.mp4"},
    "volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {}}],
}


def _mount(path: str) -> dict[str, Any]:
    return {"volumes": [{"name": "media", "mountPath": path, "emptyDir": {}}]}


def _input(url: str) -> dict[str, Any]:
    return {"input": {"url": url}}


def _host(path: str) -> dict[str, Any]:
    return {"volumes": [{"name": "media", "mountPath": "/media", "hostPath": {"path": path}}]}


# (attack, spec changes, the field the refusal must name)
ATTACKS: list[tuple[str, dict[str, Any], str]] = [
    # a mountPath that is "/" in disguise makes every absolute path "under a volume"
    ("mountPath /", _mount("/"), "spec.volumes[0].mountPath"),
    ("mountPath /.", _mount("/."), "spec.volumes[0].mountPath"),
    ("mountPath //", _mount("//"), "spec.volumes[0].mountPath"),
    ("mountPath /./", _mount("/./"), "spec.volumes[0].mountPath"),
    ("mountPath /media/..", _mount("/media/.."), "spec.volumes[0].mountPath"),
    ("mountPath with a trailing slash", _mount("/media/"), "spec.volumes[0].mountPath"),
    ("mountPath with repeated slashes", _mount("/media//x"), "spec.volumes[0].mountPath"),
    ("mountPath over /etc (ld.so.preload)", _mount("/etc"), "spec.volumes[0].mountPath"),
    ("mountPath over the image's libraries", _mount("/usr/lib"), "spec.volumes[0].mountPath"),
    ("mountPath over the ServiceAccount token", _mount("/var/run/secrets"), "spec.volumes[0].mountPath"),
    ("mountPath with a newline", _mount("/media\n/etc"), "spec.volumes[0].mountPath"),
    ("mountPath with a zero-width space", _mount("/media\u200b"), "spec.volumes[0].mountPath"),
    # file:// URLs that read as one path and open as another
    ("input ..", _input("file:///media/../etc/passwd"), "spec.input.url"),
    ("input %2e%2e", _input("file:///media/%2e%2e/etc/passwd"), "spec.input.url"),
    ("input %2E%2E", _input("file:///media/%2E%2E/etc/passwd"), "spec.input.url"),
    ("input .%2e", _input("file:///media/.%2e/etc/passwd"), "spec.input.url"),
    ("input %2f", _input("file:///media%2f..%2fetc/passwd"), "spec.input.url"),
    ("input %5c", _input("file:///media/..%5cetc%5cpasswd"), "spec.input.url"),
    ("input /./", _input("file:///media/./in/a.mp4"), "spec.input.url"),
    ("input //", _input("file:///media//in/a.mp4"), "spec.input.url"),
    ("input ////etc", _input("file:////etc/passwd"), "spec.input.url"),
    ("input via localhost", _input("file://localhost/etc/passwd"), "spec.input.url"),
    ("input via a host", _input("file://media/etc/passwd"), "spec.input.url"),
    ("input with a query", _input("file:///media/a.mp4?/../../etc/passwd"), "spec.input.url"),
    ("input with a fragment", _input("file:///media/a#/../../etc/passwd"), "spec.input.url"),
    ("input %00", _input("file:///media/a.mp4%00.txt"), "spec.input.url"),
    ("input %0a", _input("file:///media/a%0a.mp4"), "spec.input.url"),
    ("input %20", _input("file:///media/my%20talk.mov"), "spec.input.url"),
    ("input raw no-break space", _input("file:///media/a\u00a0b.mp4"), "spec.input.url"),
    ("input raw bidi override", _input("file:///media/\u202e4pm.exe"), "spec.input.url"),
    ("input raw ideographic space", _input("file:///media/a\u3000b.mp4"), "spec.input.url"),
    ("input a sibling sharing the prefix", _input("file:///media2/a.mp4"), "spec.input.url"),
    ("input the mount point itself", _input("file:///media"), "spec.input.url"),
    ("output %2e%2e", {"output": {"url": "file:///media/%2e%2e/root/.bashrc"}}, "spec.output.url"),
    ("output ..", {"output": {"url": "file:///media/../etc/cron.d/x"}}, "spec.output.url"),
    # demuxers: the schema refuses names in another case (ffmpeg would match them case-insensitively)
    ("forced format TTY", {"input": {"url": "file:///media/in/a.mp4", "format": "TTY"}}, "spec.input.format"),
    (
        "forced format with a space",
        {"input": {"url": "file:///media/in/a.mp4", "format": "mov tty"}},
        "spec.input.format",
    ),
    # hostPath in non-normal form (the admin's allowlist compares normal forms)
    ("hostPath with ..", _host("/srv/media/../../etc"), "spec.volumes[0].hostPath.path"),
    ("hostPath /", _host("/"), "spec.volumes[0].hostPath.path"),
    ("hostPath //etc", _host("//etc"), "spec.volumes[0].hostPath.path"),
    # PriorityClasses of the cluster's own components
    ("priorityClassName system-node-critical", {"priorityClassName": "system-node-critical"}, "spec.priorityClassName"),
    (
        "priorityClassName system-cluster-critical",
        {"priorityClassName": "system-cluster-critical"},
        "spec.priorityClassName",
    ),
]


@pytest.mark.parametrize(("attack", "changes", "field"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_given_an_attack_in_the_spec_when_created_then_the_api_server_refuses_it_naming_the_field(
    api_client: client.ApiClient, namespace: str, attack: str, changes: dict[str, Any], field: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    spec = {**copy.deepcopy(BASE), **changes}
    with pytest.raises(client.exceptions.ApiException) as refused:
        custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, job_body("attack", spec))
    assert refused.value.status == 422, api_message(refused.value)
    assert field in api_message(refused.value), api_message(refused.value)
    assert custom.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL)["items"] == []
    with pytest.raises(ValueError):  # and the models the operator reads specs with agree
        api.TranscodeJobSpec.model_validate(spec)


def test_given_a_valid_job_then_a_later_patch_to_a_bad_mount_path_is_refused_too(
    api_client: client.ApiClient, namespace: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, job_body("ok", copy.deepcopy(BASE))
    )
    with pytest.raises(client.exceptions.ApiException) as refused:
        custom.patch_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURAL, "ok", {"spec": _mount("/")}
        )
    assert refused.value.status == 422 and "spec.volumes[0].mountPath" in api_message(refused.value)
    stored = custom.get_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, "ok")
    assert stored["spec"]["volumes"][0]["mountPath"] == "/media"
