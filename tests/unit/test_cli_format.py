"""The CLI's pure parts: a job from flags (the --volume forms, the hint for a path under no volume), tables,
ages, the progress line and ETA, node rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from ffrtmp_cli import main as cli
from ffrtmp_cli.errors import UsageError
from ffrtmp_cli.flags import job_from_flags, parse_volume
from ffrtmp_cli.format import age, duration, eta_seconds, progress_line, table, why
from ffrtmp_cli.nodes import describe_node_text, node_rows

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _flags(**given):
    return {"input": None, "test_source": None, "output": None, **given}


def test_given_test_source_flags_then_the_job_is_a_valid_transcodejob():
    job = job_from_flags(
        _flags(
            test_source="testsrc2",
            source_size="320x240",
            duration=2,
            output="file:///m/o.mp4",
            volume=["m:/m:emptyDir"],
            codec="h264",
            preset="veryfast",
            size="160x120",
            queue="batch",
            priority="low",
            quality="psnr, ssim",
            name="hello",
        )
    )
    assert job["metadata"] == {"name": "hello"}
    spec = job["spec"]
    assert spec["input"] == {"testSource": {"pattern": "testsrc2", "width": 320, "height": 240, "durationSeconds": 2}}
    assert spec["video"] == {"codec": "h264", "preset": "veryfast", "width": 160, "height": 120}
    assert spec["volumes"] == [{"name": "m", "mountPath": "/m", "emptyDir": {}}]
    assert spec["quality"] == {"metrics": ["psnr", "ssim"]}
    assert (spec["queue"], spec["priority"]) == ("batch", "low")


def test_given_no_name_then_a_name_is_generated_by_the_server():
    job = job_from_flags(_flags(input="https://example.com/a.mp4", output="rtmp://h/live/k"))
    assert job["metadata"] == {"generateName": "job-"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (_flags(output="file:///m/o.mp4"), "exactly one of --input"),
        (_flags(input="https://e/a.mp4", test_source="testsrc", output="rtmp://h/l/k"), "exactly one of --input"),
        (_flags(input="https://e/a.mp4"), "--output URL is required"),
        (_flags(input="https://e/a.mp4", output="rtmp://h/l/k", size="big"), "must look like 1280x720"),
        (_flags(input="ftp://e/a.mp4", output="rtmp://h/l/k"), "invalid job"),
        (_flags(input="https://e/a.mp4", output="rtmp://h/l/k", crf=99), "invalid job"),
    ],
)
def test_given_bad_flags_then_a_usage_error_names_the_problem(flags, message):
    with pytest.raises(UsageError, match=message):
        job_from_flags(flags)


PVC = {"name": "media", "mountPath": "/media", "persistentVolumeClaim": {"claimName": "media"}}


@pytest.mark.parametrize(
    ("text", "volume"),
    [
        ("media:/media:pvc=media", PVC),  # the README's forms
        ("media:/media:persistentVolumeClaim=media", PVC),
        ("media:/media:PVC=media", PVC),
        ("d:/data:hostPath=/srv/d", {"name": "d", "mountPath": "/data", "hostPath": {"path": "/srv/d"}}),
        ("w:/work:emptyDir", {"name": "w", "mountPath": "/work", "emptyDir": {}}),
        ("w:/work:emptydir", {"name": "w", "mountPath": "/work", "emptyDir": {}}),
        ("w:/work:emptyDir=Memory", {"name": "w", "mountPath": "/work", "emptyDir": {"medium": "Memory"}}),
    ],
)
def test_given_volume_flags_then_sources_are_parsed(text, volume):
    assert parse_volume(text) == volume


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("media", "must be NAME:MOUNTPATH:pvc=CLAIM"),
        ("m:/m:nfs=x", "source 'nfs=x'"),
        ("m:/m:pvc=", "source 'pvc='"),
        ("m:media:pvc=c", "must be absolute"),
        ("m:/m:hostPath=rel", "source"),
        ("m:/m:emptyDir=Disk", "source"),
        ("::", "must be NAME:MOUNTPATH"),
    ],
)
def test_given_bad_volume_flags_then_usage_error(text, message):
    with pytest.raises(UsageError, match=message):
        parse_volume(text)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            _flags(test_source="testsrc2", output="file:///media/out/o.mp4"),
            r"--output file:///media/out/o.mp4 lies under no volume \(mounted: none\); add --volume media:/media:SOURCE",
        ),
        (
            _flags(test_source="testsrc2", output="file:///o.mp4", volume=["w:/work:emptyDir"]),
            r"lies under no volume \(mounted: /work\); .* --output file:///media/o.mp4",
        ),
        (
            _flags(input="file:///in/a.mov", output="file:///work/o.mp4", volume=["w:/work:emptyDir"]),
            r"--input file:///in/a.mov lies under no volume .* add --volume in:/in:SOURCE",
        ),
        (_flags(input="file:///work2/a.mov", output="rtmp://h/l/k", volume=["w:/work:emptyDir"]), "--input"),
    ],
)
def test_given_a_file_path_under_no_volume_then_the_hint_names_the_volume_flag(flags, message):
    with pytest.raises(UsageError, match=message):
        job_from_flags(flags)


def test_given_file_paths_under_volumes_then_the_job_is_built():
    job = job_from_flags(
        _flags(input="file:///in/a.mov", output="file:///out/o.mp4", volume=["in:/in:pvc=media", "out:/out:emptyDir"])
    )
    assert [v["name"] for v in job["spec"]["volumes"]] == ["in", "out"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (192, "3m12s"), (900, "15m"), (18180, "5h3m"), (187200, "2d4h"), (None, "-"), (-1, "-")],
)
def test_given_seconds_then_durations_read_like_kubectl(seconds, text):
    assert duration(seconds) == text


def test_given_timestamps_then_age_and_table_align():
    assert age(_iso(NOW - timedelta(seconds=75)), now=NOW) == "1m15s"
    assert age(None, now=NOW) == "<unknown>"
    assert table(["A", "LONG"], [["xx", 1], ["y", None]]).splitlines() == ["A    LONG", "xx   1", "y"]


def test_given_progress_then_eta_is_media_left_over_speed():
    # 25% of a 40 s input done at 2x: 30 s of media left, 15 s of wall time.
    assert eta_seconds({"percent": 25.0, "speed": 2.0, "outTimeSeconds": 10.0}) == pytest.approx(15.0)
    assert eta_seconds({"percent": 25.0, "speed": 0.0, "outTimeSeconds": 10.0}) is None
    assert eta_seconds({"percent": 50.0, "speed": 1.0}, total_seconds=60) == pytest.approx(30.0)


def test_given_a_running_job_then_the_progress_line_shows_phase_bar_percent_fps_speed_eta():
    job = {
        "status": {
            "phase": "Processing",
            "node": "n1",
            "progress": {"percent": 50.0, "fps": 240.0, "speed": 4.0, "outTimeSeconds": 20.0},
        }
    }
    line = progress_line(job, width=10)
    assert line.startswith("Processing")
    assert "[#####-----]" in line and " 50.0%" in line and "240.0 fps" in line and "4.00x" in line
    assert "ETA 5s" in line and "on n1" in line


def test_given_a_failed_job_then_the_line_carries_the_reason():
    line = progress_line({"status": {"phase": "Failed", "reason": "InputError", "message": "no such file"}})
    assert "Failed" in line and "InputError: no such file" in line


def _node(name, **labels):
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": _iso(NOW - timedelta(hours=1)),
            "labels": {"ffrtmp.io/worker": "true", **labels},
            "annotations": {"ffrtmp.io/hardware": '{"cpu": {"cores": 8}, "gpu": false}'},
        },
        "spec": {},
    }


def _lease(node, seconds_ago):
    return {
        "metadata": {"name": f"ffrtmp-agent-{node}", "annotations": {"ffrtmp.io/slots": "3"}},
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": 15,
            "renewTime": _iso(NOW - timedelta(seconds=seconds_ago)),
        },
    }


def _job(name, phase, node):
    return {
        "metadata": {"name": name, "namespace": "media", "creationTimestamp": _iso(NOW)},
        "spec": {"queue": "default", "priority": "high"},
        "status": {"phase": phase, "node": node},
    }


def test_given_nodes_leases_and_jobs_then_rows_show_status_slots_and_encoders():
    nodes = [_node("b"), _node("a", **{"ffrtmp.io/encoder.libx264": "true", "ffrtmp.io/gpu": "false"})]
    leases = {"a": _lease("a", 2), "b": _lease("b", 60)}
    jobs = [_job("j1", "Processing", "a"), _job("j2", "Completed", "a"), _job("j3", "Assigned", "a")]
    rows = node_rows(nodes, leases, jobs, now=NOW)
    assert rows[0][:5] == ["a", "Ready", "2/3", "false", "libx264"]
    assert rows[1][:3] == ["b", "Lost", "0/3"]


def test_given_a_node_then_describe_shows_hardware_encoders_slots_and_running_jobs():
    node = _node("a", **{"ffrtmp.io/encoder.libx264": "true"})
    text = describe_node_text(
        node, _lease("a", 1), [_job("j1", "Processing", "a"), _job("j2", "Completed", "a")], now=NOW
    )
    assert "Status:      Ready" in text and "Encoders:    libx264" in text and "Slots:       1 used of 3" in text
    assert "cores: 8" in text
    assert "j1" in text and "j2" not in text


def test_given_the_parser_then_connection_flags_work_before_and_after_the_command():
    parser = cli.build_parser()
    before = parser.parse_args(["-n", "x", "--context", "c", "status", "job"])
    after = parser.parse_args(["status", "job", "-n", "x", "--kubeconfig", "/k"])
    assert (before.namespace, before.context, before.kubeconfig) == ("x", "c", None)
    assert (after.namespace, after.kubeconfig) == ("x", "/k")
    nodes = parser.parse_args(["nodes", "describe", "n1", "--system-namespace", "sys"])
    assert (nodes.nodes_command, nodes.node, nodes.system_namespace) == ("describe", "n1", "sys")


@pytest.mark.parametrize(
    ("status", "text"),
    [
        ({"reason": "InputError", "message": "no such file"}, "InputError: no such file"),
        (
            {
                "reason": "PodError",
                "message": 'PodError: Traceback (most recent call last):\n  File "x", line 5\n'
                "ModuleNotFoundError: No module named 'x'; retry in 10s",
            },
            "PodError: ModuleNotFoundError: No module named 'x'; retry in 10s",
        ),
        ({"reason": "Timeout", "message": "Timeout: ran past 60s"}, "Timeout: ran past 60s"),
        ({"reason": "CanceledByUser"}, "CanceledByUser"),
        ({}, ""),
    ],
)
def test_given_a_reason_and_a_many_line_message_then_the_progress_line_stays_one_line(status, text):
    assert why(status) == text
    line = progress_line({"status": {"phase": "Failed", **status}})
    assert "\n" not in line and line.endswith(text)
