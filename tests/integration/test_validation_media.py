"""The media features' refusals by the real API server (CEL and schema), as `kubectl apply` shows them: ABR
ladders (renditions without hls/dash, odd sizes, a folder URL without '/', duplicate names), split-and-
stitch (a live input, codec copy) and presets. Each case breaks one thing of a valid spec."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import ffrtmp_api as api
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration

LADDER: dict[str, Any] = {
    "input": {"url": "file:///media/in/talk.mp4"},
    "output": {"url": "file:///media/out/talk/", "container": "hls"},
    "volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {}}],
    "video": {"codec": "h264", "crf": 23},
    "renditions": [
        {"name": "360p", "width": 640, "height": 360, "bitrate": "800k"},
        {"name": "720p", "width": 1280, "height": 720, "crf": 22},
    ],
}


def _with(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def apply(spec: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                spec.pop(key, None)
            else:
                spec[key] = value

    return apply


def _rendition(**changes: Any) -> Callable[[dict[str, Any]], None]:
    return _with(renditions=[{**LADDER["renditions"][0], **changes}])


# (case, mutation of the valid ladder, text the API server's message must contain)
REFUSED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("renditions into mp4", _with(output={"url": "file:///media/out/talk/", "container": "mp4"}), "hls or dash"),
    ("renditions without a container", _with(output={"url": "file:///media/out/talk/"}), "hls or dash"),
    (
        "renditions into a file URL",
        _with(output={"url": "file:///media/out/talk.m3u8", "container": "hls"}),
        "end the URL with '/'",
    ),
    ("a folder URL without renditions", _with(renditions=None), "spec.output.url"),
    (
        "a folder URL that is the volume itself",
        _with(output={"url": "file:///media/", "container": "hls"}),
        "spec.output.url",
    ),
    ("an rtmp folder", _with(output={"url": "rtmp://example.invalid/live/", "container": "hls"}), "spec.output.url"),
    ("odd width", _rendition(width=641), "spec.renditions[0].width"),
    ("odd height", _rendition(height=361), "spec.renditions[0].height"),
    (
        "duplicate names",
        _with(renditions=[LADDER["renditions"][0], {**LADDER["renditions"][1], "name": "360p"}]),
        "spec.renditions[1]",
    ),
    ("bitrate and crf", _rendition(crf=20), "spec.renditions[0]"),
    ("a rendition named audio", _rendition(name="audio"), "spec.renditions[0].name"),
    ("no renditions", _with(renditions=[]), "spec.renditions"),
    ("renditions with codec copy", _with(video={"codec": "copy"}), "spec.renditions"),
    ("segment seconds zero", _with(output={**LADDER["output"], "segmentSeconds": 0}), "spec.output.segmentSeconds"),
]


SPLIT: dict[str, Any] = {
    "input": {"url": "file:///media/in/film.mp4"},
    "output": {"url": "file:///media/out/film.mp4"},
    "volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {}}],
    "video": {"codec": "h264", "crf": 23},
    "split": {"segmentSeconds": 60},
}

# (case, changes to the valid split job, text the message must contain)
SPLIT_REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("a live input", {"input": {"url": "rtmp://example.invalid/live/key"}, "queue": "live"}, "spec.split"),
    ("an srt input", {"input": {"url": "srt://example.invalid:9000"}}, "spec.split"),
    ("a test source", {"input": {"testSource": {"durationSeconds": 30}}}, "spec.split"),
    ("codec copy", {"video": {"codec": "copy"}}, "spec.split"),
    ("an rtmp output", {"output": {"url": "rtmp://example.invalid/live/out"}}, "spec.output.url"),
    ("an hls output", {"output": {"url": "file:///media/out/film.m3u8", "container": "hls"}}, "spec.output.url"),
    ("segments too short", {"split": {"segmentSeconds": 1}}, "spec.split.segmentSeconds"),
    ("a preset name that is no name", {"preset": "Web_720p"}, "spec.preset"),
]


@pytest.fixture
def jobs(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def _create(jobs: client.CustomObjectsApi, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": name}, "spec": spec}
    return jobs.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)


def _message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


def test_given_a_valid_ladder_when_created_then_accepted_with_its_folder_url(jobs, namespace):
    created = _create(jobs, namespace, "ladder", copy.deepcopy(LADDER))
    assert created["spec"]["output"]["url"] == "file:///media/out/talk/"
    assert [r["name"] for r in created["spec"]["renditions"]] == ["360p", "720p"]
    api.TranscodeJobSpec.model_validate(created["spec"])  # what the operator reads


@pytest.mark.parametrize(("case", "mutate", "field"), REFUSED, ids=[c[0] for c in REFUSED])
def test_given_a_ladder_that_cannot_work_when_created_then_refused_naming_the_field(
    jobs, namespace, case, mutate, field
):
    spec = copy.deepcopy(LADDER)
    mutate(spec)
    with pytest.raises(ApiException) as refused:
        _create(jobs, namespace, "bad", spec)
    assert refused.value.status == 422, _message(refused.value)
    assert field in _message(refused.value), _message(refused.value)


def test_given_a_valid_split_job_when_created_then_accepted(jobs, namespace):
    created = _create(jobs, namespace, "film", copy.deepcopy(SPLIT))
    assert created["spec"]["split"] == {"segmentSeconds": 60}


@pytest.mark.parametrize(("case", "changes", "field"), SPLIT_REFUSED, ids=[c[0] for c in SPLIT_REFUSED])
def test_given_a_split_job_that_cannot_work_when_created_then_refused_naming_the_field(
    jobs, namespace, case, changes, field
):
    with pytest.raises(ApiException) as refused:
        _create(jobs, namespace, "bad", {**copy.deepcopy(SPLIT), **changes})
    assert refused.value.status == 422, _message(refused.value)
    assert field in _message(refused.value), _message(refused.value)


def test_given_a_preset_when_created_then_accepted_and_a_bad_one_refused_naming_the_field(api_client, namespace):
    presets = client.CustomObjectsApi(api_client)

    def create(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": api.API_VERSION, "kind": api.PRESET_KIND, "metadata": {"name": name}, "spec": spec}
        return presets.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PRESET_PLURAL, body)

    good = create(
        "ladder",
        {
            "video": {"codec": "h264"},
            "output": {"container": "hls", "segmentSeconds": 4},
            "renditions": LADDER["renditions"],
        },
    )
    api.TranscodePreset.model_validate(good)
    for spec, field in (
        ({"video": {"codec": "mpeg2"}}, "spec.video.codec"),
        ({"renditions": [{"name": "odd", "width": 641, "height": 360}]}, "spec.renditions[0].width"),
    ):
        with pytest.raises(ApiException) as refused:
            create("bad", spec)
        assert refused.value.status == 422
        assert field in _message(refused.value), _message(refused.value)
    # A preset never names an output: a URL is no field of it (pruned; `kubectl apply` warns of it).
    assert (
        "url" not in create("no-url", {"output": {"container": "mp4", "url": "file:///media/x.mp4"}})["spec"]["output"]
    )
