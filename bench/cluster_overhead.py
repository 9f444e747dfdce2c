"""Job-pod overhead on a real kubelet (`make cluster`): a TranscodeJob end to end against a plain Pod that runs
the same image and the job's own ffmpeg argv (its ExecutionPlan.ffmpegArgs) on the same node, alternated pairs.
`python -m bench.cluster_overhead [--pairs 5] [--seconds 10]` -> bench/results/cluster-overhead.json.

Uses the cluster of --dev-dir when it runs, else starts a one-node `make cluster` of its own (removed after);
when neither can be had (another owner's cluster, no binaries) it says why and writes nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from . import common

NAMESPACE = "bench-cluster-overhead"
STAGES = ("queuedAt", "assignedAt", "startedAt", "completedAt", "runnerStarted", "ffmpegStarted")
GROUP, VERSION, PLURAL = "ffrtmp.io", "v1alpha1", "transcodejobs"


@dataclass(frozen=True)
class Pair:
    """One job and its plain pod: seconds from the create call to completion and to the first encoded frame."""

    job_wall_s: float
    pod_wall_s: float
    job_first_frame_s: float | None
    pod_first_frame_s: float | None
    # seconds from the create call to the job's status stamps (queuedAt, assignedAt, startedAt, completedAt)
    job_stages: dict[str, float] = field(default_factory=dict)


# -- pure parts (bench/tests) -------------------------------------------------------------------------------
def job_spec(seconds: int) -> dict[str, Any]:
    """A 720p30 test-source job, libx264 veryfast at 720p, written to an emptyDir (no storage in the figure)."""
    return {
        "input": {
            "testSource": {"pattern": "testsrc2", "width": 1280, "height": 720, "fps": 30, "durationSeconds": seconds}
        },
        "output": {"url": "file:///work/out.mp4"},
        "video": {"codec": "h264", "preset": "veryfast", "crf": 23},
        "audio": {"codec": "aac", "bitrate": "96k"},
        "volumes": [{"name": "work", "mountPath": "/work", "emptyDir": {}}],
    }


def plain_pod(job_pod: dict[str, Any], name: str) -> dict[str, Any]:
    """The job pod minus ffrtmp: same node, image, resources, security context and volumes, but the command is
    the plan's ffmpeg argv (its -progress pipe:1 blocks go to the log) and no service account token."""
    spec = copy.deepcopy(job_pod["spec"])
    [runner] = spec["containers"]
    plan = next(e["value"] for e in runner.get("env", []) if e["name"] == "FFRTMP_PLAN")
    container = {k: v for k, v in runner.items() if k not in ("env", "command", "args", "name")}
    container.update(name="ffmpeg", command=json.loads(plan)["ffmpegArgs"])
    keep = ("nodeName", "priorityClassName", "restartPolicy", "securityContext", "volumes")
    pod_spec = {k: spec[k] for k in keep if k in spec}
    pod_spec.update(containers=[container], automountServiceAccountToken=False)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"ffrtmp.io/bench": "plain"}},
        "spec": pod_spec,
    }


def first_frame_at(log: str) -> float | None:
    """Epoch seconds of the first `frame=N` line with N > 0 in a log read with timestamps (the runtime stamps
    each line when it reads it from the container's stdout); None when there is none."""
    for line in log.splitlines():
        stamp, _, text = line.partition(" ")
        if text.startswith("frame=") and text[6:].strip().isdigit() and int(text[6:]) > 0:
            return parse_stamp(stamp)
    return None


def parse_stamp(stamp: str) -> float:
    """RFC 3339 with nanoseconds (what kubelet logs carry) to epoch seconds (microsecond precision)."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6].ljust(6, '0')}+00:00").timestamp()


def stages(status: dict[str, Any], t0: float) -> dict[str, float]:
    """Where the job's time goes: each status stamp the operator and runner write, as seconds after t0."""
    return {k: round(parse_stamp(status[k]) - t0, 3) for k in STAGES[:4] if status.get(k)}


def runner_stages(log: str, t0: float) -> dict[str, float]:
    """From the job pod's log read with timestamps: when the runner logged its first line and started ffmpeg."""
    out: dict[str, float] = {}
    for line in log.splitlines():
        stamp, _, text = line.partition(" ")
        if "runnerStarted" not in out:
            out["runnerStarted"] = round(parse_stamp(stamp) - t0, 3)
        if '"msg": "starting ffmpeg' in text:
            out["ffmpegStarted"] = round(parse_stamp(stamp) - t0, 3)
            break
    return out


def result(pairs: list[Pair], *, seconds: int, load: Iterable[float], machine: dict[str, Any]) -> dict[str, Any]:
    """The figures: p50 of each side and `ratio`, the median of the per-pair job/pod wall ratios (alternation
    cancels slow drift of the machine's load; the p50 ratio is reported beside it)."""

    def p50(values: list[float | None]) -> float | None:
        got = [v for v in values if v is not None]
        return round(statistics.median(got), 3) if got else None

    job_wall, pod_wall = [p.job_wall_s for p in pairs], [p.pod_wall_s for p in pairs]
    return {
        "benchmark": "cluster-overhead",
        "pairs": len(pairs),
        "clip": f"{seconds} s testsrc2 1280x720 30 fps, libx264 veryfast crf 23 + aac, to an emptyDir",
        "ratio": round(statistics.median(j / p for j, p in zip(job_wall, pod_wall, strict=True)), 3),
        "ratio_of_p50": round(statistics.median(job_wall) / statistics.median(pod_wall), 3),
        "job_wall_s": p50(job_wall),
        "pod_wall_s": p50(pod_wall),
        "job_first_frame_s": p50([p.job_first_frame_s for p in pairs]),
        "pod_first_frame_s": p50([p.pod_first_frame_s for p in pairs]),
        "job_stages_p50_s": {k: p50([p.job_stages.get(k) for p in pairs]) for k in STAGES},
        "per_pair": [asdict(p) for p in pairs],
        "load_average": [round(x, 2) for x in load],
        "machine": machine,
    }


# -- the run --------------------------------------------------------------------------------------------------
class Bench:
    """The cluster side: creates, watches and deletes the job and the plain pod in NAMESPACE."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import client, config

        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.client = client

    def namespace(self) -> None:
        labels = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn")}
        try:
            self.core.create_namespace({"metadata": {"name": NAMESPACE, "labels": labels}})
        except self.client.exceptions.ApiException as exc:
            if exc.status != 409:
                raise

    def _watch(self, list_fn: Callable[..., Any], name: str, step: Callable[[dict], bool], *args: Any) -> None:
        """Streams `name`'s events into step(object as a dict) until it returns True (10 minutes at most)."""
        from kubernetes import watch

        w = watch.Watch()
        for event in w.stream(list_fn, *args, field_selector=f"metadata.name={name}", timeout_seconds=600):
            obj = event["object"]
            if not isinstance(obj, dict):
                obj = self.api.sanitize_for_serialization(obj)
            if step(obj):
                w.stop()
                return
        raise RuntimeError(f"{name}: no end within 10 minutes")

    def run_job(self, name: str, seconds: int) -> tuple[Pair, dict[str, Any]]:
        """A job end to end; its pod as created (for the plain pod) and the times (pod side left 0)."""
        seen: dict[str, float] = {}
        seen_status: dict[str, Any] = {}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TranscodeJob",
            "metadata": {"name": name},
            "spec": job_spec(seconds),
        }
        t0 = time.time()
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)

        def step(job: dict) -> bool:
            status = job.get("status") or {}
            if int((status.get("progress") or {}).get("frame") or 0) > 0:
                seen.setdefault("frame", time.time())
            phase = status.get("phase")
            if phase in ("Failed", "Canceled"):
                raise RuntimeError(f"job {name} {phase}: {status.get('message')}")
            if phase == "Completed":
                seen["done"] = time.time()
                seen_status.update(status)
                return True
            return False

        self._watch(self.custom.list_namespaced_custom_object, name, step, GROUP, VERSION, NAMESPACE, PLURAL)
        [pod] = self.core.list_namespaced_pod(NAMESPACE, label_selector=f"ffrtmp.io/job={name}").items
        frame = seen.get("frame")
        log = self.core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE, timestamps=True)
        times = {**stages(seen_status, t0), **runner_stages(log, t0)}
        return (
            Pair(seen["done"] - t0, 0.0, None if frame is None else frame - t0, None, times),
            self.api.sanitize_for_serialization(pod),
        )

    def run_pod(self, manifest: dict[str, Any]) -> tuple[float, float | None]:
        name = manifest["metadata"]["name"]
        done: dict[str, str] = {}
        t0 = time.time()
        self.core.create_namespaced_pod(NAMESPACE, manifest)

        def step(pod: dict) -> bool:
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                done["phase"] = phase
                return True
            return False

        self._watch(self.core.list_namespaced_pod, name, step, NAMESPACE)
        wall = time.time() - t0
        log = self.core.read_namespaced_pod_log(name, NAMESPACE, timestamps=True)
        if done["phase"] != "Succeeded":
            raise RuntimeError(f"plain pod {name} failed:\n{log[-2000:]}")
        frame = first_frame_at(log)
        return wall, None if frame is None else frame - t0

    def delete(self, job: str, pod: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, job)
        self.core.delete_namespaced_pod(pod, NAMESPACE, grace_period_seconds=0)


def measure(kubeconfig: Path, *, pairs: int, seconds: int) -> list[Pair]:
    """Alternated pairs: even pairs run the job first, odd ones the plain pod first (on the job's previous pod
    spec), so neither side always follows the other. A warm-up pair is run and dropped."""
    bench = Bench(kubeconfig)
    bench.namespace()
    out: list[Pair] = []
    template: dict[str, Any] | None = None
    for i in range(-1, pairs):
        tag = "warm" if i < 0 else str(i)
        if i % 2 == 1 and template is not None:
            pod_wall, pod_frame = bench.run_pod(plain_pod(template, f"plain-{tag}"))
            job, template = bench.run_job(f"job-{tag}", seconds)
        else:
            job, template = bench.run_job(f"job-{tag}", seconds)
            pod_wall, pod_frame = bench.run_pod(plain_pod(template, f"plain-{tag}"))
        bench.delete(f"job-{tag}", f"plain-{tag}")
        pair = replace(job, pod_wall_s=pod_wall, pod_first_frame_s=pod_frame)
        print(
            f"pair {tag}: job {pair.job_wall_s:.2f} s (first frame {pair.job_first_frame_s}), "
            f"pod {pair.pod_wall_s:.2f} s (first frame {pair.pod_first_frame_s})",
            flush=True,
        )
        if i >= 0:
            out.append(pair)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_overhead", description=__doc__)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10, help="clip length")
    parser.add_argument("--dev-dir", type=Path, default=Path(os.environ.get("FFRTMP_DEV_DIR", ".dev")))
    parser.add_argument("--kubeconfig", type=Path, help="a cluster with the chart installed (else --dev-dir's)")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "cluster-overhead.json")
    args = parser.parse_args(argv)

    from ffrtmp_cluster.cluster import Cluster, UpConfig

    own: Cluster | None = None
    kubeconfig = args.kubeconfig
    if kubeconfig is None:
        ours = Cluster(args.dev_dir, say=lambda _: None)
        if ours.status():
            kubeconfig = args.dev_dir / "kubeconfig"
        else:
            own = Cluster(args.dev_dir / "bench-cluster")
            try:
                own.up(UpConfig(nodes=1))
            except (RuntimeError, OSError) as exc:
                own.down()
                print(f"cluster overhead skipped: no cluster ({exc})", file=sys.stderr)
                return 0
            kubeconfig = args.dev_dir / "bench-cluster" / "kubeconfig"
    try:
        pairs = measure(kubeconfig, pairs=args.pairs, seconds=args.seconds)
        load = os.getloadavg()
    finally:
        if own is not None:
            own.down()
    res = result(pairs, seconds=args.seconds, load=load, machine=common.machine())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: res[k]
                for k in (
                    "ratio",
                    "job_wall_s",
                    "pod_wall_s",
                    "job_first_frame_s",
                    "pod_first_frame_s",
                    "pairs",
                    "load_average",
                )
            }
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
