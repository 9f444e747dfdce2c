"""`ffrtmp-agent` / `python -m ffrtmp_agent`: probe the node, label and annotate it, keep the heartbeat
Lease fresh, serve node metrics, and in standalone mode register the Node and run its job pods.

Runs until SIGTERM/SIGINT; then it stops its job processes (standalone) and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ffrtmp_api as api
from ffrtmp_api import logs
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .kubelet import registration
from .kubelet.standalone import ApiTarget, StandaloneRunner
from .node import labels, lease, metrics, probe

log = logging.getLogger("ffrtmp_agent")
RESYNC_SECONDS = 60.0  # how often the node's labels are re-read (written only when they drifted)


@dataclass(frozen=True)
class AgentSettings:
    node_name: str
    """The Node this agent speaks for (the DaemonSet passes spec.nodeName as $NODE_NAME)."""
    standalone: bool = False
    """Register the Node and run its job pods as local processes (no kubelet on this machine)."""
    slots: int = 2
    """Jobs this node runs at once; published on the Lease for the scheduler."""
    system_namespace: str = api.DEFAULT_SYSTEM_NAMESPACE
    """Where the heartbeat Lease lives."""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9091
    """0 turns the metrics endpoint off."""
    work_dir: Path = Path("/var/lib/ffrtmp-agent")
    """Standalone: per-pod directories (logs, kubeconfig, emptyDirs)."""
    lease_seconds: int = 15
    """leaseDurationSeconds: the operator calls the node lost this long after the last renewal."""
    renew_seconds: float = 5.0
    """Renewal period; a third of the lease leaves room for two missed renewals."""
    token_seconds: int = 3600
    """Standalone: lifetime of each job pod's ServiceAccount token; renewed at 80 % of it."""
    token_renew_seconds: float | None = None
    """Standalone: renew tokens this often instead of at 80 % of their lifetime (tests)."""


def parse_args(argv: list[str] | None = None) -> AgentSettings:
    p = argparse.ArgumentParser(prog="ffrtmp-agent", description=__doc__.splitlines()[0])
    p.add_argument("--node-name", default=os.environ.get("NODE_NAME"), help="default: $NODE_NAME")
    p.add_argument("--standalone", action="store_true", help="register the Node and run its job pods locally")
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--system-namespace", default=api.DEFAULT_SYSTEM_NAMESPACE)
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.add_argument("--metrics-port", type=int, default=9091, help="0 = off")
    p.add_argument("--work-dir", type=Path, default=Path("/var/lib/ffrtmp-agent"))
    p.add_argument("--lease-seconds", type=int, default=15)
    p.add_argument("--renew-seconds", type=float, default=5.0)
    p.add_argument(
        "--token-seconds",
        type=int,
        default=3600,
        help="standalone: lifetime of each job pod's ServiceAccount token (renewed at 80%%; min 600)",
    )
    p.add_argument(
        "--token-renew-seconds",
        type=float,
        default=None,
        help="standalone: renew job pods' tokens this often instead (tests)",
    )
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args(argv)
    if not a.node_name:
        p.error("--node-name (or $NODE_NAME) is required")
    if a.slots < 1 or a.lease_seconds < 1 or a.renew_seconds <= 0 or a.renew_seconds >= a.lease_seconds:
        p.error("need --slots >= 1, --lease-seconds >= 1 and 0 < --renew-seconds < --lease-seconds")
    if a.token_seconds < 600 or (a.token_renew_seconds is not None and a.token_renew_seconds <= 0):
        p.error("need --token-seconds >= 600 (the API server's minimum) and --token-renew-seconds > 0")
    try:
        logs.configure(verbose=a.verbose)
    except ValueError as exc:  # a bad $FFRTMP_LOG_FORMAT
        p.error(str(exc))
    return AgentSettings(
        node_name=a.node_name,
        standalone=a.standalone,
        slots=a.slots,
        system_namespace=a.system_namespace,
        metrics_host=a.metrics_host,
        metrics_port=a.metrics_port,
        work_dir=a.work_dir.resolve(),
        lease_seconds=a.lease_seconds,
        renew_seconds=a.renew_seconds,
        token_seconds=a.token_seconds,
        token_renew_seconds=a.token_renew_seconds,
    )


def load_kube_config() -> client.ApiClient:
    if os.environ.get("KUBECONFIG"):
        config.load_kube_config()
    else:
        config.load_incluster_config()
    return client.ApiClient()


def api_target(api_client: client.ApiClient) -> ApiTarget:
    cfg = api_client.configuration
    ca_pem = Path(cfg.ssl_ca_cert).read_text() if cfg.ssl_ca_cert else None
    return ApiTarget(server=cfg.host, ca_pem=ca_pem, insecure=not cfg.verify_ssl)


def heartbeat_loop(
    settings: AgentSettings, api_client: client.ApiClient, found: probe.Probe, stop: threading.Event
) -> None:
    """Renew the Lease every renew_seconds; re-check the node's labels every RESYNC_SECONDS."""
    core = client.CoreV1Api(api_client)
    beat = lease.Heartbeat(
        client.CoordinationV1Api(api_client),
        settings.node_name,
        namespace=settings.system_namespace,
        slots=settings.slots,
        lease_seconds=settings.lease_seconds,
    )
    next_sync = time.monotonic() + RESYNC_SECONDS
    while not stop.is_set():
        started = time.monotonic()
        try:
            beat.renew(datetime.now(UTC))
            if started >= next_sync:
                labels.sync_node_metadata(core, settings.node_name, labels=found.labels, hardware=found.hardware)
                next_sync = started + RESYNC_SECONDS
        except Exception as exc:  # API down for a moment: keep trying, the lease has slack for it
            log.warning("heartbeat failed: %s", exc)
        stop.wait(max(0.0, settings.renew_seconds - (time.monotonic() - started)))


def run(settings: AgentSettings, stop: threading.Event) -> None:
    api_client = load_kube_config()
    core = client.CoreV1Api(api_client)
    found = probe.probe_node(slots=settings.slots)
    log.info(
        "probe: %d cores, gpu=%s, proven encoders: %s",
        found.hardware["cpu"]["cores"],
        found.hardware["gpu"],
        ", ".join(found.hardware["encoders"]["proven"]) or "none",
    )
    for trial in found.trials:
        if not trial.ok:
            log.info("encoder %s not proven: %s", trial.encoder, trial.error)
    metrics.serve(
        settings.node_name,
        host=settings.metrics_host,
        port=settings.metrics_port,
        slots=settings.slots,
        trials={t.encoder: t.ok for t in found.trials},
        stop=stop,
        own_children_only=settings.standalone,
    )
    if settings.standalone:
        registration.register_node(
            core, settings.node_name, labels=found.labels, hardware=found.hardware, status=_node_status(settings, found)
        )
    _retry(
        lambda: labels.sync_node_metadata(core, settings.node_name, labels=found.labels, hardware=found.hardware), stop
    )
    threads = [threading.Thread(target=heartbeat_loop, args=(settings, api_client, found, stop), name="heartbeat")]
    if settings.standalone:
        runner = StandaloneRunner(
            core=core,
            node=settings.node_name,
            work_dir=settings.work_dir,
            target=api_target(api_client),
            system_namespace=settings.system_namespace,
            token_seconds=settings.token_seconds,
            token_renew_seconds=settings.token_renew_seconds,
        )
        threads.append(threading.Thread(target=runner.run, args=(stop,), name="standalone"))
    for t in threads:
        t.start()
    while not stop.wait(1.0):  # a timed wait lets the main thread run the signal handler promptly
        pass
    for t in threads:
        t.join()
    if settings.standalone:
        try:
            core.patch_node_status(
                settings.node_name, _node_status(settings, found, ready=False), _content_type=api.MERGE_PATCH
            )
        except ApiException as exc:
            log.warning("could not mark node %s NotReady: %s", settings.node_name, exc.reason)
    log.info("agent stopped")


def _node_status(settings: AgentSettings, found: probe.Probe, *, ready: bool = True) -> dict[str, Any]:
    return registration.standalone_node_status(
        cpu_cores=found.hardware["cpu"]["cores"],
        memory_bytes=found.hardware["memory"]["totalBytes"],
        slots=settings.slots,
        now=datetime.now(UTC),
        ready=ready,
    )


def _retry(fn: Callable[[], object], stop: threading.Event) -> None:
    """Run fn until it succeeds (the Node may not exist yet right after a DaemonSet pod starts)."""
    while not stop.is_set():
        try:
            fn()
            return
        except ApiException as exc:
            log.warning("node update failed: %s %s; retrying", exc.status, exc.reason)
            stop.wait(5)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        run(settings, stop)
    except Exception:
        log.exception("agent failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
