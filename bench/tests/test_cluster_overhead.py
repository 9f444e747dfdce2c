"""bench.cluster_overhead's pure parts at a tiny size, no cluster: the job spec turns into a plan, the plain pod
keeps the job pod's shape but runs the plan's ffmpeg argv, log timestamps give the first frame, and the result
holds the figures the issue names."""

from __future__ import annotations

import json

import ffrtmp_api as api
from ffrtmp_operator.plan import build_plan

from bench.cluster_overhead import (
    Pair,
    first_frame_at,
    job_spec,
    parse_stamp,
    plain_pod,
    result,
    runner_stages,
    stages,
)


def _job_pod(seconds: int) -> tuple[dict, list[str]]:
    job = api.TranscodeJob.model_validate(
        {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": "j", "namespace": "ns"},
            "spec": job_spec(seconds),
        }
    )
    plan = build_plan(job, namespace="ns", name="j", uid="u", attempt=1, encoder="libx264")
    pod = {
        "metadata": {"name": "j-1", "ownerReferences": [{"kind": "TranscodeJob"}]},
        "spec": {
            "nodeName": "n1",
            "serviceAccountName": "ffrtmp-job-j",
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 65532},
            "volumes": [{"name": "work", "emptyDir": {"sizeLimit": "10Gi"}}],
            "containers": [
                {
                    "name": "runner",
                    "image": "img:1",
                    "command": ["ffrtmp-runner"],
                    "env": [{"name": "FFRTMP_PLAN", "value": plan.model_dump_json()}],
                    "resources": {"limits": {"cpu": "4"}},
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                }
            ],
        },
    }
    return pod, plan.ffmpegArgs


def test_given_a_job_pod_when_made_plain_then_it_runs_the_plans_ffmpeg_argv_on_the_same_node_and_image() -> None:
    pod, argv = _job_pod(1)
    plain = plain_pod(pod, "plain-0")
    [container] = plain["spec"]["containers"]
    assert container["command"] == argv and argv[0] == "ffmpeg" and "-progress" in argv
    assert (container["image"], container["resources"], container["volumeMounts"]) == (
        "img:1",
        {"limits": {"cpu": "4"}},
        [{"name": "work", "mountPath": "/work"}],
    )
    assert "env" not in container and "serviceAccountName" not in plain["spec"]
    assert plain["spec"]["nodeName"] == "n1" and plain["spec"]["automountServiceAccountToken"] is False
    assert plain["metadata"] == {"name": "plain-0", "labels": {"ffrtmp.io/bench": "plain"}}
    json.dumps(plain)


def test_given_a_timestamped_progress_log_then_the_first_frame_is_the_first_nonzero_frame_line() -> None:
    log = (
        "2026-11-30T19:00:00.100000000Z frame=0\n2026-11-30T19:00:00.200000000Z fps=0.00\n"
        "2026-11-30T19:00:01.512345678Z frame=12\n2026-11-30T19:00:02Z frame=40\n"
    )
    assert first_frame_at(log) == parse_stamp("2026-11-30T19:00:01.512345Z")
    assert parse_stamp("2026-11-30T19:00:02Z") - parse_stamp("2026-11-30T19:00:01.5Z") == 0.5
    assert first_frame_at("2026-11-30T19:00:00Z frame=0\n") is None


def test_given_pairs_then_the_result_has_the_ratio_and_p50s() -> None:
    pairs = [
        Pair(11.0, 10.0, 2.0, 1.0, {"startedAt": 1.0}),
        Pair(12.0, 10.0, 3.0, None, {"startedAt": 2.0}),
        Pair(10.0, 10.0, 4.0, 1.5),
    ]
    res = result(pairs, seconds=1, load=(1.0, 2.0, 3.0), machine={"cpus": 2})
    assert res["ratio"] == 1.1 and res["ratio_of_p50"] == 1.1
    assert (res["job_wall_s"], res["pod_wall_s"]) == (11.0, 10.0)
    assert (res["job_first_frame_s"], res["pod_first_frame_s"]) == (3.0, 1.25)
    assert res["job_stages_p50_s"] == {
        "queuedAt": None,
        "assignedAt": None,
        "startedAt": 1.5,
        "completedAt": None,
        "runnerStarted": None,
        "ffmpegStarted": None,
    }
    log = (
        '2026-11-30T19:33:46.5Z {"msg": "runner for ns/j attempt 1 (libx264)"}\n'
        '2026-11-30T19:33:46.75Z {"msg": "starting ffmpeg -hide_banner"}\n2026-11-30T19:33:50Z {"msg": "x"}\n'
    )
    assert runner_stages(log, parse_stamp("2026-11-30T19:33:45Z")) == {"runnerStarted": 1.5, "ffmpegStarted": 1.75}
    t0 = parse_stamp("2026-11-30T19:33:45Z")
    assert stages({"queuedAt": "2026-11-30T19:33:45.396Z", "startedAt": None}, t0) == {"queuedAt": 0.396}
    assert res["pairs"] == 3 and res["load_average"] == [1.0, 2.0, 3.0] and res["machine"] == {"cpus": 2}


def test_given_a_result_then_the_report_renders_its_table() -> None:
    from bench.report import cluster_table

    res = result(
        [Pair(11.0, 10.0, 2.0, 1.0)], seconds=1, load=(1.0, 2.0, 3.0), machine={"cpu_model": "cpu", "logical_cpus": 2}
    )
    table = cluster_table(res)
    assert "| wall, create to completed, p50 | 11.0 s | 10.0 s | ratio **1.1**" in table and "met" in table
