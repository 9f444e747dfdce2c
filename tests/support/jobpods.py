"""Job pods for the standalone agent's tests, made the way the operator makes them: a real TranscodeJob as
owner, the job's own ServiceAccount and Role (ffrtmp_operator.job_identity), the operator's pod shape
(`ffrtmp-runner`, non-root user 65532, no privileges) and its signature with the real key in the system
namespace. What the pod runs is the test's: the agent's PATH gets a stand-in `ffrtmp-runner` (`runner_shim`)
that execs the argv in $FFRTMP_TEST_ARGV, so the kubelet's mechanics can be tested with any command.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import ffrtmp_api as api
from ffrtmp_api import podsign
from ffrtmp_operator import job_identity
from ffrtmp_operator.pods import RUNNER_UID
from kubernetes import client

__all__ = [
    "RUNNER_UID",
    "TEST_ARGV",
    "agent_env",
    "job_pod",
    "make_job",
    "mount_point",
    "runner_shim",
    "shared_folder",
    "sign",
    "signing_key",
    "traversable",
]

TEST_ARGV = "FFRTMP_TEST_ARGV"


def runner_shim(folder: Path | None = None) -> Path:
    """A folder holding an executable `ffrtmp-runner` that execs json($FFRTMP_TEST_ARGV) (same pid). By
    default a new folder in /tmp itself: pytest makes /tmp/pytest-of-<user> 0700 again whenever a session
    starts, and the pods' user must reach the shim."""
    folder = folder or Path(tempfile.mkdtemp(prefix="ffrtmp-shim-"))
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    shim = folder / "ffrtmp-runner"
    shim.write_text(
        f"#!{sys.executable} -I\nimport json, os\nargv = json.loads(os.environ['{TEST_ARGV}'])\n"
        "os.execvp(argv[0], argv)\n"
    )
    shim.chmod(0o755)
    traversable(folder)
    return folder


def shared_folder(path: Path) -> Path:
    """`path` (made when missing) owned by the job pods' user: a hostPath folder jobs write to, as an admin
    prepares one (a kubelet does not chown hostPath volumes either)."""
    path.mkdir(parents=True, exist_ok=True)
    for folder in [path, *path.rglob("*")]:
        if not folder.is_symlink():
            os.chown(folder, RUNNER_UID, RUNNER_UID)
    return path


def mount_point() -> Path:
    """An empty folder in /tmp itself to mount a volume at (removed at exit): the pods' user can reach it."""
    folder = Path(tempfile.mkdtemp(prefix="ffrtmp-mnt-"))
    folder.chmod(0o755)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def traversable(path: Path) -> Path:
    """Lets the pods' user (65532) pass through `path` and its parents (pytest's tmp folders are 0700)."""
    for folder in [path, *path.parents]:
        if folder == Path("/"):
            break
        mode = folder.stat().st_mode & 0o777
        if mode & 0o011 != 0o011:
            folder.chmod(mode | 0o011)
    return path


def signing_key(api_client: client.ApiClient) -> bytes:
    return job_identity.read_or_make_key(client.CoreV1Api(api_client), api.DEFAULT_SYSTEM_NAMESPACE)


def sign(api_client: client.ApiClient, pod: dict[str, Any]) -> dict[str, Any]:
    pod["metadata"].setdefault("annotations", {})[podsign.ANNOTATION] = podsign.sign(pod, signing_key(api_client))
    return pod


def make_job(api_client: client.ApiClient, namespace: str, name: str = "job") -> dict[str, Any]:
    """A real TranscodeJob (the pod's owner) and the ServiceAccount, Role and RoleBinding the operator makes."""
    body = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": {
            "input": {"testSource": {"durationSeconds": 1}},
            "output": {"url": "file:///media/out.mp4"},
            "volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {}}],
        },
    }
    job = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, body
    )
    uid = job["metadata"]["uid"]
    bodies = [
        job_identity.service_account(namespace, name, uid),
        job_identity.role(namespace, name, uid),
        job_identity.role_binding(namespace, name, uid),
    ]
    job_identity.create_objects(
        client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client), namespace, bodies
    )
    return job


def job_pod(
    job: dict[str, Any],
    *,
    node: str,
    command: list[str],
    volumes: list[dict[str, Any]] = (),
    mounts: list[dict[str, Any]] = (),
    env: list[dict[str, Any]] = (),
    owned: bool = True,
    managed: bool = True,
    name: str | None = None,
    api_client: client.ApiClient | None = None,
    limits: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod shaped like the operator's job pod running `command` through the shim; signed when `api_client`
    is given (as the operator signs), unsigned otherwise (as anyone else would make it)."""
    meta = job["metadata"]
    labels = {api.LABEL_JOB: meta["name"], api.LABEL_JOB_UID: meta["uid"], api.LABEL_ATTEMPT: "1"}
    if managed:
        labels[api.LABEL_MANAGED_BY] = api.MANAGED_BY
    owners = (
        [
            {
                "apiVersion": api.API_VERSION,
                "kind": api.KIND,
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        if owned
        else []
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name or f"{meta['name']}-1",
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": owners,
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": job_identity.service_account_name(meta["name"]),
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUNNER_UID,
                "runAsGroup": RUNNER_UID,
                "fsGroup": RUNNER_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumes": list(volumes),
            "containers": [
                {
                    "name": api.RUNNER_CONTAINER,
                    "image": "ffrtmp/runner:test",
                    "command": ["ffrtmp-runner"],
                    "env": [
                        {"name": TEST_ARGV, "value": json.dumps(command)},
                        {
                            "name": api.ENV_PLAN,
                            "value": json.dumps({"namespace": meta["namespace"], "job": meta["name"]}),
                        },
                        *env,
                    ],
                    "volumeMounts": list(mounts),
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "resources": {"limits": limits} if limits else {},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "runAsNonRoot": True,
                        "runAsUser": RUNNER_UID,
                    },
                }
            ],
        },
    }
    return sign(api_client, pod) if api_client is not None else pod


def agent_env(env: dict[str, str], shim: Path) -> dict[str, str]:
    """The agent's environment with the stand-in runner first on PATH (the agent passes PATH to pods)."""
    return env | {"PATH": f"{shim}{os.pathsep}{env.get('PATH', os.environ.get('PATH', ''))}"}
