"""The local stack behind `make up` / `make down`: etcd, kube-apiserver, the operator and n standalone agents,
each a detached process with .dev/pids/<part>.pid and .dev/logs/<part>.log.

The parts are a table (`parts()`); `up` walks it in order and starts whatever is missing, dead or started
with other arguments, then waits until each is ready. State (etcd data, keys, ports) stays in .dev, so a
restart keeps the cluster's objects and the kubeconfig stays valid.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import controlplane as cp
from . import procs
from .pki import ensure_pki

DEFAULT_DEV_DIR = cp.REPO / ".dev"


@dataclass(frozen=True)
class StackConfig:
    dev_dir: Path
    agents: int = 2
    slots: int = 2
    metrics_port: int = 9090  # operator; agent i serves on metrics_port + i (9091, 9092, ...)
    system_namespace: str = "ffrtmp-system"


@dataclass(frozen=True)
class Ctx:
    cfg: StackConfig
    lay: cp.Layout

    def env(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.lay.kubeconfig),
            "PATH": f"{self.lay.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }


@dataclass(frozen=True)
class Part:
    name: str
    argv: Callable[[Ctx], list[str]]
    ready: Callable[[Ctx], bool]
    module: str | None = None  # a Python module that must exist before this part can run
    after_ready: Callable[[Ctx], None] | None = None
    timeout_s: float = 60.0
    ports: Callable[[Ctx], list[int]] = field(default=lambda ctx: [])


def _metrics_ready(port: int) -> Callable[[Ctx], bool]:
    return lambda ctx: port == 0 or procs.http_ok(f"http://127.0.0.1:{port}/metrics")


def _install(ctx: Ctx) -> None:
    with cp.api_client_for(ctx.lay.kubeconfig) as api:
        cp.install_base(api, system_namespace=ctx.cfg.system_namespace)


def _agent(i: int, cfg: StackConfig) -> Part:
    port = cfg.metrics_port + i if cfg.metrics_port else 0
    return Part(
        name=f"agent-{i}",
        module="ffrtmp_agent.__main__",
        argv=lambda ctx: [
            sys.executable,
            "-m",
            "ffrtmp_agent",
            "--standalone",
            "--node-name",
            f"ffrtmp-local-{i}",
            "--slots",
            str(ctx.cfg.slots),
            "--metrics-port",
            str(port),
            "--system-namespace",
            ctx.cfg.system_namespace,
            "--work-dir",
            str(ctx.cfg.dev_dir / "agents" / str(i)),
        ],
        ready=_metrics_ready(port),
        ports=lambda ctx: [port] if port else [],
    )


def parts(cfg: StackConfig) -> list[Part]:
    """The stack in start order."""
    op_port = cfg.metrics_port
    return [
        Part(
            name="etcd",
            argv=lambda ctx: cp.etcd_argv(ctx.lay),
            ready=lambda ctx: cp.etcd_ready(ctx.lay),
            ports=lambda ctx: [ctx.lay.etcd_port, ctx.lay.etcd_peer_port],
        ),
        Part(
            name="kube-apiserver",
            argv=lambda ctx: cp.apiserver_argv(ctx.lay),
            ready=lambda ctx: cp.apiserver_ready(ctx.lay),
            after_ready=_install,
            ports=lambda ctx: [ctx.lay.apiserver_port],
        ),
        Part(
            name="operator",
            module="ffrtmp_operator.__main__",
            argv=lambda ctx: [
                sys.executable,
                "-m",
                "ffrtmp_operator",
                "--metrics-port",
                str(op_port),
                "--system-namespace",
                ctx.cfg.system_namespace,
                # examples/live-restream.yaml: a developer's nginx-rtmp on this machine, that
                # port only (etcd and the API server on loopback stay out of jobs' reach)
                "--egress-allow",
                "127.0.0.1:1935",
            ],
            ready=_metrics_ready(op_port),
            ports=lambda ctx: [op_port] if op_port else [],
        ),
        *[_agent(i, cfg) for i in range(1, cfg.agents + 1)],
    ]


def _stop_rank(name: str) -> int:
    """Stop order: agents first (they run job processes), then operator, apiserver, etcd."""
    return {"operator": 1, "kube-apiserver": 2, "etcd": 3}.get(name, 0)


class Stack:
    """The local stack kept in one dev dir: `up`, `down`, `status`."""

    def __init__(self, dev_dir: Path = DEFAULT_DEV_DIR, *, say: Callable[[str], None] = print) -> None:
        self.dev = dev_dir.resolve()
        self.say = say

    # -- state in .dev ---------------------------------------------------------------------------
    def _state_file(self) -> Path:
        return self.dev / "stack.json"

    def _load_state(self) -> dict:
        try:
            return json.loads(self._state_file().read_text())
        except FileNotFoundError:
            return {}

    def _layout(self, *, create: bool) -> cp.Layout | None:
        state = self._load_state()
        if "ports" not in state:
            if not create:
                return None
            # chosen once: a restarted stack must keep its addresses (kubeconfig, etcd peer URL)
            state["ports"] = dict(zip(("etcd_port", "etcd_peer_port", "apiserver_port"), procs.free_ports(3)))
            self.dev.mkdir(parents=True, exist_ok=True)
            self._state_file().write_text(json.dumps(state, indent=2))
        bin_dir = Path(state["bin_dir"]) if not create and "bin_dir" in state else cp.find_bin_dir()
        return cp.Layout(work_dir=self.dev, bin_dir=bin_dir, **state["ports"])

    def _save_config(self, cfg: StackConfig, lay: cp.Layout) -> None:
        state = self._load_state()
        state["config"] = {k: v for k, v in asdict(cfg).items() if k != "dev_dir"}
        state["bin_dir"] = str(lay.bin_dir)
        self._state_file().write_text(json.dumps(state, indent=2))

    def _pid_file(self, name: str) -> Path:
        return self.dev / "pids" / f"{name}.pid"

    def _marker(self, name: str) -> str:
        return f"{self.dev}:{name}"

    def _pid(self, name: str) -> int | None:
        """The part's pid if it is running and ours, else None."""
        try:
            pid = int(self._pid_file(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if procs.owned(pid, self._marker(name)) else None

    def _recorded_parts(self) -> list[str]:
        pid_dir = self.dev / "pids"
        return sorted(p.stem for p in pid_dir.glob("*.pid")) if pid_dir.exists() else []

    # -- commands --------------------------------------------------------------------------------
    def up(self, cfg: StackConfig) -> cp.Layout:
        """Start what is missing and wait until all is ready; the control plane's layout."""
        lay = self._layout(create=True)
        assert lay is not None
        ensure_pki(lay.pki.dir)
        cp.write_kubeconfig(lay)
        ctx = Ctx(cfg=cfg, lay=lay)
        wanted = parts(cfg)
        for extra in set(self._recorded_parts()) - {p.name for p in wanted}:
            self._stop(extra, why="not wanted any more")
        for part in wanted:
            self._ensure(part, ctx)
        self._save_config(cfg, lay)
        self._write_env(lay)
        self.say(f"stack up: KUBECONFIG={lay.kubeconfig} (source {self.dev / 'env'})")
        return lay

    def _ensure(self, part: Part, ctx: Ctx) -> None:
        if part.module and not _module_exists(part.module):
            self.say(f"{part.name}: NOT STARTED: Python module {part.module} does not exist yet")
            return
        argv = part.argv(ctx)
        pid = self._pid(part.name)
        if pid is not None and procs.cmdline(pid) != argv:
            self._stop(part.name, why="started with other arguments")
            pid = None
        if pid is None:
            busy = [p for p in part.ports(ctx) if procs.port_in_use(p)]
            if busy:
                who = "; ".join(procs.listener(p) for p in busy)
                raise RuntimeError(f"{part.name}: port(s) {busy} are taken by another process ({who})")
            proc = procs.start(
                argv,
                log=self.dev / "logs" / f"{part.name}.log",
                marker=self._marker(part.name),
                env=ctx.env(),
                cwd=cp.REPO,
            )
            pid = proc.pid
            self._pid_file(part.name).parent.mkdir(parents=True, exist_ok=True)
            self._pid_file(part.name).write_text(f"{pid}\n")
            action = "started"
        else:
            action = "already running"
        marker = self._marker(part.name)
        procs.wait_until(
            lambda: part.ready(ctx),
            timeout_s=part.timeout_s,
            what=part.name,
            alive=lambda: procs.owned(pid, marker),
            log=self.dev / "logs" / f"{part.name}.log",
        )
        if part.after_ready:
            part.after_ready(ctx)
        self.say(f"{part.name}: {action} (pid {pid}), ready")

    def _stop(self, name: str, *, why: str) -> None:
        pid = self._pid(name)
        if pid is not None:
            how = procs.stop(pid, marker=self._marker(name))
            self.say(f"{name}: stopped (pid {pid}, {how}; {why})")
        self._pid_file(name).unlink(missing_ok=True)

    def down(self) -> None:
        for name in sorted(self._recorded_parts(), key=_stop_rank):
            self._stop(name, why="down")
        self.say("stack down (state kept in " + str(self.dev) + ")")

    def status(self) -> bool:
        """Print each part's state; True when every recorded or expected part runs and is ready."""
        lay = self._layout(create=False)
        state = self._load_state()
        if lay is None:
            self.say("stack: never started here (make up)")
            return False
        cfg = StackConfig(dev_dir=self.dev, **state.get("config", {}))
        ctx = Ctx(cfg=cfg, lay=lay)
        healthy = True
        for part in parts(cfg):
            pid = self._pid(part.name)
            if pid is None:
                missing = part.module and not _module_exists(part.module)
                self.say(f"{part.name}: {'not available (no module ' + part.module + ')' if missing else 'stopped'}")
                healthy = healthy and bool(missing)
                continue
            ready = part.ready(ctx)
            healthy = healthy and ready
            self.say(f"{part.name}: running (pid {pid}), {'ready' if ready else 'NOT ready'}")
        return healthy

    def _write_env(self, lay: cp.Layout) -> None:
        (self.dev / "env").write_text(
            "# source this file: kubectl and helm from the built assets, the local stack's kubeconfig\n"
            f'export PATH="{lay.bin_dir}:$PATH"\n'
            f'export KUBECONFIG="{lay.kubeconfig}"\n'
        )


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False
