"""Least privilege, proven against the real API server:

- job pods satisfy Pod Security "restricted" as the API server enforces it (namespace label
  pod-security.kubernetes.io/enforce=restricted): jobs there run to Completed, a privileged pod is refused;
- the runner's ServiceAccount (ffrtmp-runner, made by the operator) reads its job and patches job status,
  and nothing else: reading Secrets, listing pods, patching a job's spec ... all get 403;
- the chart's operator and agent ServiceAccounts are denied what their rules do not list (the positive
  side, a job run end to end with the chart's tokens, is tests/integration/test_helm_install.py);
- the operator's and agents' metrics and logs, and the runners' logs, carry no token or credential.
"""

from __future__ import annotations

import re
import secrets
import urllib.request
from collections.abc import Iterator
from typing import Any

import ffrtmp_api as api
import pytest
from kubernetes import client

from tests.support import free_port, token_client
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

SYSTEM_NS = api.DEFAULT_SYSTEM_NAMESPACE

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")
JOBS = ("restricted-1", "restricted-2")


@pytest.fixture(scope="module")
def restricted(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A namespace enforcing Pod Security "restricted", an operator and an agent with metrics on, and two
    jobs run there to Completed. Shared by this module's tests (one stack start)."""
    api_client = control_plane.api_client()
    core = client.CoreV1Api(api_client)
    namespace = f"t-restricted-{secrets.token_hex(3)}"
    core.create_namespace(
        {
            "metadata": {
                "name": namespace,
                "labels": {
                    "ffrtmp.io/test": "true",
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            }
        }
    )
    stack = Stack(
        env=control_plane.env(), api_client=api_client, namespace=namespace, work=tmp_path_factory.mktemp("restricted")
    )
    operator_port = free_port()
    agent = stack.agent(slots=2)
    operator = stack.operator("--metrics-port", str(operator_port))
    try:
        stack.wait_agents()
        operator.wait_active()
        for name in JOBS:
            stack.create(name)
        final = stack.wait_all_terminal(list(JOBS), timeout=120)
        yield {
            "stack": stack,
            "final": final,
            "api_client": api_client,
            "namespace": namespace,
            "operator_metrics": f"http://127.0.0.1:{operator_port}/metrics",
            "agent_metrics": f"http://127.0.0.1:{agent.metrics_port}/metrics",
        }
    finally:
        stack.close()
        try:
            core.delete_namespace(namespace)
        except client.exceptions.ApiException:
            pass
        api_client.close()


def _status(call: Any) -> int:
    """The HTTP status of one API call (200 when it went through)."""
    try:
        call()
    except client.exceptions.ApiException as exc:
        return exc.status
    return 200


def test_given_a_restricted_namespace_then_job_pods_pass_pod_security_and_complete(restricted: dict) -> None:
    stack, final = restricted["stack"], restricted["final"]
    assert {n: j["status"]["phase"] for n, j in final.items()} == dict.fromkeys(JOBS, "Completed")
    for pod in stack.pods():
        sc, csc = pod.spec.security_context, pod.spec.containers[0].security_context
        assert sc.run_as_non_root and sc.seccomp_profile.type == "RuntimeDefault"
        assert csc.allow_privilege_escalation is False and csc.capabilities.drop == ["ALL"]
    # The contrast: the same API server refuses a pod that breaks the profile, so enforcement is real.
    core = client.CoreV1Api(restricted["api_client"])
    bad = {
        "metadata": {"name": "privileged"},
        "spec": {
            "serviceAccountName": f"ffrtmp-job-{JOBS[0]}",
            "automountServiceAccountToken": False,
            "containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}],
        },
    }
    with pytest.raises(client.exceptions.ApiException) as refused:
        core.create_namespaced_pod(restricted["namespace"], bad)
    assert refused.value.status == 403 and "violates PodSecurity" in refused.value.body


def test_given_the_runner_service_account_then_it_reads_its_job_and_patches_status_and_nothing_else(
    restricted: dict, control_plane: Any
) -> None:
    ns, admin = restricted["namespace"], restricted["api_client"]
    core = client.CoreV1Api(admin)
    core.create_namespaced_secret(ns, {"metadata": {"name": "precious"}, "stringData": {"k": "v"}})
    job = JOBS[0]
    account = f"ffrtmp-job-{job}"  # each job's own ServiceAccount (ffrtmp_operator/job_identity.py)
    token = core.create_namespaced_service_account_token(account, ns, {"spec": {"expirationSeconds": 600}}).status.token
    with token_client(control_plane, token) as runner:
        rcore, rcustom = client.CoreV1Api(runner), client.CustomObjectsApi(runner)
        rrbac = client.RbacAuthorizationV1Api(runner)
        group = (api.GROUP, api.VERSION, ns, api.PLURAL)
        allowed = {
            "get its job": lambda: rcustom.get_namespaced_custom_object(*group, job),
            "patch job status": lambda: rcustom.patch_namespaced_custom_object_status(
                *group, job, {"status": {"progress": {"percent": 100.0}}}
            ),
        }
        denied = {
            "read a Secret": lambda: rcore.read_namespaced_secret("precious", ns),
            "list Secrets": lambda: rcore.list_namespaced_secret(ns),
            "list pods": lambda: rcore.list_namespaced_pod(ns),
            "create a pod": lambda: rcore.create_namespaced_pod(
                ns, {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
            ),
            "patch a job's spec": lambda: rcustom.patch_namespaced_custom_object(
                *group, job, {"spec": {"paused": True}}
            ),
            "delete a job": lambda: rcustom.delete_namespaced_custom_object(*group, job),
            "create a job": lambda: rcustom.create_namespaced_custom_object(
                *group,
                {
                    "apiVersion": api.API_VERSION,
                    "kind": api.KIND,
                    "metadata": {"name": "x"},
                    "spec": restricted["stack"].spec("x"),
                },
            ),
            "list jobs": lambda: rcustom.list_namespaced_custom_object(*group),
            "read another job": lambda: rcustom.get_namespaced_custom_object(*group, JOBS[1]),
            "patch another job's status": lambda: rcustom.patch_namespaced_custom_object_status(
                *group, JOBS[1], {"status": {"progress": {"percent": 1.0}}}
            ),
            "read a job in another namespace": lambda: rcustom.get_namespaced_custom_object(
                api.GROUP, api.VERSION, SYSTEM_NS, api.PLURAL, job
            ),
            "list nodes": lambda: rcore.list_node(),
            "create a Role": lambda: rrbac.create_namespaced_role(ns, {"metadata": {"name": "x"}, "rules": []}),
            "request tokens": lambda: rcore.create_namespaced_service_account_token(account, ns, {"spec": {}}),
        }
        got_allowed = {what: _status(call) for what, call in allowed.items()}
        got_denied = {what: _status(call) for what, call in denied.items()}
    assert got_allowed == dict.fromkeys(allowed, 200), got_allowed
    assert got_denied == dict.fromkeys(denied, 403), got_denied
    print(f"\nFIGURE runner_sa allowed={len(allowed)} denied_403={len(denied)}: {', '.join(denied)}")


def test_given_the_chart_rbac_then_the_operator_and_agent_are_denied_what_their_rules_do_not_list(
    release: dict, kubectl: Any
) -> None:
    def can(sa: str, *args: str) -> bool:
        done = kubectl("auth", "can-i", *args, f"--as=system:serviceaccount:{SYSTEM_NS}:{sa}", check=False)
        return done.stdout.strip() == "yes"

    operator, agent = release["operator_sa"], release["agent_sa"]
    needed = {
        operator: [
            ("create", "pods", "-n", "default"),
            ("patch", "transcodejobs.ffrtmp.io", "--subresource=status", "-A"),
            ("create", "transcodejobs.ffrtmp.io", "-A"),  # split jobs: their children
            ("patch", "transcodejobs.ffrtmp.io", "-A"),  # split jobs: pause/cancel carried to the children
            ("watch", "leases.coordination.k8s.io", "-A"),
            ("create", "events", "-n", "default"),
        ],
        agent: [("patch", "nodes"), ("patch", "leases.coordination.k8s.io", "-n", SYSTEM_NS)],
    }
    refused = {
        operator: [
            ("get", "secrets", "-A"),
            ("list", "configmaps", "-A"),
            ("update", "pods", "-A"),
            ("update", "transcodejobs.ffrtmp.io", "-A"),  # patch/create are granted: split jobs' children
            ("delete", "transcodejobs.ffrtmp.io", "-A"),
            ("patch", "nodes"),
            ("delete", "nodes"),
            ("create", "leases.coordination.k8s.io", "-A"),
            ("create", "clusterroles"),
            ("create", "clusterrolebindings"),
            ("escalate", "roles", "-A"),
            ("bind", "roles", "-A"),
            ("create", "pods", "--subresource=exec", "-A"),
            ("create", "serviceaccounts", "--subresource=token", "-A"),
            ("delete", "customresourcedefinitions"),
            ("create", "deployments.apps", "-A"),
        ],
        agent: [
            ("get", "secrets", "-A"),
            ("list", "pods", "-A"),
            ("create", "pods", "-A"),
            ("delete", "nodes"),
            ("get", "transcodejobs.ffrtmp.io", "-A"),
            ("patch", "transcodejobs.ffrtmp.io", "--subresource=status", "-A"),
            ("create", "leases.coordination.k8s.io", "-n", "default"),
            ("create", "serviceaccounts", "--subresource=token", "-A"),
        ],
    }
    wrong_allow = {sa: [a for a in checks if not can(sa, *a)] for sa, checks in needed.items()}
    wrong_deny = {sa: [a for a in checks if can(sa, *a)] for sa, checks in refused.items()}
    assert wrong_allow == {operator: [], agent: []}, f"needed but refused: {wrong_allow}"
    assert wrong_deny == {operator: [], agent: []}, f"granted beyond the chart's rules: {wrong_deny}"
    print(f"\nFIGURE chart_rbac denied operator={len(refused[operator])} agent={len(refused[agent])}")


def test_given_a_run_then_metrics_and_logs_carry_no_tokens(restricted: dict, control_plane: Any) -> None:
    stack = restricted["stack"]
    tokens = {"admin": control_plane.token}
    for agent in stack.agents:  # the pod-bound tokens the agent obtained by TokenRequest for each runner
        for token_file in (agent.work_dir / "pods").glob(f"{stack.ns}_*/home/token"):
            tokens[f"runner {token_file.parent.parent.name}"] = token_file.read_text()
    assert len(tokens) == 1 + len(JOBS), sorted(tokens)
    texts = {
        "operator metrics": _get(restricted["operator_metrics"]),
        "agent metrics": _get(restricted["agent_metrics"]),
        **{f"operator log {i}": op.log_text() for i, op in enumerate(stack.operators)},
        **{f"agent log {a.node}": a.log_text() for a in stack.agents},
        **{f"runner log {d}": text for d, text in stack.runner_logs().items()},
    }
    assert "ffrtmp_" in texts["operator metrics"] and "ffrtmp_" in texts["agent metrics"]
    leaks = [f"{what} in {where}" for where, text in texts.items() for what, token in tokens.items() if token in text]
    leaks += [f"a JWT in {where}" for where, text in texts.items() if JWT.search(text)]
    leaks += [f"a bearer header in {where}" for where, text in texts.items() if "Bearer " in text]
    assert not leaks, leaks
    # Job pods carry no credential in their spec either: the runner's token comes from TokenRequest.
    for pod in stack.pods():
        env = "".join(f"{e.name}={e.value}" for e in pod.spec.containers[0].env or [])
        assert not JWT.search(env) and control_plane.token not in env
    print(f"\nFIGURE no_token_leaks sources={len(texts)} tokens_checked={len(tokens)}")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()
