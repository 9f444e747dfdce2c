"""An ABR ladder with spec.split by the real API server (CEL): an HLS ladder whose split segments are a
multiple of its HLS segments is accepted; a DASH ladder, or segments that do not divide, are refused saying
what is supported."""

from __future__ import annotations

import copy
import json
from typing import Any

import ffrtmp_api as api
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration

SPLIT_LADDER: dict[str, Any] = {
    "input": {"url": "file:///media/in/film.mp4"},
    "output": {"url": "file:///media/out/film/", "container": "hls", "segmentSeconds": 4},
    "volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {}}],
    "video": {"codec": "h264", "crf": 23},
    "split": {"segmentSeconds": 60},
    "renditions": [{"name": "360p", "width": 640, "height": 360}, {"name": "720p", "width": 1280, "height": 720}],
}


def _create(api_client: client.ApiClient, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": "film"}, "spec": spec}
    jobs = client.CustomObjectsApi(api_client)
    return jobs.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)


def test_given_an_hls_ladder_with_split_when_created_then_accepted(api_client, namespace):
    created = _create(api_client, namespace, copy.deepcopy(SPLIT_LADDER))
    assert created["spec"]["split"] == {"segmentSeconds": 60}
    api.TranscodeJobSpec.model_validate(created["spec"])  # what the operator reads


@pytest.mark.parametrize(
    ("case", "output", "says"),
    [
        ("dash", {"url": "file:///media/out/film/", "container": "dash"}, "needs spec.output.container hls"),
        (
            "hls segments not dividing",
            {"url": "file:///media/out/film/", "container": "hls", "segmentSeconds": 7},
            "multiple of spec.output.segmentSeconds",
        ),
    ],
)
def test_given_a_split_ladder_that_cannot_be_joined_when_created_then_refused_saying_what_works(
    api_client, namespace, case, output, says
):
    with pytest.raises(ApiException) as refused:
        _create(api_client, namespace, {**copy.deepcopy(SPLIT_LADDER), "output": output})
    message = json.loads(refused.value.body)["message"]
    assert refused.value.status == 422 and says in message, (case, message)
