"""One node of `make cluster`: a private containerd (root, state, socket, runc root and CNI config of its
own) and a kubelet that registers as ffrtmp-node-<i>, listens on its own address, and keeps its pods in its
own cgroup subtree (/ffrtmp-node-<i>/kubepods) and root dir. Nothing is shared with a system containerd.

Teardown does not need the kubelet or containerd to be alive: it kills the processes in the node's cgroups
and the shims of its socket, unmounts what is mounted under its directories, removes its network
namespaces, and deletes the cgroups.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import net

CGROUP_ROOT = Path("/sys/fs/cgroup")
K8S_NS = "k8s.io"


@dataclass(frozen=True)
class Node:
    index: int
    dir: Path  # <dev>/cluster/nodes/<name>: wiped by down
    image_store: Path  # containerd's root: kept by down, so images need not be imported again

    @property
    def name(self) -> str:
        return f"ffrtmp-node-{self.index}"

    @property
    def ip(self) -> str:
        return net.node_ip(self.index)

    @property
    def socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    @property
    def state(self) -> Path:
        return self.dir / "containerd" / "state"

    @property
    def cgroup(self) -> str:
        return f"/{self.name}"

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        done = subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", K8S_NS, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{self.name}: ctr {' '.join(args[:3])}: {done.stderr.strip()}")
        return done.stdout


def containerd_config(node: Node, sandbox_image: str) -> Path:
    d = node.dir / "containerd"
    cri = {
        "sandbox_image": sandbox_image,
        # the machine lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below ours, and every sandbox
        # fails without this (REAL-NODE-FACTS.md)
        "restrict_oom_score_adj": True,
        "stream_server_address": "127.0.0.1",
        "stream_server_port": "0",
        "enable_selinux": False,
        "containerd": {
            "snapshotter": "overlayfs",
            "default_runtime_name": "runc",
            "runtimes": {
                "runc": {
                    "runtime_type": "io.containerd.runc.v2",
                    "options": {"SystemdCgroup": False, "Root": str(d / "runc")},
                }
            },
        },
        "cni": {"bin_dir": "/usr/lib/cni", "conf_dir": str(node.dir / "cni" / "net.d"), "max_conf_num": 1},
    }
    text = "\n".join(
        [
            "version = 2",
            f'root = "{node.image_store}"',
            f'state = "{node.state}"',
            (
                'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", '
                '"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", '
                '"io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]'
            ),
            "[grpc]",
            f'  address = "{node.socket}"',
            "[ttrpc]",
            f'  address = "{node.socket}.ttrpc"',
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{d / "opt"}"',
            _toml_table('plugins."io.containerd.grpc.v1.cri"', cri),
        ]
    )
    path = d / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path


def _toml_table(name: str, table: dict) -> str:
    """Enough TOML for containerd's config: nested tables of strings, booleans and numbers."""

    def value(v) -> str:
        return ("true" if v else "false") if isinstance(v, bool) else json.dumps(v)

    lines = [f"[{name}]"]
    lines += [f"  {k} = {value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for k, v in table.items():
        if isinstance(v, dict):
            lines.append(_toml_table(f"{name}.{k}", v))
    return "\n".join(lines)


def kubelet_config(node: Node, ca_file: Path) -> Path:
    resolv = node.dir / "resolv.conf"
    resolv.write_text("# no upstream resolver: nothing in the cluster resolves names off this machine\n")
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": node.ip,
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{node.socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": node.cgroup,
        "failSwapOn": False,
        "podLogsDir": str(node.dir / "pod-logs"),
        "resolvConf": str(resolv),
        "clusterDomain": "cluster.local",
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,  # never remove the imported images: they cannot be pulled
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "maxPods": 60,
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "nodeStatusUpdateFrequency": "5s",
        "staticPodPath": "",
        "volumePluginDir": str(node.dir / "volume-plugins"),
        "shutdownGracePeriod": "0s",
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "tlsCertFile": "",
        "tlsPrivateKeyFile": "",
    }
    path = node.dir / "kubelet.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in cfg.items() if v != ""}, sort_keys=False))
    return path


def ensure_cgroup(node: Node) -> None:
    """The kubelet wants its cgroupRoot to exist in every hierarchy; a new cpuset group starts with no
    CPUs or memory nodes, so it takes its parent's."""
    for hierarchy in CGROUP_ROOT.iterdir():
        if not (hierarchy / "cgroup.procs").exists():
            continue
        top = hierarchy / node.cgroup.lstrip("/")
        top.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (top / name).exists() and not (top / name).read_text().strip():
                (top / name).write_text((hierarchy / name).read_text())


def containerd_argv(node: Node) -> list[str]:
    return ["containerd", "--config", str(node.dir / "containerd" / "config.toml"), "--log-level", "warn"]


def kubelet_argv(node: Node, bin_dir: Path, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kubelet"),
        f"--config={node.dir / 'kubelet.yaml'}",
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node.name}",
        f"--node-ip={node.ip}",
        f"--root-dir={node.dir / 'kubelet'}",
        f"--cert-dir={node.dir / 'kubelet-pki'}",
        "--node-labels=ffrtmp.io/worker=true",
        "--v=1",
    ]


def write_cni(node: Node) -> None:
    conf = node.dir / "cni" / "net.d" / "10-ffrtmp.conflist"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(json.dumps(net.cni_config(node.index, node.dir / "cni" / "ipam"), indent=2))


def containerd_ready(node: Node) -> bool:
    if not node.socket.exists():
        return False
    done = subprocess.run(
        ["ctr", "--address", str(node.socket), "version"], capture_output=True, timeout=10, check=False
    )
    return done.returncode == 0


def image_digest(node: Node, ref: str) -> str | None:
    for line in node.ctr("images", "ls").splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == ref:
            return fields[2]
    return None


def import_image(node: Node, archive: Path, ref: str, digest: str) -> bool:
    """Import the archive unless the node already holds ref at digest; True when it imported."""
    if image_digest(node, ref) == digest:
        return False
    node.ctr("images", "import", "--no-unpack=false", str(archive), timeout=600)
    got = image_digest(node, ref)
    if got != digest:
        raise RuntimeError(f"{node.name}: importing {archive} gave {ref} at {got}, expected {digest}")
    return True


def remove_leftover_containers(node: Node) -> int:
    """Containers of an earlier run still in the kept image store (their pods are gone with etcd)."""
    ids = node.ctr("containers", "ls", "-q", check=False).split()
    for cid in ids:
        node.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
        node.ctr("tasks", "delete", "-f", cid, check=False)
        node.ctr("containers", "delete", cid, check=False)
    return len(ids)


# -- teardown -----------------------------------------------------------------------------------------


def _cgroup_dirs(node: Node) -> list[Path]:
    """The node's cgroup subtree in every v1 hierarchy (and the v2 one), deepest first."""
    found = []
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
        top = hierarchy / node.cgroup.lstrip("/")
        if top.is_dir():
            found += [Path(d) for d, _, _ in os.walk(top)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _pids_in(dirs: list[Path]) -> set[int]:
    pids: set[int] = set()
    for d in dirs:
        try:
            pids |= {int(x) for x in (d / "cgroup.procs").read_text().split()}
        except (OSError, ValueError):
            pass
    return pids


def _shims(node: Node) -> list[int]:
    """containerd-shim-runc-v2 processes started for this node's containerd (they outlive it)."""
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(node.socket).encode() in argv:
            out.append(int(proc.name))
    return out


def _netns_of(pids: set[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            inodes.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
        except OSError:
            pass
    return inodes


def _remove_netns(inodes: set[int]) -> list[str]:
    removed = []
    base = Path("/run/netns")
    for ns in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            if os.stat(ns).st_ino in inodes:
                net.delete_netns(ns.name)
                removed.append(ns.name)
        except OSError:
            pass
    return removed


def mounts_under(*roots: Path) -> list[str]:
    """Mount points under any of roots, deepest first (from /proc/self/mountinfo)."""
    prefixes = [str(r.resolve()) for r in roots]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_all(*roots: Path) -> int:
    n = 0
    for _ in range(3):  # a lazy unmount can reveal a mount under it
        points = mounts_under(*roots)
        if not points:
            break
        for point in points:
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
            n += 1
    return n


def teardown(node: Node) -> list[str]:
    """Everything the node made, gone: its pods' processes, shims, netns, mounts and cgroups. The caller
    stops the kubelet and containerd processes (before: they would restart pods; this kills the rest)."""
    done: list[str] = []
    dirs = _cgroup_dirs(node)
    pids = _pids_in(dirs) | set(_shims(node))
    netns = _netns_of(_pids_in(dirs))
    for _ in range(50):
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
        pids = _pids_in(dirs) | set(_shims(node))
    if pids:
        done.append(f"WARNING: processes {sorted(pids)} of {node.name} did not die")
    removed = _remove_netns(netns)
    if removed:
        done.append(f"{len(removed)} netns")
    n = unmount_all(node.dir, node.image_store)
    if n:
        done.append(f"{n} mounts")
    gone = 0
    for d in dirs:
        try:
            d.rmdir()
            gone += 1
        except OSError:  # still busy: the second pass, after containerd stopped, takes it
            pass
    if gone:
        done.append(f"{gone} cgroups")
    return done
