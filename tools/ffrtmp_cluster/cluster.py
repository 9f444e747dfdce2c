"""`make cluster` / `make down` / `make cluster-status`: the real cluster on this machine, kept in
<dev>/cluster (state, keys, node dirs) with the same contract as `make up`: <dev>/kubeconfig, <dev>/env,
<dev>/logs/<part>.log, <dev>/pids/<part>.pid. `up` starts whatever is missing and is safe to rerun;
`down` removes every process, container, mount, netns, veth, bridge, iptables rule and cgroup it made
(the nodes' image stores under ~/.cache/ffrtmp/cluster-images stay, so the next `up` imports nothing).

Only one cluster runs on a machine at a time (fixed addresses and bridge names): /run/ffrtmp-cluster.owner
names the dev dir that holds it. (About 400 lines: up, down and status share the part and state helpers.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ffrtmp_stack import procs

from . import control, image, net, node, pause, pki

REPO = Path(__file__).resolve().parents[2]
OWNER = Path("/run/ffrtmp-cluster.owner")
IMAGE_STORES = image.CACHE.parent / "cluster-images"
RELEASE = "ffrtmp"
NAMESPACE = "ffrtmp-system"
CONTROL_PARTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
STACK_PARTS = ("operator", "etcd", "kube-apiserver")


@dataclass(frozen=True)
class UpConfig:
    nodes: int = 1
    archive: Path | None = None  # default dist/ffrtmp-<version>.tar
    helm_args: tuple[str, ...] = ()
    timeout_s: float = 300.0


class Cluster:
    def __init__(self, dev: Path, *, say: Callable[[str], None] = print) -> None:
        self.dev = dev.resolve()
        self.dir = self.dev / "cluster"
        self.say = say

    # -- state -----------------------------------------------------------------------------------
    def _state(self) -> dict:
        try:
            return json.loads((self.dir / "state.json").read_text())
        except FileNotFoundError:
            return {}

    def _save(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "state.json").write_text(json.dumps(state, indent=2))

    def _marker(self, part: str) -> str:
        return f"{self.dev}:cluster:{part}"

    def _pid_file(self, part: str) -> Path:
        return self.dev / "pids" / f"{part}.pid"

    def _log(self, part: str) -> Path:
        return self.dev / "logs" / f"{part}.log"

    def pid(self, part: str) -> int | None:
        try:
            pid = int(self._pid_file(part).read_text())
        except (FileNotFoundError, ValueError):
            pid = None
        if pid and procs.owned(pid, self._marker(part)):
            return pid
        return self._find(part)

    def _find(self, part: str) -> int | None:
        """A part whose pid file is gone (e.g. removed by `make up` in the same dev dir) is still ours by
        its marker."""
        want = f"{procs.MARKER_ENV}={self._marker(part)}".encode()
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if want in (proc / "environ").read_bytes().split(b"\0") and procs.owned(
                    int(proc.name), self._marker(part)
                ):
                    return int(proc.name)
            except OSError:
                continue
        return None

    def nodes(self, count: int) -> list[node.Node]:
        return [
            node.Node(i, self.dir / "nodes" / f"ffrtmp-node-{i}", IMAGE_STORES / f"ffrtmp-node-{i}")
            for i in range(1, count + 1)
        ]

    # -- starting parts --------------------------------------------------------------------------
    def _ensure(
        self,
        part: str,
        argv: list[str],
        ready: Callable[[], bool],
        *,
        timeout_s: float = 90,
        ports: tuple[tuple[str, int], ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        pid = self.pid(part)
        if pid is not None and procs.cmdline(pid) != argv:
            self._stop(part, why="started with other arguments")
            pid = None
        action = "already running"
        if pid is None:
            for host, port in ports:
                if _listening(host, port):
                    raise RuntimeError(
                        f"{part}: port {host}:{port} is in use by another process "
                        f"({procs.listener(port) or 'unknown'}); stop it or `make down`"
                    )
            proc = procs.start(argv, log=self._log(part), marker=self._marker(part), env=env, cwd=REPO)
            pid = proc.pid
            self._pid_file(part).parent.mkdir(parents=True, exist_ok=True)
            self._pid_file(part).write_text(f"{pid}\n")
            action = "started"
        t0 = time.monotonic()
        marker = self._marker(part)
        procs.wait_until(
            ready, timeout_s=timeout_s, what=part, alive=lambda: procs.owned(pid, marker), log=self._log(part)
        )
        self.say(f"{part}: {action} (pid {pid}), ready in {time.monotonic() - t0:.1f} s")

    def _stop(self, part: str, *, why: str, grace_s: float = 10.0) -> None:
        pid = self.pid(part)
        if pid is not None:
            how = procs.stop(pid, marker=self._marker(part), grace_s=grace_s)
            self.say(f"{part}: stopped ({how}; {why})")
        self._pid_file(part).unlink(missing_ok=True)

    # -- up ----------------------------------------------------------------------------------------
    def _preflight(self, cfg: UpConfig) -> Path:
        if os.geteuid() != 0:
            raise RuntimeError("make cluster needs root (containerd, kubelet, bridges, iptables)")
        missing = [t for t in ("containerd", "runc", "ctr", "iptables", "ip", "mount") if shutil.which(t) is None]
        if not Path("/usr/lib/cni/bridge").exists():
            missing.append("containernetworking-plugins (/usr/lib/cni)")
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)}: run `make setup`")
        archive = cfg.archive or REPO / "dist" / f"ffrtmp-{image.version()}.tar"
        if not archive.is_file():
            raise RuntimeError(f"image archive {archive} is missing: run `make image` first")
        owner = OWNER.read_text().strip() if OWNER.exists() else ""
        if owner and owner != str(self.dev) and Path(owner, "cluster", "state.json").exists():
            raise RuntimeError(
                f"a cluster from {owner} runs on this machine: `make down DEV={owner}` first (one cluster per machine)"
            )
        stack = [
            p
            for p in STACK_PARTS
            if (self.dev / "pids" / f"{p}.pid").exists()
            and procs.owned(_int(self.dev / "pids" / f"{p}.pid"), f"{self.dev}:{p}")
        ]
        if stack:
            raise RuntimeError(f"the local stack (`make up`) runs in {self.dev}: `make down` first, or use another DEV")
        return archive

    def up(self, cfg: UpConfig) -> None:
        began = time.monotonic()
        archive = self._preflight(cfg)
        bin_dir = _cluster_bins()
        OWNER.write_text(f"{self.dev}\n")
        state = self._state()
        old_nodes = int(state.get("nodes", 0))
        state.update(nodes=max(cfg.nodes, old_nodes), bin_dir=str(bin_dir))
        if "ports" not in state:
            state["ports"] = dict(zip(("etcd", "etcd_peer", "kcm", "scheduler"), procs.free_ports(4)))
        self._save(state)
        p = control.Paths(self.dir, bin_dir)
        nodes = self.nodes(cfg.nodes)
        ids = [
            pki.ADMIN,
            pki.CONTROLLER_MANAGER,
            pki.SCHEDULER,
            pki.KUBE_PROXY,
            *[pki.node_identity(n.name) for n in nodes],
        ]
        keys = pki.ensure(p.pki.dir, ips=["127.0.0.1", net.CONTROL_IP, net.KUBERNETES_SERVICE_IP], identities=ids)
        for who, name in (
            (pki.ADMIN, "admin"),
            (pki.CONTROLLER_MANAGER, "kube-controller-manager"),
            (pki.SCHEDULER, "kube-scheduler"),
            (pki.KUBE_PROXY, "kube-proxy"),
        ):
            control.kubeconfig(keys, who, p.kubeconfig(name))
        net.setup(cfg.nodes, state)
        self._save(state)

        ports = state["ports"]
        admin = p.kubeconfig("admin")
        self._ensure(
            "etcd",
            control.etcd_argv(p, ports["etcd"], ports["etcd_peer"]),
            lambda: procs.http_ok(f"http://127.0.0.1:{ports['etcd']}/health"),
            ports=(("127.0.0.1", ports["etcd"]), ("127.0.0.1", ports["etcd_peer"])),
        )
        self._ensure(
            "kube-apiserver",
            control.apiserver_argv(p, ports["etcd"]),
            lambda: procs.http_ok(f"{control.server()}/readyz", token=keys.token(pki.ADMIN), ca_file=keys.ca_cert),
            ports=((net.CONTROL_IP, control.APISERVER_PORT),),
        )
        self._ensure(
            "kube-controller-manager",
            control.controller_manager_argv(p, ports["kcm"]),
            lambda: _https_ok(f"https://127.0.0.1:{ports['kcm']}/healthz"),
            ports=(("127.0.0.1", ports["kcm"]),),
        )
        self._ensure(
            "kube-scheduler",
            control.scheduler_argv(p, ports["scheduler"]),
            lambda: _https_ok(f"https://127.0.0.1:{ports['scheduler']}/healthz"),
            ports=(("127.0.0.1", ports["scheduler"]),),
        )

        for extra in self.nodes(old_nodes)[cfg.nodes :]:
            self._down_node(extra, why=f"NODES={cfg.nodes}")
            _kubectl(admin, bin_dir, "delete", "node", extra.name, "--ignore-not-found")
        state["nodes"] = cfg.nodes
        self._save(state)
        ref = f"{image.NAME}:{image.version()}"
        digest = _archive_digest(archive, ref)
        pause_archive = pause.build()
        for n in nodes:
            self._up_node(n, p, keys, archive=archive, ref=ref, digest=digest, pause_archive=pause_archive)
        # kube-proxy after the nodes: it waits for its Node object before it programs anything
        control.kube_proxy_config(p, nodes[0].name)
        self._ensure(
            "kube-proxy",
            control.kube_proxy_argv(p),
            lambda: procs.http_ok(f"http://{net.CONTROL_IP}:10256/healthz"),
            ports=((net.CONTROL_IP, 10256),),
            timeout_s=60,
        )
        _wait_nodes_ready(admin, bin_dir, [n.name for n in nodes], timeout_s=120)
        # the kubelets set it when they register; a node registered before (a rerun) gets it here
        _kubectl(admin, bin_dir, "label", "node", "--overwrite", *[n.name for n in nodes], "ffrtmp.io/worker=true")
        self._write_env(admin, bin_dir)
        self._helm(admin, bin_dir, ref, cfg)
        state["image"] = {"ref": ref, "digest": digest}
        self._save(state)
        self.say(
            f"cluster up with {cfg.nodes} node(s) in {time.monotonic() - began:.1f} s: "
            f"KUBECONFIG={self.dev / 'kubeconfig'} (source {self.dev / 'env'})"
        )

    def _up_node(
        self,
        n: node.Node,
        p: control.Paths,
        keys: pki.Pki,
        *,
        archive: Path,
        ref: str,
        digest: str,
        pause_archive: Path,
    ) -> None:
        n.dir.mkdir(parents=True, exist_ok=True)
        n.image_store.mkdir(parents=True, exist_ok=True)
        node.write_cni(n)
        node.containerd_config(n, pause.REF)
        part = f"containerd-{n.name}"
        fresh = self.pid(part) is None
        self._ensure(part, node.containerd_argv(n), lambda: node.containerd_ready(n))
        if fresh:
            left = node.remove_leftover_containers(n)
            if left:
                self.say(f"{n.name}: removed {left} containers of an earlier run")
        t0 = time.monotonic()
        node.import_image(n, pause_archive, pause.REF, _archive_digest(pause_archive, pause.REF))
        if node.import_image(n, archive, ref, digest):
            self.say(f"{n.name}: imported {ref} ({digest[:19]}) in {time.monotonic() - t0:.1f} s")
        kc = control.kubeconfig(keys, pki.node_identity(n.name), n.dir / "kubeconfig")
        node.kubelet_config(n, keys.ca_cert)
        node.ensure_cgroup(n)
        self._ensure(
            f"kubelet-{n.name}", node.kubelet_argv(n, p.bin_dir, kc), lambda: _kubelet_healthy(n), timeout_s=60
        )

    def _helm(self, admin: Path, bin_dir: Path, ref: str, cfg: UpConfig) -> None:
        repo, _, tag = ref.rpartition(":")
        env = {
            **os.environ,
            "KUBECONFIG": str(admin),
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HELM_CACHE_HOME": str(self.dir / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(self.dir / "helm" / "config"),
            "HELM_DATA_HOME": str(self.dir / "helm" / "data"),
        }
        installed = (
            subprocess.run(
                [str(bin_dir / "helm"), "status", RELEASE, "-n", NAMESPACE], env=env, capture_output=True, check=False
            ).returncode
            == 0
        )
        verb = ["upgrade"] if installed else ["install", "--create-namespace"]
        argv = [
            str(bin_dir / "helm"),
            *verb,
            RELEASE,
            str(REPO / "helm" / "ffrtmp"),
            "-n",
            NAMESPACE,
            "--set",
            f"image.repository={repo},image.tag={tag},image.pullPolicy=Never",
            *cfg.helm_args,
            "--wait",
            "--timeout",
            f"{int(cfg.timeout_s)}s",
        ]
        t0 = time.monotonic()
        self.say(f"helm {verb[0]} {RELEASE} (image {ref}, pullPolicy Never)...")
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"helm {verb[0]} failed: {done.stderr.strip()}; pods: "
                f"{_kubectl(admin, bin_dir, 'get', 'pods', '-A', '-o', 'wide', check=False)}"
            )
        # helm's --wait counts a DaemonSet ready at desired - maxUnavailable: wait for every agent
        for what in (f"deployment/{RELEASE}-operator", f"daemonset/{RELEASE}-agent"):
            _kubectl(admin, bin_dir, "rollout", "status", "-n", NAMESPACE, what, f"--timeout={int(cfg.timeout_s)}s")
        self.say(f"helm {verb[0]}: operator Deployment and agent DaemonSet ready in {time.monotonic() - t0:.1f} s")

    def _write_env(self, admin: Path, bin_dir: Path) -> None:
        kubeconfig = self.dev / "kubeconfig"
        shutil.copy2(admin, kubeconfig)
        (self.dev / "env").write_text(
            "# source this file: kubectl and helm from the built assets, `make cluster`'s kubeconfig\n"
            f'export PATH="{bin_dir}:$PATH"\n'
            f'export KUBECONFIG="{kubeconfig}"\n'
        )

    # -- down --------------------------------------------------------------------------------------
    def _down_node(self, n: node.Node, *, why: str) -> None:
        self._stop(f"kubelet-{n.name}", why=why, grace_s=5)
        done = node.teardown(n)  # the pods' processes first, while containerd can still clean up after them
        if self.pid(f"containerd-{n.name}") is not None:
            node.remove_leftover_containers(n)
        self._stop(f"containerd-{n.name}", why=why, grace_s=5)
        done += node.teardown(n)
        shutil.rmtree(n.dir, ignore_errors=True)
        self.say(f"{n.name}: removed ({', '.join(done) or 'nothing left'})")

    def down(self) -> bool:
        """Stop and remove everything; True when there was a cluster here."""
        state = self._state()
        if not state and not any(self.pid(p) for p in CONTROL_PARTS):
            return False
        for n in self.nodes(int(state.get("nodes", 0)) or _count_nodes(self.dir)):
            self._down_node(n, why="down")
        self._stop("kube-proxy", why="down")
        bin_dir = Path(state.get("bin_dir", "")) if state.get("bin_dir") else None
        if bin_dir and (self.dir / "kube-proxy.yaml").exists():
            subprocess.run(
                [str(bin_dir / "kube-proxy"), "--cleanup", f"--config={self.dir / 'kube-proxy.yaml'}"],
                capture_output=True,
                check=False,
            )
        for part in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            self._stop(part, why="down")
        removed = net.teardown(state)
        self.say(f"network: removed {', '.join(removed) or 'nothing'}")
        shutil.rmtree(self.dir, ignore_errors=True)
        for name in ("kubeconfig", "env"):
            path = self.dev / name
            if path.exists() and control.CONTEXT in path.read_text():
                path.unlink()
        if OWNER.exists() and OWNER.read_text().strip() == str(self.dev):
            OWNER.unlink()
        self.say(f"cluster down (images kept in {IMAGE_STORES})")
        return True

    # -- status ------------------------------------------------------------------------------------
    def status(self) -> bool:
        state = self._state()
        if not state:
            self.say("cluster: not started here (make cluster)")
            return False
        healthy = True
        parts = list(CONTROL_PARTS)
        for n in self.nodes(int(state.get("nodes", 1))):
            parts += [f"containerd-{n.name}", f"kubelet-{n.name}"]
        for part in parts:
            pid = self.pid(part)
            healthy = healthy and pid is not None
            self.say(f"{part}: {f'running (pid {pid})' if pid else 'STOPPED'}")
        if healthy:
            bin_dir = Path(state["bin_dir"])
            self.say(_kubectl(self.dev / "kubeconfig", bin_dir, "get", "nodes", "-o", "wide", check=False))
            self.say(
                _kubectl(self.dev / "kubeconfig", bin_dir, "get", "pods", "-n", NAMESPACE, "-o", "wide", check=False)
            )
        return healthy


# -- helpers ---------------------------------------------------------------------------------------


def _int(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return -1


def _count_nodes(cluster_dir: Path) -> int:
    d = cluster_dir / "nodes"
    return len(list(d.iterdir())) if d.is_dir() else 0


def _cluster_bins() -> Path:
    done = subprocess.run(
        [str(REPO / "tools" / "binaries.sh"), "--cluster"], stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError("tools/binaries.sh --cluster failed (see above)")
    return Path(done.stdout.strip().splitlines()[-1])


def _listening(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _https_ok(url: str) -> bool:
    import ssl
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # self-signed serving cert of a local part
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return resp.status == 200
    except OSError:
        return False


def _kubelet_healthy(n: node.Node) -> bool:
    return procs.http_ok(f"http://{n.ip}:10248/healthz")


def _kubectl(kubeconfig: Path, bin_dir: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        [str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout + (done.stderr if done.returncode else "")


def _wait_nodes_ready(kubeconfig: Path, bin_dir: Path, names: list[str], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        out = _kubectl(kubeconfig, bin_dir, "get", "nodes", "-o", "json", check=False)
        try:
            items = json.loads(out)["items"]
        except (ValueError, KeyError):
            items = []
        ready = {
            i["metadata"]["name"]
            for i in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in i["status"].get("conditions", []))
        }
        if set(names) <= ready:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"nodes {sorted(set(names) - ready)} not Ready after {timeout_s:.0f} s (see .dev/logs/kubelet-*.log)"
            )
        time.sleep(1)


def _archive_digest(archive: Path, ref: str) -> str:
    from . import oci

    try:
        index = oci.read_archive(archive).get("index.json", {})
    except (ValueError, OSError) as exc:
        raise RuntimeError(f"{archive}: {exc}") from None
    for m in index.get("manifests", []):
        if (m.get("annotations") or {}).get("io.containerd.image.name") == ref:
            return m["digest"]
    raise RuntimeError(f"{archive} holds no image named {ref}: rebuild it with `make image`")
