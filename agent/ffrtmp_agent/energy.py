"""Energy from hardware counters, one implementation for the runner (status.result.energyJoules) and the
node metrics (ffrtmp_node_cpu_energy_joules, ffrtmp_agent_job_energy_joules): RAPL package counters
(powercap energy_uj, under $FFRTMP_RAPL_ROOT or /sys/class/powercap) split between jobs by their share
of the machine's busy CPU time, plus NVML GPU energy. Unreadable counters mean unknown (None), never 0.
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

RAPL_ROOT = Path("/sys/class/powercap")
ENV_RAPL_ROOT = "FFRTMP_RAPL_ROOT"  # tests point it at fake counter files
_PACKAGE_ZONE = re.compile(r"^[a-z-]*rapl:\d+$")  # intel-rapl:0; sub-zones (intel-rapl:0:0) are inside it
K = TypeVar("K")  # a job key


def rapl_root(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the RAPL powercap zones live: $FFRTMP_RAPL_ROOT, else /sys/class/powercap."""
    return Path(environ.get(ENV_RAPL_ROOT) or RAPL_ROOT)


def read_rapl(root: Path | None = None) -> tuple[dict[str, int] | None, dict[str, int]]:
    """Package energy counters (zone -> energy_uj) and their wrap points (max_energy_range_uj);
    (None, {}) when no zone is readable. `root` defaults to rapl_root()."""
    values: dict[str, int] = {}
    ranges: dict[str, int] = {}
    try:
        zones = sorted(p for p in (root or rapl_root()).iterdir() if _PACKAGE_ZONE.match(p.name))
    except OSError:
        return None, {}
    for zone in zones:
        try:
            values[zone.name] = int((zone / "energy_uj").read_text().strip())
            ranges[zone.name] = int((zone / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            continue  # unreadable for non-root since CVE-2020-8694 on many kernels
    return (values or None), ranges


def counter_delta(before: int, after: int, wrap: int) -> int:
    """after - before for a counter that wraps at `wrap` (RAPL energy_uj does, every few minutes at load)."""
    return after - before if after >= before else after + max(wrap, 0) - before


def package_joules(before: Mapping[str, int], after: Mapping[str, int], wraps: Mapping[str, int]) -> float:
    """Joules the packages spent between two read_rapl() readings (zones present in both)."""
    return sum(counter_delta(before[z], after[z], wraps.get(z, 0)) for z in before if z in after) / 1e6


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent working (all cores): not idle, not iowait; guest time is
    already counted in user (and guest_nice in nice), so it is taken out once."""
    times = psutil.cpu_times()
    not_work = times.idle + sum(getattr(times, name, 0.0) for name in ("iowait", "guest", "guest_nice"))
    return sum(times) - not_work


def cpu_share(*, job_seconds: float, busy_seconds: float) -> float:
    """The job's share of the machine's busy CPU time, clamped to [0, 1]."""
    if busy_seconds <= 0:
        return 1.0 if job_seconds > 0 else 0.0
    return max(0.0, min(1.0, job_seconds / busy_seconds))


def attribute_energy(energy: float, job_cpu: Mapping[K, float], busy_cpu: float) -> dict[K, float]:
    """Split `energy` joules between jobs by their cpu_share; nothing to split without busy time."""
    if energy <= 0 or busy_cpu <= 0:
        return {k: 0.0 for k in job_cpu}
    return {k: energy * cpu_share(job_seconds=cpu, busy_seconds=busy_cpu) for k, cpu in job_cpu.items()}


# ------------------------------------------------------------------------------------ one job (runner)


@dataclass(frozen=True)
class Counters:
    rapl_uj: dict[str, int] | None  # zone -> energy_uj; None when unreadable
    rapl_range_uj: dict[str, int]  # zone -> max_energy_range_uj (the counter wraps there)
    gpu_mj: dict[int, int] | None  # device index -> total energy in mJ since driver load
    busy_cpu_seconds: float  # the whole machine
    children_cpu_seconds: float  # this process's waited-for children (the encoder)


def read_gpu_energy() -> dict[int, int] | None:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: no GPU energy here
        return None
    try:
        readings = {}
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            readings[index] = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        return readings or None
    except Exception:  # a GPU without the counter (pre-Volta) reports NotSupported
        return None
    finally:
        pynvml.nvmlShutdown()


def read_counters(*, rapl_root: Path | None = None, gpu: bool) -> Counters:
    rapl, ranges = read_rapl(rapl_root)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Counters(
        rapl_uj=rapl,
        rapl_range_uj=ranges,
        gpu_mj=read_gpu_energy() if gpu else None,
        busy_cpu_seconds=busy_cpu_seconds(),
        children_cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def job_energy_joules(before: Counters, after: Counters) -> float | None:
    """Joules attributed to the job between two readings; None when no counter was readable.

    CPU: package energy x cpu_share: the job pays its share of what the packages spent while it ran.
    GPU: the whole delta of the visible devices (a job pod sees only its own GPU).
    """
    total = None
    if before.rapl_uj and after.rapl_uj:
        share = cpu_share(
            job_seconds=after.children_cpu_seconds - before.children_cpu_seconds,
            busy_seconds=after.busy_cpu_seconds - before.busy_cpu_seconds,
        )
        total = package_joules(before.rapl_uj, after.rapl_uj, after.rapl_range_uj) * share
    if before.gpu_mj and after.gpu_mj:
        gpu_j = sum(_gpu_delta(before.gpu_mj, after.gpu_mj).values()) / 1e3
        total = (total or 0.0) + gpu_j
    return None if total is None else round(total, 3)


def _gpu_delta(before: Mapping[int, int], after: Mapping[int, int]) -> dict[int, int]:
    return {i: max(0, after[i] - before[i]) for i in before if i in after}
