"""Helpers for the runner end-to-end tests: a TranscodeJob in the test namespace, a least-privilege
kubeconfig (the runner Role the operator grants, a TokenRequest token), the plan from the real plan
builder, `ffrtmp-runner` as a real subprocess, and real media made (or probed) by ffmpeg.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import psutil
import yaml
from ffrtmp_operator import plan
from kubernetes import client

from .media import media_argv

__all__ = [
    "RunnerProcess",
    "bad_media",
    "build",
    "create_job",
    "ffprobe",
    "get_job",
    "make_media",
    "patch_spec",
    "runner_kubeconfig",
    "video_stream",
]

RUNNER_ROLE_RULES = [
    {"apiGroups": [api.GROUP], "resources": [api.PLURAL], "verbs": ["get", "watch"]},
    {"apiGroups": [api.GROUP], "resources": [f"{api.PLURAL}/status"], "verbs": ["patch"]},
]


def runner_kubeconfig(api_client: client.ApiClient, control_plane: Any, namespace: str, path: Path) -> Path:
    """A kubeconfig holding a TokenRequest token of a ServiceAccount bound to the runner's Role only."""
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    name = api.RUNNER_SERVICE_ACCOUNT
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": RUNNER_ROLE_RULES})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    token = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "runner",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": control_plane.server,
                            "certificate-authority": str(control_plane.ca_file),
                        },
                    }
                ],
                "users": [{"name": "runner", "user": {"token": token}}],
                "contexts": [{"name": "runner", "context": {"cluster": "c", "user": "runner", "namespace": namespace}}],
            }
        )
    )
    return path


def create_job(api_client: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> api.TranscodeJob:
    body = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": name}, "spec": spec}
    created = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, body
    )
    return api.TranscodeJob.model_validate(created)


def get_job(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, name
    )


def patch_spec(api_client: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> None:
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, name, {"spec": spec}
    )


# The test machine's servers (nginx-rtmp, HTTP) listen on loopback: the admin's allowance the tests run with.
# Tests of the egress refusals build their plans with egress_allow=().
LOOPBACK = ("127.0.0.0/8", "::1/128")


def build(
    job: api.TranscodeJob, *, encoder: str = "libx264", interval: float = 2.0, egress_allow: tuple[str, ...] = LOOPBACK
) -> api.ExecutionPlan:
    meta = job.metadata
    built = plan.build_plan(
        job, namespace=meta["namespace"], name=meta["name"], uid=meta["uid"], attempt=1, encoder=encoder
    )
    return built.model_copy(update={"progressIntervalSeconds": interval, "egressAllow": list(egress_allow)})


class RunnerProcess:
    """`python -m ffrtmp_agent.runner` with FFRTMP_PLAN, KUBECONFIG and a termination log in tmp_path."""

    def __init__(
        self, execution: api.ExecutionPlan, *, kubeconfig: Path, work: Path, env: dict[str, str] | None = None
    ):
        self.termination_log = work / "termination-log"
        self.log_path = work / f"runner-{execution.job}.log"
        full_env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            api.ENV_PLAN: execution.model_dump_json(),
            api.ENV_TERMINATION_LOG: str(self.termination_log),
            **(env or {}),
        }
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ffrtmp_agent.runner"], env=full_env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"runner still running after {timeout}s:\n{self.log_text()[-3000:]}") from None

    def encoder(self) -> psutil.Process | None:
        """The runner's ffmpeg child, if one runs."""
        try:
            kids = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return None
        return next((k for k in kids if k.name() == "ffmpeg"), None)

    def termination(self) -> dict[str, str]:
        return json.loads(self.termination_log.read_text())

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def ffprobe(ref: str, *, timeout: float = 60, extra: list[str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            *(extra or []),
            "-show_entries",
            "format=duration,size:stream=codec_type,codec_name,width,height",
            "-of",
            "json",
            ref,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def video_stream(probe: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in probe["streams"] if s["codec_type"] == "video")


def make_media(path: Path, *, seconds: float, size: str = "320x240", extra: list[str] | None = None) -> Path:
    """A real media file made by ffmpeg (h264 + aac)."""
    subprocess.run(media_argv(str(path), seconds=seconds, size=size, extra=extra), check=True, timeout=300)
    return path


def bad_media(path: Path, kind: str) -> Path:
    """A file ffmpeg cannot use as input: "zero-byte", "not-media" (text named .mp4) or "truncated" (the
    first third of a faststart MP4, made next to it as whole.mp4; ffmpeg itself exits 0 after warnings)."""
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "not-media":
        path.write_text("these are meeting notes, not a video\n" * 200)
    elif kind == "truncated":
        whole = make_media(path.with_name("whole.mp4"), seconds=6, extra=["-movflags", "+faststart"]).read_bytes()
        path.write_bytes(whole[: len(whole) // 3])
    else:
        raise ValueError(kind)
    return path
