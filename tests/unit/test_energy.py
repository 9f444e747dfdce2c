"""Energy attribution from RAPL counters (fake powercap files in a temp dir) and the real /sys path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ffrtmp_agent import energy
from ffrtmp_agent.node import metrics
from ffrtmp_agent.runner import supervise


def fake_zone(root: Path, name: str, energy_uj: int, max_range: int = 262143328850) -> None:
    zone = root / name
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")


def counters(
    rapl: dict[str, int] | None, *, busy: float, job: float, gpu: dict[int, int] | None = None, wrap: int = 262143328850
) -> energy.Counters:
    return energy.Counters(
        rapl_uj=rapl,
        rapl_range_uj={z: wrap for z in rapl or {}},
        gpu_mj=gpu,
        busy_cpu_seconds=busy,
        children_cpu_seconds=job,
    )


def test_given_package_zones_when_read_then_subzones_are_not_double_counted(tmp_path: Path) -> None:
    fake_zone(tmp_path, "intel-rapl:0", 1_000_000)
    fake_zone(tmp_path, "intel-rapl:1", 2_000_000)
    fake_zone(tmp_path, "intel-rapl:0:0", 999)  # core sub-zone, inside package 0
    values, ranges = energy.read_rapl(tmp_path)
    assert values == {"intel-rapl:0": 1_000_000, "intel-rapl:1": 2_000_000}
    assert ranges["intel-rapl:0"] == 262143328850


def test_given_fake_counters_when_an_encode_runs_then_energy_attributed_by_cpu_share(tmp_path: Path) -> None:
    fake_zone(tmp_path, "intel-rapl:0", 5_000_000)
    before = energy.read_counters(rapl_root=tmp_path, gpu=False)
    fake_zone(tmp_path, "intel-rapl:0", 105_000_000)  # the package spent 100 J meanwhile
    after = energy.read_counters(rapl_root=tmp_path, gpu=False)
    assert before.rapl_uj == {"intel-rapl:0": 5_000_000} and after.rapl_uj == {"intel-rapl:0": 105_000_000}
    # with synthetic CPU times: the job used 3 of the machine's 4 busy CPU seconds
    joules = energy.job_energy_joules(counters(before.rapl_uj, busy=10, job=1), counters(after.rapl_uj, busy=14, job=4))
    assert joules == 75.0


def test_given_a_wrapped_counter_when_delta_taken_then_wrap_added() -> None:
    assert energy.counter_delta(990, 10, 1000) == 20
    joules = energy.job_energy_joules(
        counters({"p": 999_000_000}, busy=0, job=0, wrap=1_000_000_000),
        counters({"p": 1_000_000}, busy=2, job=2, wrap=1_000_000_000),
    )
    assert joules == 2.0


def test_given_gpu_counters_when_nvenc_ran_then_gpu_energy_added() -> None:
    joules = energy.job_energy_joules(
        counters(None, busy=0, job=0, gpu={0: 1_000}), counters(None, busy=1, job=1, gpu={0: 51_000})
    )
    assert joules == 50.0


def test_given_no_counters_when_measured_then_unknown() -> None:
    assert energy.job_energy_joules(counters(None, busy=0, job=0), counters(None, busy=5, job=5)) is None


def test_given_the_real_powercap_path_when_read_then_counters_or_unavailable(tmp_path: Path) -> None:
    # On this VM (and in any non-root pod) no counter is readable, so a job's energy is unavailable.
    readable = set()
    for zone in Path("/sys/class/powercap").glob("intel-rapl:*"):
        try:
            if zone.name.count(":") == 1 and (zone / "energy_uj").read_text().strip().isdigit():
                readable.add(zone.name)
        except OSError:
            pass
    values, _ = energy.read_rapl()
    assert set(values or {}) == readable
    before, after = energy.read_counters(gpu=False), energy.read_counters(gpu=False)
    assert (energy.job_energy_joules(before, after) is None) == (not readable)
    assert energy.read_rapl(tmp_path / "absent") == (None, {})


def test_cpu_share_is_clamped() -> None:
    assert energy.cpu_share(job_seconds=5, busy_seconds=4) == 1.0
    assert energy.cpu_share(job_seconds=0, busy_seconds=0) == 0.0


# ------------------------------------------------ one implementation for the runner and the node metrics


def test_given_ffrtmp_rapl_root_when_the_runner_and_the_node_metrics_read_energy_then_both_read_that_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_zone(tmp_path, "intel-rapl:0", 5_000_000)
    monkeypatch.setenv(energy.ENV_RAPL_ROOT, str(tmp_path))
    runner_settings, sampler = supervise.Settings(), metrics.Sampler(root_pid=os.getpid())
    assert runner_settings.rapl_root == sampler.rapl_root == tmp_path

    before = energy.read_counters(rapl_root=runner_settings.rapl_root, gpu=False)
    sampler.sample()
    fake_zone(tmp_path, "intel-rapl:0", 105_000_000)  # the package spent 100 J meanwhile
    after = energy.read_counters(rapl_root=runner_settings.rapl_root, gpu=False)
    sampler.sample()

    assert energy.package_joules(before.rapl_uj or {}, after.rapl_uj or {}, after.rapl_range_uj) == 100.0
    assert sampler.snapshot()[1] == 100.0  # ffrtmp_node_cpu_energy_joules


def test_given_one_job_when_its_share_is_computed_by_the_runner_and_by_the_node_metrics_then_they_agree() -> None:
    before, after = counters({"p": 0}, busy=10, job=1), counters({"p": 100_000_000}, busy=14, job=4)
    by_runner = energy.job_energy_joules(before, after)
    by_metrics = energy.attribute_energy(100.0, {("ns", "job"): 3.0}, busy_cpu=4.0)
    assert by_runner == by_metrics[("ns", "job")] == 75.0
