"""Quality measurement argv and parsing, qoeScore and efficiencyScore (pure)."""

from __future__ import annotations

import pytest
from ffrtmp_agent.runner import quality, scores

# Summary lines as ffmpeg 5.1 prints them (captured).
PSNR = "[Parsed_psnr_5 @ 0x5635] PSNR y:48.339469 u:45.629116 v:45.655546 average:47.243831 min:46.253100 max:50.572915"
SSIM = "[Parsed_ssim_6 @ 0x5635] SSIM Y:0.995299 (23.278300) U:0.995836 (23.804641) V:0.996541 (24.609901) All:0.995596 (23.561061)"
VMAF = "[libvmaf @ 0x5635] VMAF score: 93.712345"


def test_given_summary_lines_when_parsed_then_averages() -> None:
    assert quality.parse_quality("\n".join(["noise", SSIM, PSNR, VMAF])) == {
        "psnr": 47.244,
        "ssim": 0.9956,
        "vmaf": 93.712,
    }


def test_given_identical_frames_when_psnr_is_inf_then_capped() -> None:
    assert quality.parse_quality("PSNR y:inf u:inf v:inf average:inf min:inf max:inf")["psnr"] == quality.PSNR_CAP


def test_given_psnr_and_ssim_when_argv_built_then_reference_scaled_to_output_and_split() -> None:
    argv = quality.quality_argv(
        output_ref="file:/o.mp4",
        input_args=["-protocol_whitelist", "file", "-i", "file:/i.mov"],
        metrics=["ssim", "psnr"],
        width=640,
        height=360,
    )
    graph = argv[argv.index("-lavfi") + 1]
    assert argv[argv.index("-i") + 1] == "file:/o.mp4"  # the output is the distorted input 0
    assert "[1:v]scale=640:360:flags=bicubic" in graph
    assert graph.endswith("[d0][r0]psnr;[d1][r1]ssim")
    assert argv[-3:] == ["-f", "null", "-"]


def test_has_libvmaf_reads_the_filter_listing() -> None:
    assert quality.has_libvmaf(" ... libvmaf           VV->V      Calculate the VMAF between two video streams.")
    assert not quality.has_libvmaf(" ... vmafmotion        V->V       Calculate the VMAF Motion score.")


def test_given_ffprobe_json_when_parsed_then_video_stream_facts() -> None:
    text = (
        '{"streams": [{"codec_name": "aac", "codec_type": "audio"}, {"codec_name": "h264", "codec_type": "video",'
        ' "width": 320, "height": 240}], "format": {"duration": "3.000000", "size": "346905"}}'
    )
    assert quality.parse_probe(text) == quality.MediaInfo("h264", 320, 240, 3.0, 346905)


@pytest.mark.parametrize(
    ("name", "psnr", "ssim", "vmaf", "expected"),
    [
        ("given vmaf then it is the score", 30.0, 0.9, 93.7, 93.7),
        ("given transparent psnr and ssim then 100", 50.0, 0.995, None, 100.0),
        ("given psnr 34 only then half", 34.0, None, None, 50.0),
        ("given ssim 0.895 only then half", None, 0.895, None, 50.0),
        ("given broken output then 0", 15.0, 0.5, None, 0.0),
        ("given no metric then unknown", None, None, None, None),
    ],
)
def test_qoe_score(
    name: str, psnr: float | None, ssim: float | None, vmaf: float | None, expected: float | None
) -> None:
    assert scores.qoe_score(psnr=psnr, ssim=ssim, vmaf=vmaf) == expected, name


@pytest.mark.parametrize(
    ("name", "seconds", "joules", "expected"),
    [
        ("given 10 s of output for 500 J then 20 s per kJ", 10.0, 500.0, 20.0),
        ("given unknown energy then unknown", 10.0, None, None),
        ("given zero energy then unknown", 10.0, 0.0, None),
        ("given unknown duration then unknown", None, 500.0, None),
    ],
)
def test_efficiency_score(name: str, seconds: float | None, joules: float | None, expected: float | None) -> None:
    assert scores.efficiency_score(output_seconds=seconds, energy_joules=joules) == expected, name
