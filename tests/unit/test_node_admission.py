"""What a standalone agent runs (kubelet/admit.py) and the operator's signature on job pods
(ffrtmp_api.podsign), on the operator's own pod manifest; the cgroup layout read from /proc (cgroups.py)."""

from __future__ import annotations

import copy
from typing import Any

import ffrtmp_api as api
import pytest
from ffrtmp_agent.kubelet import admit, cgroups
from ffrtmp_api import podsign
from ffrtmp_operator.pods import build_pod
from ffrtmp_operator.settings import PodSettings

KEY = b"k" * 32


def operator_pod() -> dict[str, Any]:
    job = api.TranscodeJob.model_validate(
        {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": "hello", "namespace": "media"},
            "spec": {
                "input": {"testSource": {"durationSeconds": 1}},
                "output": {"url": "file:///out/x.mp4"},
                "volumes": [{"name": "out", "mountPath": "/out", "emptyDir": {}}],
            },
        }
    )
    pod = build_pod(
        job,
        namespace="media",
        name="hello",
        uid="uid-1",
        attempt=1,
        node="n1",
        encoder="libx264",
        settings=PodSettings(),
    )
    pod["metadata"]["annotations"] = {podsign.ANNOTATION: podsign.sign(pod, KEY)}
    return pod


def job_object(uid: str = "uid-1") -> dict[str, Any]:
    return {"metadata": {"name": "hello", "namespace": "media", "uid": uid}}


def test_given_the_operators_pod_then_it_runs_as_its_non_root_user():
    pod = operator_pod()
    assert admit.refusal(pod, job=job_object(), namespace_labels={}, key=KEY) is None
    assert admit.identity(pod) == admit.Identity(65532, 65532, (65532,))


def test_given_the_api_servers_defaulting_then_the_signature_still_holds():
    pod = operator_pod()
    stored = copy.deepcopy(pod)
    spec, container = stored["spec"], stored["spec"]["containers"][0]
    spec.update(
        dnsPolicy="ClusterFirst",
        schedulerName="default-scheduler",
        terminationGracePeriodSeconds=30,
        tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}],
    )
    spec["volumes"].append({"name": "kube-api-access-abcde", "projected": {"sources": [{"serviceAccountToken": {}}]}})
    container["volumeMounts"].append({"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/x"})
    container["terminationMessagePath"] = "/dev/termination-log"
    limits = container["resources"]["limits"]
    limits["cpu"] = str(float(limits["cpu"]))  # "4" -> "4.0": the same quantity
    assert podsign.verify(stored, KEY)


CHANGES = {
    "plan": lambda p: p["spec"]["containers"][0]["env"].__setitem__(0, {"name": api.ENV_PLAN, "value": "{}"}),
    "command": lambda p: p["spec"]["containers"][0].__setitem__("command", ["sh", "-c", "id"]),
    "hostPath": lambda p: p["spec"]["volumes"].append({"name": "etc", "hostPath": {"path": "/etc"}}),
    "user": lambda p: p["spec"]["securityContext"].__setitem__("runAsUser", 0),
    "limits": lambda p: p["spec"]["containers"][0]["resources"]["limits"].__setitem__("memory", "64Gi"),
    "service account": lambda p: p["spec"].__setitem__("serviceAccountName", "ffrtmp-job-other"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_given_a_signed_pod_changed_afterwards_then_it_is_refused(change: str):
    pod = operator_pod()
    CHANGES[change](pod)
    found = admit.refusal(pod, job=job_object(), namespace_labels={}, key=KEY)
    assert found is not None and ("signature" in found or "ffrtmp-runner" in found)


@pytest.mark.parametrize(
    ("what", "change", "expected"),
    [
        ("unsigned", lambda p: p["metadata"].pop("annotations"), "signature"),
        (
            "another key",
            lambda p: p["metadata"].__setitem__("annotations", {podsign.ANNOTATION: podsign.sign(p, b"x" * 32)}),
            "signature",
        ),
        ("no owner", lambda p: p["metadata"].__setitem__("ownerReferences", []), "TranscodeJob"),
        ("wrong uid label", lambda p: p["metadata"]["labels"].__setitem__(api.LABEL_JOB_UID, "uid-2"), "label"),
        ("host network", lambda p: p["spec"].__setitem__("hostNetwork", True), "hostNetwork"),
        ("host pid", lambda p: p["spec"].__setitem__("hostPID", True), "hostPID"),
        (
            "second container",
            lambda p: p["spec"]["containers"].append(dict(p["spec"]["containers"][0])),
            "one container",
        ),
        ("init container", lambda p: p["spec"].__setitem__("initContainers", [{"name": "x"}]), "init"),
        (
            "privileged",
            lambda p: p["spec"]["containers"][0]["securityContext"].__setitem__("privileged", True),
            "privileged",
        ),
        (
            "escalation",
            lambda p: p["spec"]["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
            "allowPrivilegeEscalation",
        ),
        (
            "capabilities",
            lambda p: p["spec"]["containers"][0]["securityContext"].__setitem__("capabilities", {"add": ["SYS_ADMIN"]}),
            "capabilities",
        ),
        (
            "other command",
            lambda p: p["spec"]["containers"][0].__setitem__("command", ["ffrtmp-runner", "--x"]),
            "ffrtmp-runner",
        ),
    ],
)
def test_given_a_pod_not_shaped_or_signed_by_the_operator_then_refused(what: str, change: Any, expected: str):
    pod = operator_pod()
    change(pod)
    found = admit.refusal(pod, job=job_object(), namespace_labels={}, key=KEY)
    assert found is not None and expected in found, found


def test_given_its_job_gone_or_replaced_then_refused():
    pod = operator_pod()
    assert "does not exist" in admit.refusal(pod, job=None, namespace_labels={}, key=KEY)
    assert "not the uid" in admit.refusal(pod, job=job_object("uid-new"), namespace_labels={}, key=KEY)
    assert "signing key" in admit.refusal(pod, job=job_object(), namespace_labels={}, key=None)


@pytest.mark.parametrize(
    ("user", "non_root", "labels", "refused"),
    [
        (0, True, {}, "runAsNonRoot"),
        (0, None, {admit.ENFORCE_LABEL: "restricted"}, "restricted"),
        (0, None, {admit.ENFORCE_LABEL: "baseline"}, None),
        (1000, None, {admit.ENFORCE_LABEL: "restricted"}, None),
        (None, None, {}, "runAsUser"),
    ],
)
def test_given_a_user_then_root_is_refused_where_the_namespace_or_pod_forbids_it(user, non_root, labels, refused):
    pod = operator_pod()
    for ctx in (pod["spec"]["securityContext"], pod["spec"]["containers"][0]["securityContext"]):
        ctx.pop("runAsUser", None)
        ctx.pop("runAsNonRoot", None)
        if user is not None:
            ctx["runAsUser"] = user
        if non_root is not None:
            ctx["runAsNonRoot"] = non_root
    found = admit.run_as_problem(pod, namespace_labels=labels)
    assert (found is None) if refused is None else (refused in found)


MOUNTINFO_V1 = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""
PROC_CGROUP_V1 = "4:memory:/process_api/abc\n1:cpu:/\n0::/\n"


def test_given_cgroup_v1_then_pod_groups_go_under_the_agents_own_group():
    found = cgroups.detect(mountinfo=MOUNTINFO_V1, proc_cgroup=PROC_CGROUP_V1)
    assert found == cgroups.Hierarchy(
        1,
        cgroups.Path("/sys/fs/cgroup/cpu/ffrtmp-pods"),
        cgroups.Path("/sys/fs/cgroup/memory/process_api/abc/ffrtmp-pods"),
    )


def test_given_limits_then_they_are_read_in_millicores_and_bytes():
    pod = operator_pod()
    assert cgroups.pod_limits(pod) == cgroups.Limits(4000, 4 * 2**30)


def test_given_limits_and_no_controllers_then_the_pod_cannot_be_limited():
    with pytest.raises(cgroups.CgroupError, match="no cgroup controllers"):
        cgroups.create(None, "uid", cgroups.Limits(1000, None))
    assert cgroups.create(None, "uid", cgroups.Limits(None, None)) == []
