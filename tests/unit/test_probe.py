"""Hardware probe and node writes, pure parts: `ffmpeg -encoders` parsing, trial argv, labels and their
patch, the hardware annotation, the Lease, and the metrics arithmetic (no cluster, no GPU needed)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import ffrtmp_api as api
import pytest
from ffrtmp_agent import energy
from ffrtmp_agent.kubelet.registration import standalone_node_status
from ffrtmp_agent.node import metrics, probe
from ffrtmp_agent.node.labels import metadata_patch
from ffrtmp_agent.node.lease import lease_body, renewal_patch
from ffrtmp_agent.node.probe import GpuInfo, GpuProbe, Trial

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

ENCODERS_OUTPUT = """Encoders:
 V..... = Video
 A..... = Audio
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 V..... h264_qsv             H.264 (Intel Quick Sync Video acceleration) (codec h264)
 V....D libaom-av1           libaom AV1 (codec av1)
 A....D aac                  AAC (Advanced Audio Coding)
 V....D mjpeg                MJPEG (Motion JPEG)
"""


def test_given_ffmpeg_encoders_output_then_only_video_encoders_are_parsed():
    assert probe.parse_encoders(ENCODERS_OUTPUT) == ["libx264", "h264_nvenc", "h264_qsv", "libaom-av1", "mjpeg"]


def test_given_the_legend_lines_then_they_are_not_taken_for_encoders():
    assert "=" not in probe.parse_encoders(ENCODERS_OUTPUT)


def test_given_listed_encoders_then_trials_run_only_for_listed_candidates():
    assert probe.trial_candidates(["mjpeg", "h264_nvenc", "libx264"]) == ["libx264", "h264_nvenc"]


def test_given_every_encoder_the_scheduler_can_ask_for_then_it_is_a_candidate():
    wanted = {enc for by_accel in api.ENCODERS.values() for enc in by_accel.values()}
    assert wanted <= set(probe.CANDIDATE_ENCODERS)


@pytest.mark.parametrize(
    ("encoder", "expected", "absent"),
    [
        ("libx264", ["-c:v", "libx264", "-pix_fmt", "yuv420p"], ["-vaapi_device"]),
        ("h264_nvenc", ["-c:v", "h264_nvenc"], ["-vaapi_device", "hwupload"]),
        ("hevc_qsv", ["-pix_fmt", "nv12", "-c:v", "hevc_qsv"], ["-vaapi_device"]),
        ("h264_vaapi", ["-vaapi_device", "/dev/dri/renderD129", "format=nv12,hwupload"], []),
        ("libaom-av1", ["-cpu-used", "8"], []),
    ],
)
def test_given_an_encoder_then_the_trial_argv_encodes_one_second_to_null(encoder, expected, absent):
    argv = probe.trial_argv(encoder, ffmpeg="/usr/bin/ffmpeg", render_node="/dev/dri/renderD129")
    assert argv[0] == "/usr/bin/ffmpeg"
    assert argv[argv.index("-t") + 1] == "1.0"
    assert argv[-3:] == ["-f", "null", "-"]
    for item in expected:
        assert item in argv
    for item in absent:
        assert item not in argv


def test_given_long_ffmpeg_stderr_then_the_error_summary_is_the_bounded_tail():
    text = "\n".join(f"line {i}" for i in range(100)) + "\n" + "x" * 1000
    summary = probe.summarize_error(text)
    assert len(summary) <= 300 and summary.endswith("x")
    assert probe.summarize_error("") == "ffmpeg failed without a message"


H200 = GpuInfo(index=0, name="NVIDIA H200", memoryTotalBytes=141 * 2**30)
H200_TRIALS = [
    Trial("libx264", True, 0.2),
    Trial("h264_nvenc", False, 0.1, "exit 1: OpenEncodeSessionEx failed"),
    Trial("hevc_nvenc", False, 0.1, "exit 1: No capable devices found"),
]


def test_given_an_h200_without_nvenc_then_it_is_a_gpu_node_but_not_an_nvenc_encode_node():
    labels = probe.node_labels(gpu=probe.has_gpu([H200], H200_TRIALS), proven=probe.proven_encoders(H200_TRIALS))
    assert labels == {api.LABEL_WORKER: "true", api.LABEL_GPU: "true", api.LABEL_ENCODER_PREFIX + "libx264": "true"}


def test_given_no_gpu_then_gpu_false_and_software_encoders_only():
    trials = [Trial("libx264", True, 0.2), Trial("libx265", True, 0.3), Trial("h264_nvenc", False, 0.1, "no cuda")]
    labels = probe.node_labels(gpu=probe.has_gpu([], trials), proven=probe.proven_encoders(trials))
    assert labels[api.LABEL_GPU] == "false"
    assert sorted(k for k in labels if k.startswith(api.LABEL_ENCODER_PREFIX)) == [
        "ffrtmp.io/encoder.libx264",
        "ffrtmp.io/encoder.libx265",
    ]


def test_given_a_proven_hardware_encoder_without_nvml_then_it_is_a_gpu_node():
    assert probe.has_gpu([], [Trial("h264_qsv", True, 0.3)]) is True


def test_given_an_h200_then_the_annotation_says_which_trials_failed_and_why():
    doc = probe.hardware_document(
        cpu={"cores": 64},
        memory={"totalBytes": 1},
        gpu_probe=GpuProbe([H200]),
        trials=H200_TRIALS,
        listed=["libx264", "h264_nvenc", "hevc_nvenc"],
        ffmpeg_version="6.1",
        render_nodes=[],
        slots=4,
        probed_at=NOW,
    )
    assert doc["gpu"] is True and doc["gpus"][0]["name"] == "NVIDIA H200"
    assert doc["encoders"]["proven"] == ["libx264"]
    failed = {t["encoder"]: t["error"] for t in doc["encoders"]["trials"] if not t["ok"]}
    assert failed == {
        "h264_nvenc": "exit 1: OpenEncodeSessionEx failed",
        "hevc_nvenc": "exit 1: No capable devices found",
    }
    assert doc["probedAt"] == "2026-01-02T03:04:05Z"
    json.dumps(doc)  # the annotation is JSON


def test_given_a_probe_without_nvml_then_the_document_says_why_there_is_no_gpu():
    doc = probe.hardware_document(
        cpu={},
        memory={},
        gpu_probe=GpuProbe([], "NVML unavailable: not found"),
        trials=[],
        listed=[],
        ffmpeg_version=None,
        render_nodes=[],
        slots=1,
        probed_at=NOW,
    )
    assert doc["gpu"] is False and doc["gpus"] == [] and doc["gpuError"] == "NVML unavailable: not found"


def test_given_a_machine_without_nvml_then_probe_gpus_returns_none_and_a_reason():
    found = probe.probe_gpus()  # no NVIDIA driver on the test machine; on a GPU box it lists the GPUs
    assert isinstance(found.gpus, list)
    assert found.gpus or found.error


@pytest.mark.parametrize(
    ("name", "cpuinfo", "expected"),
    [
        ("x86 model name", "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6430\n", "Intel(R) Xeon(R) Gold 6430"),
        (
            "arm Model line",
            "processor\t: 0\nBogoMIPS\t: 50\n\nModel\t\t: Raspberry Pi 4 Model B\n",
            "Raspberry Pi 4 Model B",
        ),
        ("nothing known", "processor\t: 0\n", None),
    ],
)
def test_given_cpuinfo_then_the_model_is_found(name, cpuinfo, expected):
    assert probe.cpu_model(cpuinfo) == expected


# ------------------------------------------------------------------------------------------ labels


def test_given_labels_already_set_then_the_patch_is_empty():
    desired = probe.node_labels(gpu=False, proven=["libx264"])
    assert probe.labels_patch({**desired, "kubernetes.io/os": "linux"}, desired) == {}


def test_given_an_encoder_no_longer_proven_then_its_label_is_removed_and_others_untouched():
    current = {
        "kubernetes.io/os": "linux",
        api.LABEL_WORKER: "true",
        api.LABEL_GPU: "true",
        api.LABEL_ENCODER_PREFIX + "h264_nvenc": "true",
        api.LABEL_ENCODER_PREFIX + "libx264": "true",
    }
    desired = probe.node_labels(gpu=True, proven=["libx264"])
    assert probe.labels_patch(current, desired) == {api.LABEL_ENCODER_PREFIX + "h264_nvenc": None}


def test_given_a_node_without_our_labels_then_all_are_set():
    desired = probe.node_labels(gpu=False, proven=["libx264"])
    assert probe.labels_patch({}, desired) == desired


def _hardware(**over):
    doc = probe.hardware_document(
        cpu={"cores": 2, "load1": 0.5},
        memory={"totalBytes": 8, "availableBytes": 4},
        gpu_probe=GpuProbe([]),
        trials=[Trial("libx264", True, 0.2)],
        listed=["libx264"],
        ffmpeg_version="5.1",
        render_nodes=[],
        slots=2,
        probed_at=NOW,
    )
    doc.update(over)
    return doc


def test_given_the_same_hardware_probed_later_then_the_node_is_not_patched():
    stored = _hardware()
    node_obj = {
        "metadata": {
            "labels": probe.node_labels(gpu=False, proven=["libx264"]),
            "annotations": {api.ANNOTATION_HARDWARE: json.dumps(stored)},
        }
    }
    later = _hardware(
        probedAt="2026-02-02T00:00:00Z", cpu={"cores": 2, "load1": 1.9}, memory={"totalBytes": 8, "availableBytes": 1}
    )
    assert metadata_patch(node_obj, labels=probe.node_labels(gpu=False, proven=["libx264"]), hardware=later) == {}


def test_given_changed_hardware_then_the_annotation_is_patched():
    node_obj = {"metadata": {"labels": {}, "annotations": {api.ANNOTATION_HARDWARE: json.dumps(_hardware())}}}
    patch = metadata_patch(node_obj, labels={}, hardware=_hardware(slots=4))
    assert json.loads(patch["metadata"]["annotations"][api.ANNOTATION_HARDWARE])["slots"] == 4
    assert "labels" not in patch["metadata"]


# ------------------------------------------------------------------------------------------- lease


def test_given_a_node_then_the_lease_names_it_and_carries_slots_and_micro_time():
    lease = lease_body("gpu-1", namespace="ffrtmp-system", slots=3, lease_seconds=15, now=NOW)
    assert lease["metadata"]["name"] == api.LEASE_PREFIX + "gpu-1"
    assert lease["metadata"]["annotations"] == {api.ANNOTATION_SLOTS: "3"}
    assert lease["spec"]["holderIdentity"] == "gpu-1" and lease["spec"]["leaseDurationSeconds"] == 15
    assert lease["spec"]["renewTime"] == "2026-01-02T03:04:05.000000Z"


def test_given_a_renewal_then_it_writes_renew_time_and_slots():
    patch = renewal_patch("gpu-1", slots=2, lease_seconds=15, now=NOW)
    assert patch["spec"]["renewTime"] == "2026-01-02T03:04:05.000000Z"
    assert patch["metadata"]["annotations"][api.ANNOTATION_SLOTS] == "2"


def test_given_standalone_then_the_node_status_is_ready_on_loopback():
    status = standalone_node_status(cpu_cores=8, memory_bytes=16 * 2**30, slots=2, now=NOW)["status"]
    assert status["conditions"][0]["type"] == "Ready" and status["conditions"][0]["status"] == "True"
    assert status["capacity"]["cpu"] == "8" and status["capacity"]["memory"] == f"{16 * 2**20}Ki"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]


# ----------------------------------------------------------------------------------------- metrics


def test_given_a_plan_in_the_environment_then_the_process_belongs_to_that_job():
    env = {api.ENV_PLAN: json.dumps({"namespace": "media", "job": "talk", "attempt": 1})}
    assert metrics.job_key(env) == ("media", "talk")
    assert metrics.job_key({}) is None
    assert metrics.job_key({api.ENV_PLAN: "not json"}) is None


def test_given_a_wrapped_rapl_counter_then_the_delta_is_still_positive():
    assert energy.counter_delta(100, 150, 1000) == 50
    assert energy.counter_delta(950, 50, 1000) == 100


def test_given_two_jobs_then_energy_is_split_by_cpu_share():
    split = energy.attribute_energy(100.0, {("a", "x"): 3.0, ("a", "y"): 1.0}, busy_cpu=8.0)
    assert split == {("a", "x"): 37.5, ("a", "y"): 12.5}


def test_given_no_busy_time_then_no_energy_is_attributed():
    assert energy.attribute_energy(100.0, {("a", "x"): 1.0}, busy_cpu=0.0) == {("a", "x"): 0.0}
