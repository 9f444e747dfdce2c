"""`ffrtmp-operator` / `python -m ffrtmp_operator`: parse flags into Settings, configure kopf, run.

Kube config from $KUBECONFIG, else in-cluster. Logs as every ffrtmp process writes them (ffrtmp_api.logs:
JSON lines by default, with the structured fields the scheduler attaches, e.g. per-phase timings of a pass).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ffrtmp_api as api
import kopf
from ffrtmp_api import logs

from .cache import Cache
from .driver import WRITE_CONCURRENCY
from .handlers import register
from .kube import LIST_CHUNK, KubeClient, load_api_client
from .metrics import OperatorMetrics
from .metrics_cache import cache_snapshot_source
from .policy_args import add_arguments as add_policy_arguments
from .policy_args import job_policy
from .settings import PeeringSettings, PodSettings, SchedulingSettings, Settings


def parse_args(argv: list[str] | None = None) -> Settings:
    d, ds, dp, dpe = Settings(), SchedulingSettings(), PodSettings(), PeeringSettings()
    p = argparse.ArgumentParser(prog="ffrtmp-operator", description="The ffrtmp TranscodeJob operator.")
    p.add_argument("--system-namespace", default=d.system_namespace, help="where the agents' heartbeat Leases live")
    p.add_argument(
        "--namespace",
        action="append",
        default=[],
        dest="namespaces",
        help="manage TranscodeJobs only in this namespace (repeatable; default: all namespaces)",
    )
    p.add_argument("--metrics-host", default=d.metrics_host)
    p.add_argument("--metrics-port", type=int, default=d.metrics_port, help="0 = no metrics endpoint")
    p.add_argument("--peering", default=dpe.name, help="ClusterKopfPeering name shared by the replicas")
    p.add_argument("--no-peering", action="store_true", help="run standalone: schedule without peering")
    p.add_argument(
        "--priority",
        type=int,
        default=None,
        help="kopf peering priority; replicas must differ (equal ones all pause), so the default is random",
    )
    p.add_argument("--peering-lifetime", type=int, default=dpe.lifetime_seconds, help="seconds a peer entry lives")
    p.add_argument("--tick-seconds", type=float, default=ds.tick_seconds)
    p.add_argument("--default-slots", type=int, default=ds.default_slots)
    p.add_argument("--backoff-base-seconds", type=float, default=ds.backoff_base_seconds)
    p.add_argument("--backoff-cap-seconds", type=float, default=ds.backoff_cap_seconds)
    p.add_argument("--no-preemption", action="store_true", help="no queue preempts, whatever its policy says")
    p.add_argument(
        "--pod-start-timeout-seconds",
        type=float,
        default=ds.pod_start_timeout_seconds,
        help="end a run whose pod has not started after this long (StartTimeout, retried); 0 = never",
    )
    p.add_argument("--runner-image", default=dp.image)
    p.add_argument("--runner-image-pull-policy", default=dp.image_pull_policy)
    p.add_argument("--verbose", action="store_true")
    add_policy_arguments(p)
    a = p.parse_args(argv)
    return Settings(
        system_namespace=a.system_namespace,
        namespaces=tuple(a.namespaces),
        metrics_host=a.metrics_host,
        metrics_port=a.metrics_port,
        verbose=a.verbose,
        scheduling=SchedulingSettings(
            tick_seconds=a.tick_seconds,
            default_slots=a.default_slots,
            backoff_base_seconds=a.backoff_base_seconds,
            backoff_cap_seconds=a.backoff_cap_seconds,
            preemption=not a.no_preemption,
            pod_start_timeout_seconds=a.pod_start_timeout_seconds,
        ),
        pods=PodSettings(image=a.runner_image, image_pull_policy=a.runner_image_pull_policy, policy=job_policy(p, a)),
        peering=PeeringSettings(
            enabled=not a.no_peering,
            name=a.peering,
            priority=a.priority if a.priority is not None else random.randint(1, 2**30),
            lifetime_seconds=a.peering_lifetime,
        ),
    )


class _NoProgress(kopf.ProgressStorage):
    """Event handlers keep no progress; storing none guarantees kopf never writes it on a job."""

    def fetch(self, **_: Any) -> None:
        return None

    def store(self, **_: Any) -> None:
        pass

    def purge(self, **_: Any) -> None:
        pass

    def touch(self, **_: Any) -> None:
        pass

    def clear(self, *, essence: Any) -> Any:
        return essence


class _NoDiffBase(kopf.DiffBaseStorage):
    """No change detection (no on.create/update handlers), so no last-handled-configuration."""

    def fetch(self, **_: Any) -> None:
        return None

    def build(self, **_: Any) -> None:  # type: ignore[override]
        """No essence either: kopf builds one per watch event by deep-copying the whole object, which was
        15% of the operator's CPU in the 10,000-job benchmark (BENCHMARKS.md), and nothing here compares
        essences (no change handlers; the peering daemon has no idle timers)."""
        return None

    def store(self, **_: Any) -> None:
        pass


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: Settings) -> None:
    kopf_settings.posting.level = logging.ERROR  # kopf's own Events on objects: errors only
    kopf_settings.watching.server_timeout = 300  # re-establish each watch every ~5 min
    kopf_settings.watching.client_timeout = 330
    kopf_settings.watching.connect_timeout = 10
    kopf_settings.watching.reconnect_backoff = 1.0
    # The initial listing in pages, each handled before the next is read: unpaged, kopf queued every job
    # of a 10,000-job backlog as a whole object at once (BENCHMARKS.md, scaling).
    kopf_settings.watching.chunk_size = LIST_CHUNK
    kopf_settings.persistence.progress_storage = _NoProgress()
    kopf_settings.persistence.diffbase_storage = _NoDiffBase()
    kopf_settings.peering.name = settings.peering.name
    kopf_settings.peering.priority = settings.peering.priority
    kopf_settings.peering.lifetime = settings.peering.lifetime_seconds
    # Server-side filters: only ffrtmp job pods, worker nodes, and Leases of the system namespace.
    kopf_settings.watching.label_selectors["pods"] = f"{api.LABEL_MANAGED_BY}={api.MANAGED_BY}"
    kopf_settings.watching.label_selectors["nodes"] = f"{api.LABEL_WORKER}=true"
    kopf_settings.watching.field_selectors["coordination.k8s.io", "leases"] = (
        f"metadata.namespace={settings.system_namespace}"
    )
    if settings.peering.enabled:
        # Only our own peering object: kopf keeps a finalizer on the object its scheduler daemon runs on,
        # and would otherwise try to clear it from other (e.g. deleted) peerings it has no rights on.
        kopf_settings.watching.field_selectors["kopf.dev", "clusterkopfpeerings"] = (
            f"metadata.name={settings.peering.name}"
        )


async def run(settings: Settings) -> None:
    # API writes run in threads (asyncio.to_thread); the default pool has min(32, CPUs + 4) of them,
    # fewer than the writes the scheduler keeps in flight on a small machine.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY + 4, thread_name_prefix="ffrtmp-api")
    )
    kube = KubeClient(load_api_client(pool_size=WRITE_CONCURRENCY + 4))
    if settings.peering.enabled:
        await kube.ensure_peering(settings.peering.name)
    cache = Cache()
    metrics = OperatorMetrics()
    # Gauges from the watch-fed cache: a scrape reads no API (metrics_cache explains the thread hand-off).
    metrics.set_snapshot_source(cache_snapshot_source(cache, loop=asyncio.get_running_loop()))
    metrics.set_queue_source(lambda: cache.queues.keys())  # admin queues label the counters too
    metrics.serve(host=settings.metrics_host, port=settings.metrics_port)
    registry = kopf.OperatorRegistry()
    register(registry, cache=cache, kube=kube, settings=settings, metrics=metrics)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    kopf_settings = kopf.OperatorSettings()
    configure_kopf(kopf_settings, settings)
    await kopf.operator(
        registry=registry,
        settings=kopf_settings,
        clusterwide=True,
        standalone=not settings.peering.enabled,
        peering_name=settings.peering.name if settings.peering.enabled else None,
        priority=settings.peering.priority,
    )


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(argv)
    logs.configure(verbose=settings.verbose)
    logging.getLogger("kopf").setLevel(logging.INFO if settings.verbose else logging.WARNING)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
