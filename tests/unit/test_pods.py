"""The job pod and runner RBAC builders (pure): what a cluster admin would check on a job pod."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import ffrtmp_api as api
import pytest
import yaml
from ffrtmp_operator import policy
from ffrtmp_operator.__main__ import parse_args
from ffrtmp_operator.plan import PlanError
from ffrtmp_operator.pods import build_pod, pod_name
from ffrtmp_operator.settings import JobPolicy, PodSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def hello_pod(rules: JobPolicy | None = None, **spec_changes):
    doc = yaml.safe_load((EXAMPLES / "hello.yaml").read_text())
    doc["spec"].update(spec_changes)
    job = api.TranscodeJob.model_validate(doc)
    return build_pod(
        job,
        namespace="media",
        name="hello",
        uid="u-1",
        attempt=2,
        node="node-a",
        encoder="libx264",
        settings=PodSettings(image="example.com/ffrtmp:1", policy=rules or JobPolicy()),
    )


def test_given_a_job_when_building_its_pod_then_it_is_bound_named_labelled_and_owned():
    pod = hello_pod()
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "hello-2" and meta["namespace"] == "media"
    assert meta["labels"] == {
        api.LABEL_JOB: "hello",
        api.LABEL_JOB_UID: "u-1",
        api.LABEL_ATTEMPT: "2",
        api.LABEL_MANAGED_BY: api.MANAGED_BY,
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": api.API_VERSION,
            "kind": "TranscodeJob",
            "name": "hello",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert spec["nodeName"] == "node-a"
    assert spec["priorityClassName"] == "ffrtmp-medium"
    assert spec["serviceAccountName"] == "ffrtmp-job-hello"  # the job's own identity (job_identity.py)
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


def test_given_resources_and_an_allowed_priority_class_when_building_then_both_reach_the_pod():
    pod = hello_pod(
        JobPolicy(priority_classes=("urgent",)),
        priorityClassName="urgent",
        resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    )
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    assert pod["spec"]["priorityClassName"] == "urgent"


# ------------------------------------------------------------------------------------ the job policy


def test_given_no_resources_when_building_then_the_policy_defaults_apply():
    resources = hello_pod()["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "4", "memory": "4Gi"}}


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        (
            "given a limit only then the API server copies it into the request",
            {"limits": {"cpu": "2"}},
            {"requests": {"memory": "512Mi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
        ),
        (
            "given a request above the default limit then the limit rises with it",
            {"requests": {"cpu": "8", "memory": "6Gi"}},
            {"requests": {"cpu": "8", "memory": "6Gi"}, "limits": {"cpu": "8", "memory": "6Gi"}},
        ),
        (
            "given defaults turned off then only what the job asks",
            {"requests": {"cpu": "1"}},
            {"requests": {"cpu": "1"}},
        ),
    ],
)
def test_resource_defaults(name, given, expected):
    rules = (
        JobPolicy()
        if "off" not in name
        else JobPolicy(cpu_request="", memory_request="", cpu_limit="", memory_limit="")
    )
    assert policy.resources(api.Resources.model_validate(given), policy=rules) == expected, name


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"limits": {"cpu": "17"}}, "spec.resources.limits.cpu"),
        ({"requests": {"cpu": "16001m"}}, "spec.resources.requests.cpu"),
        ({"limits": {"memory": "33Gi"}}, "spec.resources.limits.memory"),
        ({"requests": {"memory": "40G"}}, "spec.resources.requests.memory"),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}, "spec.resources.requests.cpu"),
    ],
)
def test_given_resources_above_the_maximum_when_building_then_refused_naming_the_field(given, field):
    with pytest.raises(policy.PolicyError, match=field.replace(".", r"\.")):
        hello_pod(resources=given)


@pytest.mark.parametrize(
    ("name", "empty_dir", "expected"),
    [
        ("given no sizeLimit then the default", {}, {"sizeLimit": "10Gi"}),
        ("given a sizeLimit then kept", {"sizeLimit": "50Gi"}, {"sizeLimit": "50Gi"}),
        ("given RAM without sizeLimit then the cap", {"medium": "Memory"}, {"medium": "Memory", "sizeLimit": "1Gi"}),
        (
            "given RAM under the cap then kept",
            {"medium": "Memory", "sizeLimit": "256Mi"},
            {"medium": "Memory", "sizeLimit": "256Mi"},
        ),
    ],
)
def test_empty_dir_sizes(name, empty_dir, expected):
    volumes = hello_pod(volumes=[{"name": "media", "mountPath": "/media", "emptyDir": empty_dir}])["spec"]["volumes"]
    assert volumes == [{"name": "media", "emptyDir": expected}], name


def test_given_a_ram_empty_dir_above_the_cap_when_building_then_refused_naming_the_field():
    with pytest.raises(policy.PolicyError, match=r"spec\.volumes\[media\]\.emptyDir\.sizeLimit"):
        hello_pod(
            volumes=[{"name": "media", "mountPath": "/media", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
        )


@pytest.mark.parametrize("name", ["urgent", "ffrtmp-highest", "high"])
def test_given_a_priority_class_the_admin_did_not_list_when_building_then_refused_naming_the_field(name):
    with pytest.raises(policy.PolicyError, match=r"spec\.priorityClassName"):
        hello_pod(priorityClassName=name)


@pytest.mark.parametrize("name", ["system-node-critical", "system-cluster-critical"])
def test_given_a_system_priority_class_then_refused_by_the_models_and_by_the_policy_even_if_listed(name):
    with pytest.raises(ValueError, match="priorityClassName"):
        hello_pod(priorityClassName=name)
    spec = api.TranscodeJob.model_validate(yaml.safe_load((EXAMPLES / "hello.yaml").read_text())).spec
    spec.priorityClassName = name  # as stored before the rule
    with pytest.raises(policy.PolicyError):
        policy.priority_class(spec, policy=JobPolicy(priority_classes=(name,)))


def _host(path: str) -> dict:
    return {"volumes": [{"name": "media", "mountPath": "/media", "hostPath": {"path": path}}]}


@pytest.mark.parametrize(
    ("name", "rules", "path", "refused"),
    [
        ("given no allowlist then refused", JobPolicy(), "/srv/media", "not allowed in namespace media"),
        (
            "given another namespace's allowlist then refused",
            JobPolicy(host_paths=(("other", "/srv/media"),)),
            "/srv/media",
            "not allowed in namespace media",
        ),
        (
            "given a folder outside the allowlist then refused",
            JobPolicy(host_paths=(("media", "/srv/media"),)),
            "/etc",
            "outside the folders",
        ),
        (
            "given a sibling sharing the prefix then refused",
            JobPolicy(host_paths=(("media", "/srv/media"),)),
            "/srv/media2",
            "outside the folders",
        ),
        (
            "given the parent of the allowed folder then refused",
            JobPolicy(host_paths=(("media", "/srv/media"),)),
            "/srv",
            "outside the folders",
        ),
        (
            "given the allowed folder then accepted",
            JobPolicy(host_paths=(("media", "/srv/media"),)),
            "/srv/media",
            None,
        ),
        (
            "given a folder under it then accepted",
            JobPolicy(host_paths=(("media", "/srv/media"),)),
            "/srv/media/team-a",
            None,
        ),
    ],
)
def test_host_path_allowlist(name, rules, path, refused):
    if refused:
        with pytest.raises(policy.PolicyError, match=r"spec\.volumes\[media\]\.hostPath\.path") as caught:
            hello_pod(rules, **_host(path))
        assert refused in str(caught.value), name
    else:
        assert hello_pod(rules, **_host(path))["spec"]["volumes"] == [{"name": "media", "hostPath": {"path": path}}]


@pytest.mark.parametrize("path", ["/srv/media/../../etc", "/srv/media/./x", "/srv//media", "/srv/media/", "/"])
def test_given_a_host_path_not_in_normal_form_then_refused_by_the_models_and_by_the_policy(path):
    rules = JobPolicy(host_paths=(("media", "/srv/media"),))
    with pytest.raises(ValueError, match="hostPath"):
        hello_pod(rules, **_host(path))
    spec = api.TranscodeJob.model_validate(
        {
            **yaml.safe_load((EXAMPLES / "hello.yaml").read_text()),
            "spec": {**yaml.safe_load((EXAMPLES / "hello.yaml").read_text())["spec"], **_host("/srv/media")},
        }
    ).spec
    spec.volumes[0].hostPath.path = path  # as stored before the rule
    with pytest.raises(policy.PolicyError, match="hostPath.path"):
        policy.check_host_paths(spec, namespace="media", policy=rules)


def test_given_admin_input_formats_when_building_then_the_plan_whitelists_them():
    pod = hello_pod(JobPolicy(input_formats=("hls",)), input={"url": "file:///media/in/a.m3u8", "format": "hls"})
    plan = json.loads(next(e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == api.ENV_PLAN))
    assert "hls" in plan["inputArgs"][plan["inputArgs"].index("-format_whitelist") + 1].split(",")
    with pytest.raises(PlanError, match="spec.input.format"):
        hello_pod(input={"url": "file:///media/in/a.m3u8", "format": "hls"})


def test_given_policy_flags_when_parsed_then_the_operator_gets_them():
    rules = parse_args(
        [
            "--host-path",
            "media=/srv/media",
            "--host-path",
            "media=/data",
            "--priority-class",
            "gold",
            "--input-format",
            "hls",
            "--job-max-cpu",
            "8",
            "--job-cpu-limit",
            "",
        ]
    ).pods.policy
    assert rules.host_paths == (("media", "/srv/media"), ("media", "/data"))
    assert rules.priority_classes == (*api.PRIORITY_CLASSES.values(), "gold")
    assert (rules.input_formats, rules.max_cpu, rules.cpu_limit) == (("hls",), "8", "")
    assert parse_args([]).pods.policy == JobPolicy()


@pytest.mark.parametrize(
    "flags",
    [
        ["--host-path", "media=/"],
        ["--host-path", "media=/srv/../etc"],
        ["--host-path", "/srv"],
        ["--priority-class", "system-node-critical"],
        ["--input-format", "hls,tty"],
        ["--job-max-memory", "lots"],
    ],
)
def test_given_an_unsafe_policy_flag_then_the_operator_does_not_start(flags):
    with pytest.raises(SystemExit):
        parse_args(flags)


@pytest.mark.parametrize(
    ("text", "value"), [("500m", "0.5"), ("2", "2"), ("1Gi", str(2**30)), ("1.5G", "1500000000"), ("1e3", "1000")]
)
def test_quantities(text, value):
    assert policy.parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("length", [10, 61, 62, 63, 120])
def test_given_any_job_name_when_naming_pods_then_names_fit_63_chars_and_differ_per_attempt(length):
    job = "j" * length
    names = {pod_name(job, attempt) for attempt in (1, 2, 10)}
    assert len(names) == 3
    assert all(len(n) <= 63 for n in names)
    assert pod_name(job, 1) == pod_name(job, 1)


def test_given_long_names_sharing_a_prefix_when_naming_pods_then_they_do_not_collide():
    assert pod_name("x" * 70 + "a", 1) != pod_name("x" * 70 + "b", 1)
