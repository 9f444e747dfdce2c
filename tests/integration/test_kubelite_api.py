"""The runner's small API client against the real kube-apiserver: TLS is verified against the configured
CA (a foreign CA is refused, insecure-skip-tls-verify connects), GET / merge PATCH of the status /
WATCH work on a TranscodeJob, and a refused call is an ApiError that carries no token.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import pytest
from ffrtmp_agent.runner import kubelite
from ffrtmp_agent.runner.jobclient import JobClient
from kubernetes import client

pytestmark = pytest.mark.integration

SPEC = {
    "input": {"testSource": {"pattern": "testsrc2", "width": 320, "height": 240, "fps": 25, "durationSeconds": 1}},
    "output": {"url": "file:///media/out/x.mp4"},
    "video": {"codec": "h264", "crf": 23},
    "volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {}}],
}


def make_job(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    body = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": name}, "spec": SPEC}
    return client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, body
    )


def admin_config(control_plane: Any, **overrides: Any) -> kubelite.ClusterConfig:
    fields = {
        "server": control_plane.server,
        "ca_pem": Path(control_plane.ca_file).read_text(),
        "token": control_plane.token,
        **overrides,
    }
    return kubelite.ClusterConfig(**fields)


def test_given_the_clusters_ca_when_the_job_is_read_patched_and_watched_then_the_api_server_agrees(
    control_plane: Any, api_client: client.ApiClient, namespace: str
):
    make_job(api_client, namespace, "lite")
    jobs = JobClient(namespace=namespace, name="lite", config=admin_config(control_plane))
    assert jobs.get()["metadata"]["name"] == "lite"

    seen: list[dict[str, Any]] = []
    stop, paused = threading.Event(), threading.Event()

    def on_spec(spec: dict[str, Any]) -> None:
        seen.append(spec)
        if spec.get("paused"):
            paused.set()

    watcher = threading.Thread(target=jobs.watch_spec, args=(on_spec, stop), daemon=True)
    watcher.start()
    custom = client.CustomObjectsApi(api_client)
    for _ in range(50):
        if seen:
            break
        stop.wait(0.1)
    custom.patch_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, "lite", {"spec": {"paused": True}}
    )
    assert paused.wait(10), f"watch never saw spec.paused: {seen}"

    jobs.patch_status({"progress": {"percent": 42.0}})
    stored = custom.get_namespaced_custom_object_status(api.GROUP, api.VERSION, namespace, api.PLURAL, "lite")
    assert stored["status"]["progress"]["percent"] == 42.0

    custom.delete_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, "lite")
    watcher.join(10)
    assert not watcher.is_alive() and seen[-1] == {"canceled": True}  # deletion reads as cancel
    stop.set()


def test_given_a_foreign_ca_when_connecting_then_tls_verification_refuses(control_plane: Any, tmp_path: Path):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "1",
            "-subj",
            "/CN=not-the-cluster-ca",
        ],
        check=True,
        capture_output=True,
    )
    foreign = kubelite.KubeClient(admin_config(control_plane, ca_pem=crt.read_text()))
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED") as caught:
        foreign.request("GET", "/version")
    assert control_plane.token not in str(caught.value)
    insecure = kubelite.KubeClient(admin_config(control_plane, ca_pem=None, insecure=True))
    assert "gitVersion" in insecure.request("GET", "/version")


def test_given_a_token_without_rights_when_reading_then_403_without_the_token(
    control_plane: Any, api_client: client.ApiClient, namespace: str
):
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token("nobody", namespace, {"spec": {"expirationSeconds": 600}})
    secret = token.status.token
    make_job(api_client, namespace, "private")
    kube = kubelite.KubeClient(admin_config(control_plane, token=secret))
    path = kubelite.custom_object_path(
        group=api.GROUP, version=api.VERSION, namespace=namespace, plural=api.PLURAL, name="private"
    )
    with pytest.raises(kubelite.ApiError) as caught:
        kube.request("GET", path)
    assert caught.value.status == 403 and "Forbidden" in caught.value.reason
    assert secret not in str(caught.value) and secret not in repr(kube.config)
