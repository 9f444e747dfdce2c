"""Invalid TranscodeJobs are refused by the real API server itself, with the offending field named.

Each case starts from a valid job, breaks one thing, and checks that the create (or update) fails with
422 and that the message names the field, as a user running `kubectl apply` would see it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import ffrtmp_api as api
import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration

VALID_SPEC: dict[str, Any] = {
    "input": {"testSource": {"pattern": "testsrc2", "width": 640, "height": 360, "fps": 25, "durationSeconds": 2}},
    "output": {"url": "file:///media/out/x.mp4"},
    "video": {"codec": "h264", "crf": 23},
    "volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {}}],
}


def _job(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": name}, "spec": spec}


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A mutation setting a dotted path (creating dicts on the way); value DELETE removes the key."""

    def apply(spec: dict) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value

    return apply


DELETE = object()
FILE_INPUT = {"url": "file:///media/in/a.mp4"}

# (case id, mutation of the valid spec, text the API server's message must contain)
INVALID_CREATES: list[tuple[str, Callable[[dict], None], str]] = [
    ("queue name invalid", _set("queue", "Urgent_Queue"), "spec.queue"),  # any queue name waits for its queue
    ("unknown priority", _set("priority", "critical"), "spec.priority"),
    ("missing input", _set("input", DELETE), "spec.input"),
    ("missing output", _set("output", DELETE), "spec.output"),
    ("input with url and testSource", _set("input.url", "file:///media/in/a.mp4"), "spec.input"),
    ("input with neither", _set("input", {}), "spec.input"),
    ("input scheme ftp", _set("input", {"url": "ftp://example.invalid/a.mp4"}), "spec.input.url"),
    ("output scheme http", _set("output.url", "http://example.invalid/x.mp4"), "spec.output.url"),
    ("output url oversized", _set("output.url", "file:///media/" + "a" * 3000 + ".mp4"), "spec.output.url"),
    ("video codec unknown", _set("video.codec", "mpeg2"), "spec.video.codec"),
    ("crf negative", _set("video.crf", -1), "spec.video.crf"),
    ("crf too large", _set("video.crf", 64), "spec.video.crf"),
    ("width odd", _set("video.width", 641), "spec.video.width"),
    ("width wrong type", _set("video.width", "wide"), "spec.video.width"),
    ("bitrate and crf together", _set("video.bitrate", "2M"), "spec.video"),
    ("bitrate malformed", _set("video.bitrate", "fast"), "spec.video.bitrate"),
    ("audio codec unknown", _set("audio.codec", "flac"), "spec.audio.codec"),
    ("accelerator unknown", _set("hardware.accelerator", "amd"), "spec.hardware.accelerator"),
    ("maxRetries negative", _set("maxRetries", -1), "spec.maxRetries"),
    ("maxRetries too large", _set("maxRetries", 11), "spec.maxRetries"),
    ("timeout zero", _set("timeoutSeconds", 0), "spec.timeoutSeconds"),
    ("paused not a bool", _set("paused", "yes"), "spec.paused"),
    ("test source too small", _set("input.testSource.width", 8), "spec.input.testSource.width"),
    (
        "test source negative duration",
        _set("input.testSource.durationSeconds", -5),
        "spec.input.testSource.durationSeconds",
    ),
    (
        "endless test source outside live",
        _set("input.testSource.durationSeconds", 0),
        "spec.input.testSource.durationSeconds",
    ),
    ("live job from a file without duration", lambda s: s.update(queue="live", input=dict(FILE_INPUT)), "spec.input"),
    ("live duration negative", _set("live", {"durationSeconds": -1}), "spec.live.durationSeconds"),
    ("file input outside volumes", _set("input", {"url": "file:///etc/passwd"}), "spec.input.url"),
    ("file input escaping its volume", _set("input", {"url": "file:///media/../etc/passwd"}), "spec.input.url"),
    ("file output outside volumes", _set("output.url", "file:///tmp/x.mp4"), "spec.output.url"),
    (
        "volume with two sources",
        _set("volumes", [{"name": "m", "mountPath": "/media", "emptyDir": {}, "hostPath": {"path": "/srv"}}]),
        "spec.volumes[0]",
    ),
    (
        "volume mountPath relative",
        _set("volumes", [{"name": "m", "mountPath": "media", "emptyDir": {}}]),
        "spec.volumes[0].mountPath",
    ),
    (
        "volume name invalid",
        _set("volumes", [{"name": "Media_1", "mountPath": "/media", "emptyDir": {}}]),
        "spec.volumes[0].name",
    ),
    ("quality metric unknown", _set("quality", {"metrics": ["psnr", "bitrate"]}), "spec.quality.metrics[1]"),
    ("priorityClassName invalid", _set("priorityClassName", "Not_Valid"), "spec.priorityClassName"),
]


def _mount(path: str) -> Callable[[dict], None]:
    return _set("volumes", [{"name": "media", "mountPath": path, "emptyDir": {}}])


def _input(url: str) -> Callable[[dict], None]:
    return _set("input", {"url": url})


# Security rules (issue 10): paths in normal form, file:// URLs that cannot be read two ways, no system-*
# PriorityClass. The same cases run through the operator in tests/security.
INVALID_CREATES += [
    ("mountPath root", _mount("/"), "spec.volumes[0].mountPath"),
    ("mountPath root dot", _mount("/."), "spec.volumes[0].mountPath"),
    ("mountPath double slash", _mount("//"), "spec.volumes[0].mountPath"),
    ("mountPath trailing slash", _mount("/media/"), "spec.volumes[0].mountPath"),
    ("mountPath repeated slashes", _mount("/media//in"), "spec.volumes[0].mountPath"),
    ("mountPath dot segment", _mount("/media/./in"), "spec.volumes[0].mountPath"),
    ("mountPath dot-dot segment", _mount("/media/.."), "spec.volumes[0].mountPath"),
    ("mountPath over /etc", _mount("/etc"), "spec.volumes[0].mountPath"),
    ("mountPath under /usr", _mount("/usr/lib/x86_64-linux-gnu"), "spec.volumes[0].mountPath"),
    ("mountPath over the token", _mount("/var/run/secrets/kubernetes.io"), "spec.volumes[0].mountPath"),
    ("mountPath with a space", _mount("/me dia"), "spec.volumes[0].mountPath"),
    ("mountPath with a newline", _mount("/media\n"), "spec.volumes[0].mountPath"),
    ("mountPath with a zero-width space", _mount("/media\u200b"), "spec.volumes[0].mountPath"),
    (
        "hostPath with dot-dot",
        _set("volumes", [{"name": "m", "mountPath": "/media", "hostPath": {"path": "/srv/../etc"}}]),
        "spec.volumes[0].hostPath.path",
    ),
    (
        "hostPath root",
        _set("volumes", [{"name": "m", "mountPath": "/media", "hostPath": {"path": "/"}}]),
        "spec.volumes[0].hostPath.path",
    ),
    ("input encoded dot-dot", _input("file:///media/%2e%2e/etc/passwd"), "spec.input.url"),
    ("input upper-case encoded dot-dot", _input("file:///media/%2E%2E/etc/passwd"), "spec.input.url"),
    ("input encoded slash", _input("file:///media%2f..%2fetc/passwd"), "spec.input.url"),
    ("input dot segment", _input("file:///media/./in/a.mp4"), "spec.input.url"),
    ("input double slash", _input("file:///media//in/a.mp4"), "spec.input.url"),
    ("input with a host", _input("file://localhost/media/a.mp4"), "spec.input.url"),
    ("input with a query", _input("file:///media/a.mp4?/../../etc/passwd"), "spec.input.url"),
    ("input encoded NUL", _input("file:///media/a%00.mp4"), "spec.input.url"),
    ("input encoded space", _input("file:///media/my%20talk.mov"), "spec.input.url"),
    ("input raw no-break space", _input("file:///media/a\u00a0b.mp4"), "spec.input.url"),
    ("input raw bidi override", _input("file:///media/a\u202emp4.exe"), "spec.input.url"),
    ("input sibling sharing the prefix", _input("file:///media2/a.mp4"), "spec.input.url"),
    ("output encoded dot-dot", _set("output.url", "file:///media/%2e%2e/root/x.mp4"), "spec.output.url"),
    (
        "priorityClassName system-node-critical",
        _set("priorityClassName", "system-node-critical"),
        "spec.priorityClassName",
    ),
    (
        "priorityClassName system-cluster-critical",
        _set("priorityClassName", "system-cluster-critical"),
        "spec.priorityClassName",
    ),
    (
        "input format in upper case",
        lambda s: s.update(input={"url": "file:///media/in/a", "format": "TTY"}),
        "spec.input.format",
    ),
]


def _message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


@pytest.fixture
def jobs(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def _create(jobs: client.CustomObjectsApi, namespace: str, body: dict) -> dict:
    return jobs.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)


def test_given_the_valid_spec_when_created_then_accepted_with_defaults(jobs, namespace):
    created = _create(jobs, namespace, _job("valid", copy.deepcopy(VALID_SPEC)))
    assert created["spec"]["queue"] == "default"
    assert created["spec"]["priority"] == "medium"
    assert created["spec"]["maxRetries"] == 3


@pytest.mark.parametrize(("case", "mutate", "field"), INVALID_CREATES, ids=[c[0] for c in INVALID_CREATES])
def test_given_an_invalid_spec_when_created_then_refused_naming_the_field(jobs, namespace, case, mutate, field):
    spec = copy.deepcopy(VALID_SPEC)
    mutate(spec)
    with pytest.raises(ApiException) as refused:
        _create(jobs, namespace, _job("bad", spec))
    assert refused.value.status == 422, _message(refused.value)
    assert field in _message(refused.value)
    assert jobs.list_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL)["items"] == []


def _assigned_job(jobs: client.CustomObjectsApi, namespace: str, name: str) -> None:
    _create(jobs, namespace, _job(name, copy.deepcopy(VALID_SPEC)))
    status = {"status": {"phase": "Assigned", "node": "some-node", "attempts": 1}}
    jobs.patch_namespaced_custom_object_status(api.GROUP, api.VERSION, namespace, api.PLURAL, name, status)


@pytest.mark.parametrize(
    ("field", "patch"),
    [
        ("spec.input", {"input": {"testSource": {"pattern": "smptebars", "durationSeconds": 2}}}),
        ("spec.output", {"output": {"url": "file:///media/out/other.mp4"}}),
        ("spec.queue", {"queue": "batch"}),
    ],
)
def test_given_an_assigned_job_when_input_output_or_queue_change_then_refused(jobs, namespace, field, patch):
    _assigned_job(jobs, namespace, "fixed")
    with pytest.raises(ApiException) as refused:
        jobs.patch_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, "fixed", {"spec": patch})
    assert refused.value.status == 422
    assert field in _message(refused.value) and "immutable" in _message(refused.value)


def test_given_a_queued_job_when_its_queue_changes_then_accepted(jobs, namespace):
    _create(jobs, namespace, _job("movable", copy.deepcopy(VALID_SPEC)))
    jobs.patch_namespaced_custom_object_status(
        api.GROUP, api.VERSION, namespace, api.PLURAL, "movable", {"status": {"phase": "Queued"}}
    )
    patched = jobs.patch_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, "movable", {"spec": {"queue": "batch"}}
    )
    assert patched["spec"]["queue"] == "batch"


def test_given_a_canceled_job_when_uncanceled_then_refused(jobs, namespace):
    _create(jobs, namespace, _job("gone", {**copy.deepcopy(VALID_SPEC), "canceled": True}))
    with pytest.raises(ApiException) as refused:
        jobs.patch_namespaced_custom_object(
            api.GROUP, api.VERSION, namespace, api.PLURAL, "gone", {"spec": {"canceled": False}}
        )
    assert refused.value.status == 422
    assert "spec.canceled" in _message(refused.value)


def test_given_a_typo_when_applied_with_kubectl_then_refused_and_nothing_created(kubectl, namespace, tmp_path):
    body = _job("typo", copy.deepcopy(VALID_SPEC))
    body["spec"]["queu"] = "live"
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(yaml.safe_dump(body))
    applied = kubectl("apply", "-n", namespace, "-f", str(manifest), check=False)
    assert applied.returncode != 0
    assert 'unknown field "spec.queu"' in applied.stderr
    listed = kubectl("get", "tj", "-n", namespace, "-o", "name")
    assert listed.stdout.strip() == ""


def test_given_a_bad_enum_when_applied_with_kubectl_then_the_user_sees_the_field(kubectl, namespace, tmp_path):
    body = _job("enum", copy.deepcopy(VALID_SPEC))
    body["spec"]["video"]["codec"] = "mpeg2"
    manifest = tmp_path / "enum.yaml"
    manifest.write_text(yaml.safe_dump(body))
    applied = kubectl("apply", "-n", namespace, "-f", str(manifest), check=False)
    assert applied.returncode != 0
    assert "spec.video.codec" in applied.stderr and "mpeg2" in applied.stderr
