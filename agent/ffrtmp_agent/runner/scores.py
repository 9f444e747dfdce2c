"""The two summary numbers in status.result: qoeScore (how good the output looks, 0-100) and
efficiencyScore (how much output per energy). Pure; the formulas are the README's.
"""

from __future__ import annotations


def qoe_score(*, psnr: float | None, ssim: float | None, vmaf: float | None) -> float | None:
    """Quality of experience, 0 (unwatchable) to 100 (indistinguishable from the input).

    - VMAF when measured: it is already a 0-100 perceptual score, so qoeScore = VMAF.
    - Else the mean of the measured ones of
        PSNR part = clamp((PSNR_dB - 20) / (48 - 20), 0, 1) x 100   (20 dB is badly broken, 48 dB transparent)
        SSIM part = clamp((SSIM - 0.80) / (0.99 - 0.80), 0, 1) x 100 (0.80 visibly degraded, 0.99 transparent)
    - None when no quality metric was measured (spec.quality.metrics empty, or a live job).
    """
    if vmaf is not None:
        return round(_clamp(vmaf, 0, 100), 1)
    parts = []
    if psnr is not None:
        parts.append(100 * _clamp((psnr - 20) / (48 - 20), 0, 1))
    if ssim is not None:
        parts.append(100 * _clamp((ssim - 0.80) / (0.99 - 0.80), 0, 1))
    return round(sum(parts) / len(parts), 1) if parts else None


def efficiency_score(*, output_seconds: float | None, energy_joules: float | None) -> float | None:
    """Seconds of output media produced per kilojoule attributed to the job:
    efficiencyScore = durationSeconds / (energyJoules / 1000). Higher is better; None when the energy
    is unknown (no RAPL or NVML counter on the machine) or zero."""
    if output_seconds is None or not energy_joules or energy_joules <= 0:
        return None
    return round(output_seconds / (energy_joules / 1000), 3)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
