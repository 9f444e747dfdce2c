"""The control plane of `make cluster`: argv and config files for etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kube-proxy, and the kubeconfigs they (and the user) use.

The apiserver listens on the control-plane address only (10.250.0.1:6443), which pods reach through the
`kubernetes` Service; the other parts listen on loopback or on that address, never on the machine's own
interfaces. One kube-proxy serves every node: they share this machine's network namespace, and two
kube-proxies there would fight over the same iptables chains.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import net
from .pki import Identity, Pki

APISERVER_PORT = 6443
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTEXT = "ffrtmp-cluster"


@dataclass(frozen=True)
class Paths:
    dir: Path  # <dev>/cluster
    bin_dir: Path

    @property
    def pki(self) -> Pki:
        return Pki(self.dir / "pki")

    def kubeconfig(self, name: str) -> Path:
        return self.dir / "kubeconfigs" / f"{name}.yaml"

    def bin(self, name: str) -> str:
        return str(self.bin_dir / name)


def server() -> str:
    return f"https://{net.CONTROL_IP}:{APISERVER_PORT}"


def kubeconfig(pki: Pki, who: Identity, path: Path, *, server_url: str | None = None) -> Path:
    ca = base64.b64encode(pki.ca_cert.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": server_url or server(), "certificate-authority-data": ca}}
        ],
        "users": [{"name": who.user, "user": {"token": pki.token(who)}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": who.user}}],
        "current-context": CONTEXT,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def etcd_argv(p: Paths, port: int, peer_port: int) -> list[str]:
    url, peer = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer_port}"
    return [
        p.bin("etcd"),
        "--name=default",
        f"--data-dir={p.dir / 'etcd'}",
        f"--listen-client-urls={url}",
        f"--advertise-client-urls={url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--unsafe-no-fsync",
        "--log-level=warn",
        "--listen-metrics-urls=",
    ]


def apiserver_argv(p: Paths, etcd_port: int) -> list[str]:
    pki = p.pki
    return [
        p.bin("kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--cert-dir={pki.dir}",
        f"--tls-cert-file={pki.path('apiserver.crt')}",
        f"--tls-private-key-file={pki.path('apiserver.key')}",
        f"--client-ca-file={pki.ca_cert}",
        f"--kubelet-client-certificate={pki.path('kubelet-client.crt')}",
        f"--kubelet-client-key={pki.path('kubelet-client.key')}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--bind-address={net.CONTROL_IP}",
        f"--advertise-address={net.CONTROL_IP}",
        f"--secure-port={APISERVER_PORT}",
        f"--service-cluster-ip-range={net.SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--token-auth-file={pki.path('tokens.csv')}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.path('sa.pub')}",
        f"--service-account-signing-key-file={pki.path('sa.key')}",
        f"--api-audiences={SA_ISSUER}",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager_argv(p: Paths, port: int) -> list[str]:
    kc = p.kubeconfig("kube-controller-manager")
    return [
        p.bin("kube-controller-manager"),
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={p.dir / 'kcm-certs'}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={p.pki.path('sa.key')}",
        f"--root-ca-file={p.pki.ca_cert}",  # published as kube-root-ca.crt, the CA pods trust
        f"--cluster-signing-cert-file={p.pki.ca_cert}",
        f"--cluster-signing-key-file={p.pki.path('ca.key')}",
        f"--service-cluster-ip-range={net.SERVICE_CIDR}",
        # a node whose kubelet stopped is NotReady after 20 s instead of 40
        "--node-monitor-grace-period=20s",
        "--profiling=false",
        "--v=1",
    ]


def scheduler_argv(p: Paths, port: int) -> list[str]:
    kc = p.kubeconfig("kube-scheduler")
    return [
        p.bin("kube-scheduler"),
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={p.dir / 'scheduler-certs'}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def kube_proxy_config(p: Paths, hostname: str) -> Path:
    cfg = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(p.kubeconfig("kube-proxy"))},
        "hostnameOverride": hostname,
        "mode": "iptables",
        "clusterCIDR": net.POD_CIDR,
        "bindAddress": net.CONTROL_IP,
        "healthzBindAddress": f"{net.CONTROL_IP}:10256",
        "metricsBindAddress": f"{net.CONTROL_IP}:10249",
        # NodePorts only on the cluster's own addresses, never on the machine's interfaces
        "nodePortAddresses": [net.HOST_NET],
        # leave the machine's conntrack sysctls alone (read-only in a container, and not ours to change)
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    path = p.dir / "kube-proxy.yaml"
    text = yaml.safe_dump(cfg, sort_keys=False)
    if not path.exists() or path.read_text() != text:  # kube-proxy exits when its config file is written
        path.write_text(text)
    return path


def kube_proxy_argv(p: Paths) -> list[str]:
    return [p.bin("kube-proxy"), f"--config={p.dir / 'kube-proxy.yaml'}", "--v=1"]
