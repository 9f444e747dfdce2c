"""Transcode overhead: one 20 s 1280x720 libx264 veryfast encode through the whole stack (operator, one
standalone agent, the runner; from the job's create to phase Completed) against the same ffmpeg argv run
bare, alternated in pairs. `python -m bench.transcode [--pairs 5]` -> bench/results/transcode.json.

CPU overhead = the agent's own CPU plus everything it reaped (unshare, the runner, ffprobe, ffmpeg) minus
ffmpeg's own CPU, as a share of ffmpeg's CPU. ffmpeg's CPU is its rusage, which the runner logs when it reaps
it (exact); /proc samples (every 50 ms, up to one interval low) stand in when the log has no such line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ffrtmp_api as api  # noqa: E402
import psutil
from ffrtmp_operator.plan import build_plan  # noqa: E402
from ffrtmp_stack import ControlPlane, procs  # bench/__init__ puts tools/ on sys.path

from . import common
from .kube import Kube, Watch
from .workload import JOBS

log = logging.getLogger("bench.transcode")
NAMESPACE = "bench-transcode"
NODE = "bench-transcode-1"
# The runner's log lines with exact CPU seconds (encode.py, __main__.py).
FFMPEG_CPU = re.compile(r"ffmpeg \d+ exited -?\d+ after ([0-9.]+) s of CPU")
RUNNER_CPU = re.compile(r"^finished: .*; CPU ([0-9.]+) s, of ffmpeg and ffprobe ([0-9.]+) s$")


def job_manifest(name: str, *, media: Path, seconds: float) -> dict[str, Any]:
    """The measured job. The volume's mountPath is the host directory itself, so the plan's paths are
    real local paths and the bare run can execute the very same argv."""
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": {
            "input": {
                "testSource": {
                    "pattern": "testsrc2",
                    "width": 1280,
                    "height": 720,
                    "fps": 30,
                    "durationSeconds": seconds,
                }
            },
            "output": {"url": f"file://{media}/{name}.mp4"},
            "video": {"codec": "h264", "preset": "veryfast"},
            "hardware": {"accelerator": "none"},
            "volumes": [
                {
                    "name": "media",
                    "mountPath": str(media),
                    "hostPath": {"path": str(media), "type": "DirectoryOrCreate"},
                }
            ],
        },
    }


def bare_argv(name: str, *, media: Path, seconds: float) -> list[str]:
    job = api.TranscodeJob.model_validate(job_manifest(name, media=media, seconds=seconds))
    plan = build_plan(job, namespace=NAMESPACE, name=name, uid="bare", attempt=1, encoder="libx264")
    return plan.ffmpegArgs


def run_bare(argv: list[str]) -> dict[str, float]:
    """Run argv, discarding its -progress output; wall seconds and exact CPU seconds (wait4 rusage)."""
    began = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = threading.Thread(target=lambda: proc.stdout.read(), daemon=True)  # type: ignore[union-attr]
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"bare ffmpeg failed ({proc.returncode}): {err[-500:]}")
    return {"wall_s": round(wall, 3), "ffmpeg_cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}


def _kind(p: psutil.Process) -> str:
    """What a process under the agent is: ffmpeg, ffprobe, runner, mountns (the agent's exec helper), unshare."""
    name = p.name()
    if name in ("ffmpeg", "ffprobe", "unshare"):
        return name
    cmd = " ".join(p.cmdline())
    if "ffrtmp-runner" in cmd or "ffrtmp_agent.runner" in cmd:
        return "runner"
    if "kubelet/mountns.py" in cmd or "kubelet.mountns" in cmd:  # the exec helper (python -I -S <file>)
        return "mountns"
    return name


class TreeSampler:
    """Reads the CPU time of every process under `root` every `interval_s`; keeps each pid's last value by
    kind. A process's last interval can be missed: ffmpeg's CPU reads at most one interval low, which makes
    the overhead look larger, not smaller."""

    def __init__(self, root: int, *, interval_s: float = 0.05) -> None:
        self.root = root
        self.interval_s = interval_s
        self.cpu: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in common.tree(self.root)[1:]:
                try:
                    t = p.cpu_times()
                    kind = _kind(p)  # each time: unshare and the mountns helper exec into the runner
                except psutil.Error:
                    continue
                self.cpu[p.pid] = (kind, t.user + t.system)
            self._stop.wait(self.interval_s)

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for kind, cpu in self.cpu.values():
            out[kind] = round(out.get(kind, 0.0) + cpu, 3)
        return out


class Completion:
    """Fed by a job watch: when each job first reached a terminal phase (time.time())."""

    def __init__(self) -> None:
        self.done: dict[str, tuple[str, float]] = {}
        self.first_frame: dict[str, float] = {}  # when status.progress.frame was first > 0 (what a user sees)
        self.cond = threading.Condition()

    def on_job(self, kind: str, obj: dict[str, Any], seen: float) -> None:
        if ((obj.get("status") or {}).get("progress") or {}).get("frame"):
            self.first_frame.setdefault(obj["metadata"]["name"], seen)
        phase = (obj.get("status") or {}).get("phase")
        if phase in ("Completed", "Failed", "Canceled"):
            with self.cond:
                self.done.setdefault(obj["metadata"]["name"], (phase, seen))
                self.cond.notify_all()

    def wait(self, name: str, timeout_s: float) -> tuple[str, float]:
        with self.cond:
            if not self.cond.wait_for(lambda: name in self.done, timeout=timeout_s):
                raise TimeoutError(f"job {name} not finished after {timeout_s:.0f} s")
            return self.done[name]


def run_stack_job(
    kube: Kube,
    completion: Completion,
    *,
    name: str,
    media: Path,
    seconds: float,
    agent: psutil.Process,
    operator: psutil.Process,
    pods: Path,
) -> dict[str, Any]:
    agent_self0 = common.cpu_seconds([agent], children=False)
    agent_all0 = common.cpu_seconds([agent])
    op0 = common.cpu_seconds([operator])
    with TreeSampler(agent.pid) as tree:
        submitted = time.time()
        kube.request("POST", JOBS.format(ns=NAMESPACE), job_manifest(name, media=media, seconds=seconds))
        phase, seen = completion.wait(name, timeout_s=600)
        time.sleep(1.0)  # the agent reaps and reports after Completed is visible; count that work too
    wall = seen - submitted
    status = kube.request("GET", f"{JOBS.format(ns=NAMESPACE)}/{name}").get("status", {})
    agent_self = common.cpu_seconds([agent], children=False) - agent_self0
    everything = common.cpu_seconds([agent]) - agent_all0  # the agent itself + everything it reaped
    kinds = tree.by_kind()
    exact = runner_log_cpu(pods, name)
    ffmpeg = exact.get("ffmpeg", kinds.get("ffmpeg", 0.0))
    return {
        "phase": phase,
        "wall_s": round(wall, 3),
        "ffmpeg_cpu_s": round(ffmpeg, 3),
        "ffmpeg_cpu_s_exact": "ffmpeg" in exact,
        "runner_log_cpu_s": exact,
        "agent_and_runner_cpu_s": round(everything - ffmpeg, 3),
        "agent_own_cpu_s": round(agent_self, 3),
        "sampled_cpu_s_by_process": kinds,
        "operator_cpu_s": round(common.cpu_seconds([operator]) - op0, 3),
        "encode_wall_s_runner": (status.get("result") or {}).get("wallSeconds"),
        "timeline_s": timeline(submitted, status),
        "first_frame_s": round(completion.first_frame[name] - submitted, 3) if name in completion.first_frame else None,
    }


def runner_log_cpu(pods: Path, job: str) -> dict[str, float]:
    """Exact CPU seconds from the runner's own log, summed over the job's pods (attempts): "ffmpeg" (its
    rusage, logged when the runner reaps it), "runner" (the pod process's own: unshare, the mount helper and
    the runner, which exec one into the next) and "runner_children" (everything it reaped). Empty without
    those lines. The /proc samples miss what ran after the last one of each process."""
    out: dict[str, float] = {}
    for path in pods.glob(f"{NAMESPACE}_{job}-*_*/runner.log"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                msg = json.loads(line).get("msg", "")
            except ValueError:
                continue
            if match := FFMPEG_CPU.match(msg):
                out["ffmpeg"] = round(out.get("ffmpeg", 0.0) + float(match.group(1)), 3)
            elif match := RUNNER_CPU.search(msg):
                out["runner"] = round(out.get("runner", 0.0) + float(match.group(1)), 3)
                out["runner_children"] = round(out.get("runner_children", 0.0) + float(match.group(2)), 3)
    return out


def timeline(submitted: float, status: dict[str, Any]) -> dict[str, float]:
    """Seconds from our create call to each phase the operator stamped (its clock, same machine)."""
    out: dict[str, float] = {}
    for entry in status.get("transitions", []):
        at = api.parse_time(entry.get("at"))
        if at:
            out.setdefault(entry["phase"], round(at.timestamp() - submitted, 3))
    return out


def wait_node(kube: Kube, timeout_s: float = 180) -> None:
    label = f"{api.LABEL_ENCODER_PREFIX}libx264"

    def ready() -> bool:
        try:
            node = kube.request("GET", f"/api/v1/nodes/{NODE}")
            kube.request(
                "GET",
                f"/apis/coordination.k8s.io/v1/namespaces/{api.DEFAULT_SYSTEM_NAMESPACE}/leases/"
                f"{api.LEASE_PREFIX}{NODE}",
            )
        except Exception:  # noqa: BLE001 - not there yet
            return False
        return node["metadata"].get("labels", {}).get(label) == "true"

    procs.wait_until(ready, timeout_s=timeout_s, what=f"node {NODE} with {label}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transcode", description=__doc__)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic source")
    parser.add_argument("--name", default="transcode")
    parser.add_argument("--results-dir", type=Path, default=common.RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    work = Path(tempfile.mkdtemp(prefix="ffrtmp-bench-tc-"))
    work.chmod(0o755)  # mkdtemp makes it 0700: the runner (api.RUNNER_UID, not root) must reach media/
    media = work / "media"
    media.mkdir()
    media.chmod(0o777)  # the runner may run as the pod's non-root user
    result: dict[str, Any] = {
        "name": args.name,
        "started": common.utc_stamp(),
        "machine": common.machine(),
        "command": "python -m bench.transcode " + " ".join(argv if argv is not None else sys.argv[1:]),
        "config": {
            "pairs": args.pairs,
            "source_seconds": args.seconds,
            "size": "1280x720",
            "fps": 30,
            "encoder": "libx264",
            "preset": "veryfast",
        },
    }
    with ControlPlane(work / "cp") as cp:
        kube = Kube(server=cp.server, token=cp.token, ca_file=cp.ca_file)
        kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        env = cp.env()
        op_port, agent_port = procs.free_port(), procs.free_port()
        op = procs.start(
            [
                sys.executable,
                "-m",
                "ffrtmp_operator",
                "--metrics-port",
                str(op_port),
                "--host-path",
                f"{NAMESPACE}={media}",
            ],  # the admin's hostPath opt-in for the bench
            log=work / "logs" / "operator.log",
            marker=f"{work}:operator",
            env=env,
            cwd=common.REPO,
            tie_to_parent=True,
        )
        ag = procs.start(
            [
                sys.executable,
                "-m",
                "ffrtmp_agent",
                "--standalone",
                "--node-name",
                NODE,
                "--slots",
                "1",
                "--metrics-port",
                str(agent_port),
                "--work-dir",
                str(work / "agent"),
            ],
            log=work / "logs" / "agent.log",
            marker=f"{work}:agent",
            env=env,
            cwd=common.REPO,
            tie_to_parent=True,
        )
        completion = Completion()
        try:
            wait_node(kube)
            watch = Watch(kube, JOBS.format(ns=NAMESPACE), completion.on_job).start()
            agent, operator = psutil.Process(ag.pid), psutil.Process(op.pid)
            pods = work / "agent" / "pods"  # the standalone agent's pod folders, each with its runner.log
            log.info("warm-up job")
            warm = run_stack_job(
                kube, completion, name="warmup", media=media, seconds=2, agent=agent, operator=operator, pods=pods
            )
            if warm["phase"] != "Completed":
                raise RuntimeError(f"warm-up job ended {warm}; see {work}/logs")
            # The agent's CPU with no job (lease renewals, metrics sampling, its loops): the part of its per-job
            # CPU that grows with the job's wall time rather than with the job.
            idle0, idle_s = common.cpu_seconds([agent], children=False), 10.0
            time.sleep(idle_s)
            result["agent_idle_cpu_ms_per_s"] = round(
                1000 * (common.cpu_seconds([agent], children=False) - idle0) / idle_s, 2
            )
            pairs = []
            for i in range(args.pairs):
                name = f"tc-{i}"
                argv_bare = bare_argv(f"bare-{i}", media=media, seconds=args.seconds)
                order = ("bare", "stack") if i % 2 == 0 else ("stack", "bare")  # alternate: drift cancels out
                pair: dict[str, Any] = {"order": list(order)}
                for kind in order:
                    if kind == "bare":
                        pair["bare"] = run_bare(argv_bare)
                    else:
                        pair["stack"] = run_stack_job(
                            kube,
                            completion,
                            name=name,
                            media=media,
                            seconds=args.seconds,
                            agent=agent,
                            operator=operator,
                            pods=pods,
                        )
                    log.info("pair %d %s: %s", i, kind, pair[kind])
                s, b = pair["stack"], pair["bare"]
                pair["wall_ratio"] = round(s["wall_s"] / b["wall_s"], 4)
                pair["cpu_overhead_percent"] = round(100 * s["agent_and_runner_cpu_s"] / s["ffmpeg_cpu_s"], 3)
                pair["ffmpeg_cpu_stack_vs_bare"] = round(s["ffmpeg_cpu_s"] / b["ffmpeg_cpu_s"], 4)
                # The stack's fixed cost (admission, process start, reporting): its wall minus the runner's
                # own measure of the encode. Less sensitive to other load than the raw ratio.
                if s.get("encode_wall_s_runner"):
                    pair["stack_fixed_overhead_s"] = round(s["wall_s"] - s["encode_wall_s_runner"], 3)
                pairs.append(pair)
                for f in media.glob("*"):
                    f.unlink()
            watch.stop()
        finally:
            for proc, part in ((ag, "agent"), (op, "operator")):
                procs.stop(proc.pid, marker=f"{work}:{part}", grace_s=10)
                proc.wait()
            result["agent_log_tail"] = procs.tail(work / "logs" / "agent.log", 10).splitlines()
    result["warmup"] = warm
    result["bare_argv"] = argv_bare
    result["pairs"] = pairs
    ratios = [p["wall_ratio"] for p in pairs]
    overheads = [p["cpu_overhead_percent"] for p in pairs]
    result.update(
        wall_ratio_median=round(statistics.median(ratios), 4),
        wall_ratio_of_sums=round(sum(p["stack"]["wall_s"] for p in pairs) / sum(p["bare"]["wall_s"] for p in pairs), 4),
        cpu_overhead_percent_median=round(statistics.median(overheads), 3),
        cpu_overhead_percent_of_sums=round(
            100
            * sum(p["stack"]["agent_and_runner_cpu_s"] for p in pairs)
            / sum(p["stack"]["ffmpeg_cpu_s"] for p in pairs),
            3,
        ),
    )
    frames = [p["stack"]["first_frame_s"] for p in pairs if p["stack"].get("first_frame_s") is not None]
    if frames:
        result["first_frame_s_median"] = round(statistics.median(frames), 3)  # create -> frame > 0 in the status
    runner = [p["stack"]["runner_log_cpu_s"]["runner"] for p in pairs if "runner" in p["stack"]["runner_log_cpu_s"]]
    if runner:
        result["runner_cpu_s_median"] = round(statistics.median(runner), 3)  # the pod process, from its log
    fixed = [p["stack_fixed_overhead_s"] for p in pairs if "stack_fixed_overhead_s" in p]
    if fixed:
        result["stack_fixed_overhead_s_median"] = round(statistics.median(fixed), 3)
        result["wall_ratio_from_fixed_overhead"] = round(
            1 + statistics.median(fixed) / statistics.median([p["bare"]["wall_s"] for p in pairs]), 4
        )
    result["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = {
        "wall_ratio<=1.10": result["wall_ratio_median"] <= 1.10,
        "cpu_overhead<=2%": result["cpu_overhead_percent_median"] <= 2.0,
    }
    path = common.write_result(args.name, result, directory=args.results_dir)
    shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                k: result.get(k)
                for k in (
                    "wall_ratio_median",
                    "wall_ratio_of_sums",
                    "wall_ratio_from_fixed_overhead",
                    "cpu_overhead_percent_median",
                    "cpu_overhead_percent_of_sums",
                    "runner_cpu_s_median",
                    "first_frame_s_median",
                    "targets",
                )
            },
            indent=2,
        )
    )
    log.info("results: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
