"""A lagging Lease watch never makes the operator requeue jobs of a healthy node (NodeLost deletes the
running pod). The operator talks to the API server through a plain-HTTP reverse proxy in this test that
can hold back the Lease watch streams (kopf's event processing lagging > 45 s under load, as the
benchmark saw) and refuse direct Lease reads (an API that does not answer): the operator's cache then
says expired while the Lease in the API is renewed every second. Everything else is passed through."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from pathlib import Path

import ffrtmp_api as api
import pytest
import yaml
from aiohttp import ClientError, ClientSession, ClientTimeout, web

from tests.support import OperatorProcess, wait_until
from tests.support.cluster import FAST_FLAGS

LEASE_SECONDS = 3
HOP_HEADERS = {
    "host",
    "authorization",
    "content-length",
    "transfer-encoding",
    "connection",
    "content-encoding",
    "keep-alive",
    "accept-encoding",
}


class LeaseLagProxy:
    """http://127.0.0.1:<port> -> the API server as admin. `hold_watch`: Lease watch events wait in the
    proxy until cleared; `refuse_reads`: GET of a single Lease answers 503."""

    def __init__(self, *, server: str, token: str, ca_file: Path) -> None:
        self.server, self.token = server, token
        self.ssl = ssl.create_default_context(cafile=str(ca_file))
        self.hold_watch = False
        self.refuse_reads = False
        self.lease_reads = 0
        self.url = ""
        self._handlers: set[asyncio.Task] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "proxy did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=None), auto_decompress=True)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            return await self._proxy(request)
        finally:
            self._handlers.discard(task)

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        leases = request.path.startswith("/apis/coordination.k8s.io/") and "/leases" in request.path
        watch = request.query.get("watch") in ("true", "1")
        single_read = leases and request.method == "GET" and not watch and not request.path.endswith("/leases")
        if single_read:
            self.lease_reads += 1
            if self.refuse_reads:
                return web.json_response({"kind": "Status", "code": 503, "message": "refused by test"}, status=503)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers["Authorization"] = f"Bearer {self.token}"
        body = await request.read()
        async with self._session.request(
            request.method,
            self.server + request.path_qs,
            headers=headers,
            data=body or None,
            ssl=self.ssl,
            skip_auto_headers=("Content-Type",),
        ) as upstream:  # as the client sent it
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS},
            )
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    while leases and watch and self.hold_watch:  # the watch lags: events wait here
                        await asyncio.sleep(0.1)
                    await response.write(chunk)
                await response.write_eof()
            except (ClientError, ConnectionError):  # either side hung up (operator stopped, proxy closing)
                pass
            return response

    def kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "proxy", "user": {"token": "set-by-the-proxy"}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def close(self) -> None:
        self.hold_watch = False

        async def stop() -> None:
            for task in list(self._handlers):  # open watch streams never end on their own
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._session.close()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


@pytest.fixture
def proxied_operator(control_plane, namespace, tmp_path):
    proxy = LeaseLagProxy(server=control_plane.server, token=control_plane.token, ca_file=control_plane.ca_file)
    env = control_plane.env() | {"PYTHONUNBUFFERED": "1", "KUBECONFIG": str(proxy.kubeconfig(tmp_path / "kc"))}
    args = ["--namespace", namespace, *FAST_FLAGS, "--peering", f"ffrtmp-{namespace}"[:63]]
    op = OperatorProcess(env=env, args=args, log_path=tmp_path / "operator.log")
    try:
        op.wait_active()
        yield proxy, op
    finally:
        op.stop()
        proxy.close()


def _assigned_job(cluster, name):
    node = cluster.add_node("lag", slots=1, lease_seconds=LEASE_SECONDS)
    cluster.create_job(name)
    status = cluster.wait_phase(name, "Assigned")
    assert status["node"] == node
    return node, status["pod"]


def _still_placed(cluster, name, pod, *, seconds):
    """The job keeps its placement and its pod for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = cluster.status(name)
        assert status.get("phase") == "Assigned" and status.get("attempts") == 1, status
        assert [p.metadata.name for p in cluster.pods(name) if not p.metadata.deletion_timestamp] == [pod]
        time.sleep(0.5)


def test_given_a_lagging_lease_watch_when_the_cached_lease_expires_then_jobs_of_the_renewing_node_stay(
    proxied_operator, cluster
):
    proxy, op = proxied_operator
    node, pod = _assigned_job(cluster, "lag")
    proxy.hold_watch = True  # from now on the operator's cache sees no renewal of the node's Lease
    _still_placed(cluster, "lag", pod, seconds=4 * LEASE_SECONDS)
    assert proxy.lease_reads >= 1, "the operator never read the Lease: the stale view was not exercised"
    assert "the watch is behind: node kept" in op.log_text()

    # A real loss behind the same lagging watch is still found by the direct read.
    cluster.stop_heartbeat(node)
    status = cluster.wait_phase("lag", "Queued", timeout=6 * LEASE_SECONDS)
    assert status["reason"] == api.Reason.NODE_LOST.value
    wait_until(
        lambda: not cluster.pods("lag") or all(p.metadata.deletion_timestamp for p in cluster.pods("lag")),
        timeout=10,
        what="the lost node's pod deleted",
    )


def test_given_lease_reads_failing_when_the_cached_lease_expires_then_no_job_is_requeued_until_they_answer(
    proxied_operator, cluster
):
    proxy, _ = proxied_operator
    node, pod = _assigned_job(cluster, "noread")
    proxy.hold_watch = True
    proxy.refuse_reads = True
    cluster.stop_heartbeat(node)  # expired in the API too, but the operator cannot confirm it
    _still_placed(cluster, "noread", pod, seconds=4 * LEASE_SECONDS)
    assert proxy.lease_reads >= 1

    proxy.refuse_reads = False  # the API answers again: the loss is confirmed and acted on
    status = cluster.wait_phase("noread", "Queued", timeout=8 * LEASE_SECONDS)
    assert status["reason"] == api.Reason.NODE_LOST.value
