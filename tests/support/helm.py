"""The repository's Helm chart against the test control plane: run the built helm, and a kubeconfig that
holds a ServiceAccount's TokenRequest token (what a pod of the chart would mount)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

__all__ = ["CHART", "helm", "sa_kubeconfig"]

CHART = Path(__file__).resolve().parents[2] / "helm" / "ffrtmp"


def helm(control_plane: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`helm ARGS` with the control plane's kubeconfig; with check=True a non-zero exit fails the test."""
    done = subprocess.run(
        [str(Path(control_plane.bin_dir) / "helm"), *args],
        capture_output=True,
        text=True,
        env=control_plane.env(),
        timeout=300,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def sa_kubeconfig(
    control_plane: Any, api_client: client.ApiClient, *, namespace: str, service_account: str, path: Path
) -> Path:
    """A kubeconfig holding a TokenRequest token of `service_account` (what the pod would mount)."""
    token = (
        client.CoreV1Api(api_client)
        .create_namespaced_service_account_token(service_account, namespace, {"spec": {"expirationSeconds": 3600}})
        .status.token
    )
    ca = base64.b64encode(Path(control_plane.ca_file).read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": control_plane.server, "certificate-authority-data": ca}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
