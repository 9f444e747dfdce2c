"""A real Prometheus scrapes a real operator and two standalone agents while jobs run through ffmpeg; then
every Grafana panel's query is run through Prometheus's HTTP API over the test's time range, as Grafana
would: each must parse and return data. `promtool check metrics` must pass on both kinds of endpoint.

Panels marked `ffrtmpNeeds` (gpu, energy, vmaf) can only have data where the machine has that (NVML, RAPL,
libvmaf); where the jobs report it unavailable they must still parse, and the unit test checks their names.
"""

from __future__ import annotations

import json
import math
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.support import AgentProcess, delete_node, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
SCRAPE_S = 1
GROUP, VERSION, PLURAL = "ffrtmp.io", "v1alpha1", "transcodejobs"


def _get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _promql(base: str, path: str, **params: str) -> dict:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        return json.loads(_get(url, timeout=30))
    except urllib.error.HTTPError as exc:  # 400 with the parse error in the body
        return json.loads(exc.read() or b"{}") or {"status": "error", "error": str(exc)}


def _job(
    name: str,
    node_selector: dict,
    *,
    seconds: float,
    size: str = "320x240",
    preset: str = "ultrafast",
    input_url: str | None = None,
    quality: list[str] | None = None,
) -> dict:
    width, height = (int(x) for x in size.split("x"))
    spec: dict = {
        "input": {"url": input_url}
        if input_url
        else {"testSource": {"width": width, "height": height, "durationSeconds": seconds}},
        "output": {"url": f"file:///out/{name}.mp4"},
        "volumes": [{"name": "out", "mountPath": "/out", "emptyDir": {}}],
        "video": {"codec": "h264", "preset": preset},
        "hardware": {"accelerator": "none"},
        "nodeSelector": node_selector,
        "maxRetries": 0,
    }
    if quality:
        spec["quality"] = {"metrics": quality}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TranscodeJob", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def observed_stack(control_plane, api_client, namespace, tmp_path):
    """Operator + 2 agents + Prometheus scraping them every second."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is needed (apt-get install -y prometheus)"
    run_id = secrets.token_hex(3)
    procs: list[subprocess.Popen] = []
    agents = [
        AgentProcess(env=control_plane.env(), node=f"prom-{run_id}-{i}", work_dir=tmp_path / f"agent{i}")
        for i in (1, 2)
    ]
    operator_port = free_port()
    operator_log = (tmp_path / "operator.log").open("wb")
    procs.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ffrtmp_operator",
                "--namespace",
                namespace,
                "--no-peering",
                "--metrics-port",
                str(operator_port),
                "--tick-seconds",
                "0.5",
            ],
            env=control_plane.env(),
            stdout=operator_log,
            stderr=subprocess.STDOUT,
        )
    )
    prom_port = free_port()
    config = {
        "global": {"scrape_interval": f"{SCRAPE_S}s", "scrape_timeout": f"{SCRAPE_S}s"},
        "scrape_configs": [
            {"job_name": "ffrtmp-operator", "static_configs": [{"targets": [f"127.0.0.1:{operator_port}"]}]},
            {
                "job_name": "ffrtmp-agent",
                "static_configs": [{"targets": [f"127.0.0.1:{a.metrics_port}" for a in agents]}],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_log = (tmp_path / "prometheus.log").open("wb")
    procs.append(
        subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=prom_log,
            stderr=subprocess.STDOUT,
        )
    )
    base = f"http://127.0.0.1:{prom_port}"
    try:
        for agent in agents:
            agent.wait_registered(client.CoreV1Api(api_client))

        def targets_up() -> bool:
            try:
                active = json.loads(_get(f"{base}/api/v1/targets"))["data"]["activeTargets"]
            except OSError:
                return False
            return len(active) == 3 and all(t["health"] == "up" for t in active)

        wait_until(targets_up, timeout=60, interval=0.5, what="Prometheus scraping operator and both agents")
        yield {
            "prometheus": base,
            "operator": f"http://127.0.0.1:{operator_port}/metrics",
            "agents": [f"http://127.0.0.1:{a.metrics_port}/metrics" for a in agents],
            "nodes": [a.node for a in agents],
            "operator_log": tmp_path / "operator.log",
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for agent in agents:
            agent.stop()
            delete_node(api_client, agent.node)
        operator_log.close()
        prom_log.close()


def _promtool_check(url: str) -> None:
    text = _get(url)
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert done.returncode == 0, f"{url}: {done.stdout.decode()}{done.stderr.decode()}"


def test_given_jobs_running_under_prometheus_then_every_dashboard_panel_returns_data(
    observed_stack, api_client, namespace
):
    custom = client.CustomObjectsApi(api_client)
    base = observed_stack["prometheus"]
    start = time.time() - 5
    workers = {"ffrtmp.io/worker": "true"}
    jobs = [
        _job("good-1", workers, seconds=4, quality=["psnr", "ssim"]),
        _job("good-2", workers, seconds=4, size="640x360", quality=["psnr", "ssim", "vmaf"]),
        _job("bad-input", workers, seconds=0, input_url="file:///out/missing.mp4"),
        _job("long", workers, seconds=600, size="1280x720", preset="medium"),
    ]
    for job in jobs:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, job)

    def phase(name: str) -> str | None:
        return (custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name).get("status") or {}).get(
            "phase"
        )

    # A running job's progress reaches Prometheus; check the exposition while per-job series exist.
    wait_until(lambda: phase("long") == "Processing", timeout=90, what="long Processing")

    def progress_scraped() -> bool:
        result = _promql(base, "query", query='ffrtmp_job_progress_ratio{transcodejob="long"} > 0')
        return bool(result.get("data", {}).get("result"))

    wait_until(progress_scraped, timeout=60, interval=1, what="long's progress in Prometheus")
    _promtool_check(observed_stack["operator"])
    for url in observed_stack["agents"]:
        _promtool_check(url)
    custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "long",
        {"spec": {"canceled": True}},
        _content_type="application/merge-patch+json",
    )
    finals = {"good-1": "Completed", "good-2": "Completed", "bad-input": "Failed", "long": "Canceled"}
    for name, wanted in finals.items():
        wait_until(
            lambda name=name: phase(name) in ("Completed", "Failed", "Canceled"),
            timeout=180,
            interval=0.5,
            what=f"{name} to finish",
        )
        assert phase(name) == wanted, f"{name}: {phase(name)}\n{observed_stack['operator_log'].read_text()[-3000:]}"
    finished_at = time.time()

    def scraped_since() -> bool:  # every target scraped twice after the last job finished
        result = _promql(base, "query", query="min(timestamp(up))").get("data", {}).get("result") or []
        return bool(result) and float(result[0]["value"][1]) >= finished_at + SCRAPE_S

    wait_until(scraped_since, timeout=60, interval=0.5, what="the final states scraped")

    results = [
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, n)["status"].get("result") or {}
        for n in ("good-1", "good-2")
    ]
    hardware = [
        json.loads(client.CoreV1Api(api_client).read_node(n).metadata.annotations["ffrtmp.io/hardware"])
        for n in observed_stack["nodes"]
    ]
    available = {
        "gpu": any(h.get("gpus") for h in hardware),
        "energy": any(r.get("energyJoules") is not None for r in results),
        "vmaf": any(r.get("vmaf") is not None for r in results),
    }

    end = time.time()
    empty, unavailable_ok, checked = [], [], 0
    for path in sorted(GRAFANA.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "1m")
                answer = _promql(base, "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step="1")
                where = f"{path.name} / {panel['title']}: {expr}"
                assert answer.get("status") == "success", f"{where}: {answer.get('error')}"
                checked += 1
                values = [float(v) for series in answer["data"]["result"] for _, v in series["values"]]
                if any(not math.isnan(v) for v in values):
                    continue
                needs = panel.get("ffrtmpNeeds")
                if needs and not available[needs]:
                    unavailable_ok.append(f"{where} (no {needs} here)")
                else:
                    empty.append(where)
    assert checked >= 30
    assert not empty, "panels without data:\n" + "\n".join(empty)
    print(
        f"{checked} panel queries returned data; without data because this machine lacks the measure:",
        *unavailable_ok,
        sep="\n  ",
    )

    # The guard this check relies on: a misspelt metric parses but returns nothing; bad syntax is an error.
    typo = _promql(
        base, "query_range", query="sum(ffrtmp_queue_depthh)", start=f"{start:.3f}", end=f"{end:.3f}", step="1"
    )
    assert typo["status"] == "success" and typo["data"]["result"] == []
    assert _promql(base, "query", query="sum by (queue (ffrtmp_queue_depth)")["status"] == "error"
