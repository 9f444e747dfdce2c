"""The job pod and runner RBAC builders (pure): what a cluster admin would check on a job pod."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
import ffrtmp_api as api
from ffrtmp_operator import rbac
from ffrtmp_operator.pods import build_pod, pod_name
from ffrtmp_operator.settings import PodSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def hello_pod(**spec_changes):
    doc = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
    doc["spec"].update(spec_changes)
    job = api.TranscodeJob.model_validate(doc)
    return build_pod(
        job, namespace="media", name="hello", uid="u-1", attempt=2, node="node-a", encoder="libx264",
        settings=PodSettings(image="example.com/ffrtmp:1"),
    )  # fmt: skip


def test_given_a_job_when_building_its_pod_then_it_is_bound_named_labelled_and_owned():
    pod = hello_pod()
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "hello-2" and meta["namespace"] == "media"
    assert meta["labels"] == {
        api.LABEL_JOB: "hello", api.LABEL_JOB_UID: "u-1", api.LABEL_ATTEMPT: "2", api.LABEL_MANAGED_BY: api.MANAGED_BY,
    }  # fmt: skip
    assert meta["ownerReferences"] == [
        {"apiVersion": api.API_VERSION, "kind": "TranscodeJob", "name": "hello", "uid": "u-1", "controller": True,
         "blockOwnerDeletion": True}
    ]  # fmt: skip
    assert spec["nodeName"] == "node-a"
    assert spec["priorityClassName"] == "ffrtmp-medium"
    assert spec["serviceAccountName"] == "ffrtmp-runner"
    assert spec["restartPolicy"] == "Never"


def test_given_a_job_when_building_its_pod_then_it_meets_the_restricted_pod_security_profile():
    spec = hello_pod()["spec"]
    container = spec["containers"][0]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["runAsUser"] == 65532


def test_given_a_job_when_building_its_pod_then_the_runner_gets_the_plan_volumes_and_image():
    container = hello_pod()["spec"]["containers"][0]
    assert container["name"] == api.RUNNER_CONTAINER
    assert container["image"] == "example.com/ffrtmp:1"
    assert container["command"] == ["ffrtmp-runner"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    plan = api.ExecutionPlan.model_validate(
        json.loads(next(e["value"] for e in container["env"] if e["name"] == api.ENV_PLAN))
    )
    assert (plan.job, plan.namespace, plan.attempt, plan.encoder) == ("hello", "media", 2, "libx264")
    assert plan.ffmpegArgs[0] == "ffmpeg"
    assert container["volumeMounts"] == [{"name": "media", "mountPath": "/media", "readOnly": False}]
    assert hello_pod()["spec"]["volumes"] == [
        {"name": "media", "persistentVolumeClaim": {"claimName": "media", "readOnly": False}}
    ]


def test_given_resources_and_a_priority_class_when_building_then_both_reach_the_pod():
    pod = hello_pod(resources={"limits": {"cpu": "2", "memory": "1Gi"}}, priorityClassName="urgent")
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "2", "memory": "1Gi"}}
    assert pod["spec"]["priorityClassName"] == "urgent"


@pytest.mark.parametrize("length", [10, 61, 62, 63, 120])
def test_given_any_job_name_when_naming_pods_then_names_fit_63_chars_and_differ_per_attempt(length):
    job = "j" * length
    names = {pod_name(job, attempt) for attempt in (1, 2, 10)}
    assert len(names) == 3
    assert all(len(n) <= 63 for n in names)
    assert pod_name(job, 1) == pod_name(job, 1)


def test_given_long_names_sharing_a_prefix_when_naming_pods_then_they_do_not_collide():
    assert pod_name("x" * 70 + "a", 1) != pod_name("x" * 70 + "b", 1)


def test_given_a_namespace_when_building_runner_rbac_then_it_grants_only_job_read_and_status_patch():
    role = rbac.role("media")
    assert role["rules"] == [
        {"apiGroups": ["ffrtmp.io"], "resources": ["transcodejobs"], "verbs": ["get", "watch"]},
        {"apiGroups": ["ffrtmp.io"], "resources": ["transcodejobs/status"], "verbs": ["patch"]},
    ]
    binding = rbac.role_binding("media")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ffrtmp-runner", "namespace": "media"}]
    assert rbac.service_account("media")["metadata"]["name"] == "ffrtmp-runner"
