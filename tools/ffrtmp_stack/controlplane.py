"""A real etcd + kube-apiserver on loopback ports (the envtest pattern), with ffrtmp's cluster-wide objects.

`ControlPlane` runs one for a test session; `stack.py` runs the same two parts detached for `make up`.
Both use the argv builders and `install_base` here. The apiserver has RBAC on, a static admin token
(group system:masters), ServiceAccount token issuing, and TLS from a local CA embedded in the kubeconfig.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import procs
from .pki import Pki, ensure_pki

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTEXT = "ffrtmp-local"


def find_bin_dir(*, build: bool = True) -> Path:
    """The folder with kube-apiserver, etcd, kubectl and helm (tools/binaries.sh; honours KUBEBUILDER_ASSETS).

    build: build missing binaries (minutes, once; the log goes to our stderr); else raise RuntimeError.
    """
    argv = [str(REPO / "tools" / "binaries.sh"), *([] if build else ["--check"])]
    done = subprocess.run(
        argv, check=False, stdout=subprocess.PIPE, stderr=None if build else subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        raise RuntimeError((done.stderr or "").strip() or f"tools/binaries.sh exited {done.returncode}")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Layout:
    """Where one control plane keeps its state, and the ports it listens on."""

    work_dir: Path
    bin_dir: Path
    etcd_port: int
    etcd_peer_port: int
    apiserver_port: int

    @property
    def pki(self) -> Pki:
        return Pki(self.work_dir / "pki")

    @property
    def etcd_data(self) -> Path:
        return self.work_dir / "etcd"

    @property
    def kubeconfig(self) -> Path:
        return self.work_dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    def log(self, part: str) -> Path:
        return self.work_dir / "logs" / f"{part}.log"


def etcd_argv(lay: Layout) -> list[str]:
    peer = f"http://127.0.0.1:{lay.etcd_peer_port}"
    return [
        str(lay.bin_dir / "etcd"),
        "--name=default",
        f"--data-dir={lay.etcd_data}",
        f"--listen-client-urls={lay.etcd_url}",
        f"--advertise-client-urls={lay.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--unsafe-no-fsync",  # throwaway local data: durability costs seconds per test run
        "--log-level=warn",
    ]


def apiserver_argv(lay: Layout) -> list[str]:
    pki = lay.pki
    return [
        str(lay.bin_dir / "kube-apiserver"),
        f"--etcd-servers={lay.etcd_url}",
        f"--cert-dir={pki.dir}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={lay.apiserver_port}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=RBAC",
        f"--token-auth-file={pki.token_file}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--api-audiences={SA_ISSUER}",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def etcd_ready(lay: Layout) -> bool:
    return procs.http_ok(f"{lay.etcd_url}/health")


def apiserver_ready(lay: Layout) -> bool:
    return procs.http_ok(f"{lay.server}/readyz", token=lay.pki.admin_token, ca_file=lay.pki.ca_cert)


def write_kubeconfig(lay: Layout) -> Path:
    """An admin kubeconfig that verifies the apiserver against the local CA."""
    ca = base64.b64encode(lay.pki.ca_cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": lay.server, "certificate-authority-data": ca}}],
        "users": [{"name": "admin", "user": {"token": lay.pki.admin_token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin"}}],
        "current-context": CONTEXT,
    }
    tmp = lay.kubeconfig.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(lay.kubeconfig)
    return lay.kubeconfig


def api_client_for(kubeconfig: Path):  # -> kubernetes.client.ApiClient
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


def _apply(create, replace, read, name: str, body: dict) -> None:
    """Create, or replace keeping the stored resourceVersion: re-running `up` updates changed CRDs."""
    from kubernetes.client.exceptions import ApiException

    try:
        create(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        body = {**body, "metadata": {**body["metadata"], "resourceVersion": read(name).metadata.resource_version}}
        replace(name, body)


def install_base(api, *, crd_dir: Path = CRD_DIR, system_namespace: str | None = None, timeout_s: float = 30.0) -> None:
    """Install the CRDs (waiting until Established), ffrtmp's PriorityClasses and the system namespace."""
    import ffrtmp_api as ffapi
    from kubernetes import client

    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(crd_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                _apply(
                    ext.create_custom_resource_definition,
                    ext.replace_custom_resource_definition,
                    ext.read_custom_resource_definition,
                    doc["metadata"]["name"],
                    doc,
                )
                names.append(doc["metadata"]["name"])
    sched = client.SchedulingV1Api(api)
    for name, value in ffapi.PRIORITY_CLASS_VALUES.items():
        body = {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "ffrtmp"}},
            "value": value,
            "globalDefault": False,
            "description": f"ffrtmp jobs with priority {name.removeprefix('ffrtmp-')}",
        }
        try:
            sched.create_priority_class(body)
        except client.exceptions.ApiException as exc:
            if exc.status != 409:  # value is immutable; an existing class is kept as it is
                raise
    ns = system_namespace or ffapi.DEFAULT_SYSTEM_NAMESPACE
    try:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    except client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        for name in names:
            conds = ext.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conds):
                return False
        return True

    procs.wait_until(established, timeout_s=timeout_s, what=f"CRDs {names}")


class ControlPlane:
    """etcd + kube-apiserver as child processes of this one (they die with it), for a test session.

    Attributes: work_dir, bin_dir, server (https URL), token (admin bearer token), ca_file, kubeconfig.
    stop() then start() restarts it on the same ports with the same data and keys (kubeconfig stays valid).
    """

    def __init__(self, work_dir: Path, *, bin_dir: Path | None = None) -> None:
        self.work_dir = work_dir
        self.bin_dir = bin_dir or find_bin_dir()
        etcd_port, etcd_peer_port, apiserver_port = procs.free_ports(3)
        self.layout = Layout(
            work_dir=work_dir,
            bin_dir=self.bin_dir,
            etcd_port=etcd_port,
            etcd_peer_port=etcd_peer_port,
            apiserver_port=apiserver_port,
        )
        self.server = self.layout.server
        self.kubeconfig = self.layout.kubeconfig
        self.ca_file = self.layout.pki.ca_cert
        self.token = ""
        self.start_seconds = 0.0
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self) -> ControlPlane:
        """Start etcd and the apiserver, install the base objects: about 4 s on 2 idle cores, 7 s on busy
        ones (etcd 0.3-0.7 s, apiserver to /readyz 3-4 s, CRDs Established 0.5-2 s); each phase is logged."""
        began = time.monotonic()
        lay = self.layout
        pki = ensure_pki(lay.pki.dir)
        self.token = pki.admin_token
        for name, argv, ready in (
            ("etcd", etcd_argv(lay), etcd_ready),
            ("kube-apiserver", apiserver_argv(lay), apiserver_ready),
        ):
            t0 = time.monotonic()
            proc = procs.start(argv, log=lay.log(name), marker=f"{self.work_dir}:{name}", tie_to_parent=True)
            self._procs.append((name, proc))
            procs.wait_until(
                lambda ready=ready: ready(lay),
                timeout_s=60,
                what=name,
                alive=lambda proc=proc: proc.poll() is None,
                log=lay.log(name),
            )
            log.info("%s ready in %.1f s", name, time.monotonic() - t0)
        t0 = time.monotonic()
        write_kubeconfig(lay)
        with api_client_for(self.kubeconfig) as api:
            install_base(api)
        log.info("CRDs, PriorityClasses, namespace installed in %.1f s", time.monotonic() - t0)
        self.start_seconds = time.monotonic() - began
        log.info("control plane at %s ready in %.1f s", self.server, self.start_seconds)
        return self

    def stop(self, *, grace_s: float = 10.0) -> None:
        """SIGTERM etcd and the apiserver, SIGKILL after grace_s (0: a crash, as the restart tests use)."""
        for name, proc in reversed(self._procs):
            procs.stop(proc.pid, marker=f"{self.work_dir}:{name}", grace_s=grace_s)
            proc.wait()
        self._procs.clear()

    def env(self) -> dict[str, str]:
        """Environment for a subprocess (operator, agent, kubectl, helm) that should use this control plane."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def api_client(self):  # -> kubernetes.client.ApiClient
        return api_client_for(self.kubeconfig)

    def __enter__(self) -> ControlPlane:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
