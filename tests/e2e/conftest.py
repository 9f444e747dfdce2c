"""End-to-end fixtures: a Stack of real operators and standalone agents in the test's namespace, and a real
nginx-rtmp server. The control plane, namespace and kubectl fixtures come from tests/conftest.py."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support import free_port, wait_until
from tests.support.stack import Stack

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


@pytest.fixture
def stack(control_plane: Any, api_client: client.ApiClient, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    """A Stack for the test's namespace; closed after it (processes stopped, jobs, pods, nodes removed)."""
    s = Stack(env=control_plane.env(), api_client=api_client, namespace=namespace, work=tmp_path)
    yield s
    s.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def rtmp_server(tmp_path: Path) -> Iterator[str]:
    """nginx + libnginx-mod-rtmp on a free loopback port with its own prefix, pid and logs; yields the
    base URL rtmp://127.0.0.1:<port>/live."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or not RTMP_MODULE.exists():
        pytest.fail("needs nginx and libnginx-mod-rtmp: apt-get install -y nginx libnginx-mod-rtmp")
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    port = free_port()
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
        listen 127.0.0.1:{port};
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
        wait_until(lambda: _listening(port) or proc.poll() is not None, timeout=60, what="nginx rtmp listening")
        assert proc.poll() is None, (prefix / "logs" / "error.log").read_text()
        yield f"rtmp://127.0.0.1:{port}/live"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
