"""A live job on the cluster: a real nginx-rtmp (Debian nginx + libnginx-mod-rtmp) on the cluster bridge's
address 10.250.0.1, the only address of this machine job pods can reach (they have one route, 10.240.0.0/12,
and no default route), a live testSource pushed to it by the job pod, the stream received (ffprobe of the
RTMP output here), then canceled -> Canceled. That address is private, so the runner's egress gateway refuses
it unless the chart allows it: jobPolicy.egress.allow=[10.250.0.1/32] (conftest's `make cluster` sets it; a
given cluster is upgraded with it, keeping its other values).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .kit import RELEASE, SYSTEM_NS, Kube, wait_until

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
BRIDGE_IP = "10.250.0.1"  # tools/ffrtmp_cluster/net.py CONTROL_IP: on the host bridge ffrtmp0
EGRESS_ALLOW = f"{BRIDGE_IP}/32"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


@pytest.fixture
def rtmp_server(kube: Kube, tmp_path: Path) -> Iterator[str]:
    """nginx with the RTMP module on BRIDGE_IP:<free port>; yields rtmp://BRIDGE_IP:<port>/live."""
    if not kube.local:
        pytest.skip("needs `make cluster` on this machine: job pods reach this host's nginx at the bridge address")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not RTMP_MODULE.exists():
        pytest.fail("needs nginx and libnginx-mod-rtmp: apt-get install -y nginx libnginx-mod-rtmp")
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    port = _free_port(BRIDGE_IP)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
load_module {RTMP_MODULE};
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen {BRIDGE_IP}:{port};
        application live {{ live on; record off; }}
    }}
}}
""")
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs" / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: _listening(BRIDGE_IP, port) or proc.poll() is not None, timeout=60, what="nginx rtmp listening"
        )
        assert proc.poll() is None, (prefix / "logs" / "error.log").read_text()
        yield f"rtmp://{BRIDGE_IP}:{port}/live"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _allow_bridge_egress(kube: Kube) -> None:
    """Make sure the release lets jobs reach BRIDGE_IP (helm upgrade --reuse-values when it does not)."""
    values = json.loads(kube.helm("get", "values", RELEASE, "-n", SYSTEM_NS, "-o", "json").stdout or "{}") or {}
    allow = ((values.get("jobPolicy") or {}).get("egress") or {}).get("allow") or []
    if EGRESS_ALLOW in allow:
        return
    entries = ",".join([*allow, EGRESS_ALLOW])
    kube.helm(
        "upgrade",
        RELEASE,
        str(Path(__file__).resolve().parents[2] / "helm" / "ffrtmp"),
        "-n",
        SYSTEM_NS,
        "--reuse-values",
        "--set",
        f"jobPolicy.egress.allow={{{entries}}}",
        "--wait",
        "--timeout",
        "300s",
    )


def _live_spec(output: str) -> dict[str, Any]:
    return {
        "queue": "live",
        "input": {"testSource": {"pattern": "testsrc2", "width": 320, "height": 240, "fps": 25, "durationSeconds": 0}},
        "output": {"url": output},
        "video": {"codec": "h264", "preset": "ultrafast", "bitrate": "300k", "gop": 25},
        "audio": {"codec": "aac", "bitrate": "64k"},
    }


def _ffprobe(url: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-rw_timeout",
            "10000000",
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
            "-of",
            "json",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_given_a_live_test_source_to_rtmp_when_canceled_then_the_stream_was_received_and_the_job_is_canceled(
    kube: Kube, media_ns: str, rtmp_server: str
) -> None:
    _allow_bridge_egress(kube)
    kube.create_job(media_ns, "live", _live_spec(f"{rtmp_server}/out"))

    def frame() -> int:
        return int((kube.status(media_ns, "live").get("progress") or {}).get("frame") or 0)

    def stuck() -> str:
        status = kube.status(media_ns, "live")
        return status.get("phase") if status.get("phase") in ("Failed", "Canceled", "Completed") else ""

    wait_until(lambda: frame() > 0 or stuck(), timeout=180, what="live frames")
    assert not stuck(), kube.status(media_ns, "live")
    video = next(s for s in _ffprobe(f"{rtmp_server}/out")["streams"] if s["codec_type"] == "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    assert kube.status(media_ns, "live")["phase"] == "Processing"

    kube.patch_spec(media_ns, "live", {"canceled": True})
    wait_until(lambda: kube.status(media_ns, "live").get("phase") == "Canceled", timeout=60, what="phase Canceled")
    wait_until(
        lambda: all(p.status.phase in ("Succeeded", "Failed") for p in kube.job_pods(media_ns, "live")),
        timeout=60,
        what="the live encoder's container to stop",
    )
