"""Energy of one encode from hardware counters: RAPL package counters (powercap energy_uj) attributed to
the job by its share of the machine's busy CPU time, plus NVML GPU energy counters when an NVIDIA
encoder ran. Where neither counter is readable the energy is unknown (None), never guessed.
"""

from __future__ import annotations

import re
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

RAPL_ROOT = Path("/sys/class/powercap")
_PACKAGE_ZONE = re.compile(r"^[a-z-]*rapl:\d+$")  # intel-rapl:0; sub-zones (intel-rapl:0:0) are inside it


@dataclass(frozen=True)
class Counters:
    rapl_uj: dict[str, int] | None  # zone -> energy_uj; None when unreadable
    rapl_range_uj: dict[str, int]  # zone -> max_energy_range_uj (the counter wraps there)
    gpu_mj: dict[int, int] | None  # device index -> total energy in mJ since driver load
    busy_cpu_seconds: float  # the whole machine
    children_cpu_seconds: float  # this process's waited-for children (the encoder)


def read_rapl(root: Path = RAPL_ROOT) -> tuple[dict[str, int] | None, dict[str, int]]:
    """Package energy counters under `root` (a test points it at fake counter files)."""
    values: dict[str, int] = {}
    ranges: dict[str, int] = {}
    try:
        zones = sorted(p for p in root.iterdir() if _PACKAGE_ZONE.match(p.name))
    except OSError:
        return None, {}
    for zone in zones:
        try:
            values[zone.name] = int((zone / "energy_uj").read_text().strip())
            ranges[zone.name] = int((zone / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            continue  # unreadable for non-root since CVE-2020-8694 on many kernels
    return (values or None), ranges


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


def read_counters(*, rapl_root: Path = RAPL_ROOT, gpu: bool) -> Counters:
    rapl, ranges = read_rapl(rapl_root)
    times = psutil.cpu_times()
    # guest time is already counted in user; idle and iowait are not work.
    busy = sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "guest", 0.0) - getattr(
        times, "guest_nice", 0.0
    )
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Counters(
        rapl_uj=rapl,
        rapl_range_uj=ranges,
        gpu_mj=read_gpu_energy() if gpu else None,
        busy_cpu_seconds=busy,
        children_cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def counter_delta(before: int, after: int, wrap: int) -> int:
    """after - before for a counter that wraps at `wrap` (RAPL energy_uj does, every few minutes at load)."""
    return after - before if after >= before else after + max(wrap, 0) - before


def job_energy_joules(before: Counters, after: Counters) -> float | None:
    """Joules attributed to the job between two readings; None when no counter was readable.

    CPU: package energy x (job CPU seconds / machine busy CPU seconds), clamped to [0, 1]: the job pays
    its share of what the packages spent while it ran. GPU: the whole delta of the visible devices (a
    job pod sees only its own GPU).
    """
    total = None
    if before.rapl_uj and after.rapl_uj:
        package_uj = sum(
            counter_delta(before.rapl_uj[z], after.rapl_uj[z], after.rapl_range_uj.get(z, 0))
            for z in before.rapl_uj
            if z in after.rapl_uj
        )
        share = cpu_share(
            job_seconds=after.children_cpu_seconds - before.children_cpu_seconds,
            busy_seconds=after.busy_cpu_seconds - before.busy_cpu_seconds,
        )
        total = package_uj / 1e6 * share
    if before.gpu_mj and after.gpu_mj:
        gpu_j = sum(_gpu_delta(before.gpu_mj, after.gpu_mj).values()) / 1e3
        total = (total or 0.0) + gpu_j
    return None if total is None else round(total, 3)


def cpu_share(*, job_seconds: float, busy_seconds: float) -> float:
    if busy_seconds <= 0:
        return 1.0 if job_seconds > 0 else 0.0
    return max(0.0, min(1.0, job_seconds / busy_seconds))


def _gpu_delta(before: Mapping[int, int], after: Mapping[int, int]) -> dict[int, int]:
    return {i: max(0, after[i] - before[i]) for i in before if i in after}
