"""What the cluster suite does to a real cluster: kubectl and helm against its kubeconfig, namespaces that
enforce Pod Security "restricted" with a media PersistentVolume, TranscodeJobs, and a probe pod that runs
ffprobe on a job's output inside the cluster (so the check works on kind or any cluster, not only here).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "ffrtmp"
RELEASE = "ffrtmp"
SYSTEM_NS = "ffrtmp-system"
RUNNER_UID = 65532


@dataclass
class Kube:
    """One cluster under test. local: `make cluster` on this machine (a hostPath PV is visible to every
    node); else storage_class must name a class whose volumes the runner's uid can write."""

    kubeconfig: Path
    bin_dir: Path
    image: str
    local: bool
    storage_class: str = ""
    api: client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.api = config.new_client_from_config(config_file=str(self.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": f"{self.bin_dir}:{os.environ['PATH']}"}

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(self.bin_dir / "kubectl"), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def helm(self, *args: str, check: bool = True, timeout: float = 400) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin_dir / "helm"), *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def image_values(self) -> list[str]:
        repo, _, tag = self.image.rpartition(":")
        return ["--set", f"image.repository={repo},image.tag={tag},image.pullPolicy=Never"]

    # -- jobs --------------------------------------------------------------------------------------
    def create_job(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": name}, "spec": spec}
        return self.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, body)

    def job(self, namespace: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, name)

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return self.job(namespace, name).get("status") or {}

    def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, name, {"spec": spec})

    def job_pods(self, namespace: str, name: str) -> list[client.V1Pod]:
        return self.core.list_namespaced_pod(namespace, label_selector=f"{api.LABEL_JOB}={name}").items

    # -- the chart's pods --------------------------------------------------------------------------
    def operator_pods(self) -> list[client.V1Pod]:
        pods = self.core.list_namespaced_pod(SYSTEM_NS, label_selector="app.kubernetes.io/name=ffrtmp-operator")
        return [p for p in pods.items if p.metadata.deletion_timestamp is None]

    def is_active(self, pod: str) -> bool:
        """The replica's scheduler runs: its last scheduler line says started, not stopped."""
        try:
            text = self.core.read_namespaced_pod_log(pod, SYSTEM_NS)
        except client.exceptions.ApiException:
            return False
        lines = [ln for ln in text.splitlines() if '"scheduler started' in ln or '"scheduler stopped"' in ln]
        return bool(lines) and "scheduler started" in lines[-1]


def wait_until(check, *, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def media_namespace(kube: Kube, prefix: str, media_root: Path) -> str:
    """A namespace enforcing PSS restricted, with the claim "media" (in/ and out/ writable by uid 65532)."""
    ns = f"{prefix}-{secrets.token_hex(3)}"
    labels = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn")}
    kube.core.create_namespace({"metadata": {"name": ns, "labels": labels}})
    claim: dict[str, Any] = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}
    if kube.local:
        path = media_root / ns
        (path / "out").mkdir(parents=True)
        for p in (path, path / "out"):
            os.chown(p, RUNNER_UID, RUNNER_UID)
        kube.core.create_persistent_volume(
            {
                "metadata": {"name": ns, "labels": {"ffrtmp.io/test": "cluster"}},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "hostPath": {"path": str(path), "type": "Directory"},
                },
            }
        )
        claim.update(storageClassName="", volumeName=ns)
    else:
        claim.update(storageClassName=kube.storage_class, accessModes=["ReadWriteOnce"])
    kube.core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "media"}, "spec": claim})
    return ns


def delete_namespace(kube: Kube, ns: str) -> None:
    kube.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=120s", check=False)
    kube.kubectl("delete", "pv", ns, "--ignore-not-found", check=False)


MEDIA_VOLUME = [{"name": "media", "mountPath": "/media", "persistentVolumeClaim": {"claimName": "media"}}]


def restricted_pod(kube: Kube, name: str, command: list[str], *, node: str | None = None) -> dict[str, Any]:
    """A pod that passes PSS restricted, on the ffrtmp image, with the media claim at /media."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            **({"nodeName": node} if node else {}),
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUNNER_UID,
                "runAsGroup": RUNNER_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": kube.image,
                    "imagePullPolicy": "Never",
                    "command": command,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "media", "mountPath": "/media"}],
                }
            ],
            "volumes": [{"name": "media", "persistentVolumeClaim": {"claimName": "media"}}],
        },
    }


def run_pod(kube: Kube, ns: str, command: list[str], *, node: str | None = None, timeout: float = 90) -> str:
    """Run a restricted probe pod to completion; its log (stdout). Fails with the log if it fails."""
    name = f"probe-{secrets.token_hex(3)}"
    kube.core.create_namespaced_pod(ns, restricted_pod(kube, name, command, node=node))
    phase = wait_until(
        lambda: (
            (kube.core.read_namespaced_pod(name, ns).status.phase or "")
            if kube.core.read_namespaced_pod(name, ns).status.phase in ("Succeeded", "Failed")
            else None
        ),
        timeout=timeout,
        what=f"probe pod {name}",
    )
    log = kube.core.read_namespaced_pod_log(name, ns)
    kube.core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
    assert phase == "Succeeded", f"probe {command} failed:\n{log}"
    return log


def ffprobe(kube: Kube, ns: str, path: str, *, node: str | None = None) -> dict[str, Any]:
    """ffprobe's JSON for a file on the media claim, plus "uid": the file's owner."""
    script = (
        f"ffprobe -v error -show_entries stream=codec_type,codec_name,width,height "
        f"-show_entries format=duration -of json {path} && stat -c 'uid=%u' {path}"
    )
    out = run_pod(kube, ns, ["sh", "-c", script], node=node)
    body, _, uid = out.rpartition("uid=")
    probe = json.loads(body)
    probe["uid"] = int(uid.strip())
    return probe


def file_job_spec(output: str, *, seconds: int = 6, preset: str = "veryfast") -> dict[str, Any]:
    return {
        "input": {
            "testSource": {"pattern": "testsrc2", "width": 1280, "height": 720, "fps": 30, "durationSeconds": seconds}
        },
        "output": {"url": f"file:///media/out/{output}"},
        "video": {"codec": "h264", "preset": preset, "crf": 23, "width": 640, "height": 360},
        "audio": {"codec": "aac", "bitrate": "96k"},
        "volumes": MEDIA_VOLUME,
    }


def load_yaml(text: str) -> Any:
    return yaml.safe_load(text)
