"""Network egress from jobs (issue 10, class 3). Real jobs on the real stack try to reach this machine's
loopback in every spelling of the address, directly, through a redirect and through a playlist, and each is
refused before anything connects: the loopback servers count every connection they accept, and stay at
zero. Link-local, private and public targets are never connected to: they are checked where the runner
resolves and refuses them (the gateway's check with a resolver the test controls), so a protection that
fails reaches nothing off this machine. TLS is verified by default; the operator's job NetworkPolicy is valid.
"""

from __future__ import annotations

import http.server
import ipaddress
import socket
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import pytest
from ffrtmp_agent.runner.gateway import Gateway, Refused, checked_address
from ffrtmp_api.egress import EgressPolicy
from ffrtmp_operator.network_policy import network_policy
from kubernetes import client

from tests.support.jobpods import shared_folder
from tests.support.runner import (
    RunnerProcess,
    build,
    create_job,
    make_media,
    runner_kubeconfig,
)
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
FASTSTART = ["-movflags", "+faststart"]  # these servers answer no Range requests: the index must come first


class Counting(http.server.ThreadingHTTPServer):
    """A loopback HTTP server that counts every connection it accepts; serves `files`, and redirects."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        family: int = socket.AF_INET,
        files: dict[str, bytes],
        redirects: dict[str, str] | None = None,
    ) -> None:
        self.address_family = family
        self.connections = 0
        self.files, self.redirects = files, redirects or {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.end_headers()
                    return
                body = server.files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(address, Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1
        return True

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A media file served on 127.0.0.1 and on ::1 (same port number where free), counting connections."""
    media = make_media(tmp_path / "in.mp4", seconds=1, extra=FASTSTART).read_bytes()
    v4 = Counting(("127.0.0.1", 0), files={"/in.mp4": media})
    try:
        v6: Counting | None = Counting(("::1", v4.port), family=socket.AF_INET6, files={"/in.mp4": media})
    except OSError:
        v6 = None  # no IPv6 loopback here: the [::1] spellings are still refused, just not countable
    servers = [s for s in (v4, v6) if s is not None]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"v4": v4, "v6": v6, "media": media, "port": v4.port}
    for server in servers:
        server.shutdown()
        server.server_close()


def _spellings(port: int) -> dict[str, str]:
    return {
        "plain": f"http://127.0.0.1:{port}/in.mp4",
        "decimal": f"http://2130706433:{port}/in.mp4",
        "octal": f"http://0177.0.0.1:{port}/in.mp4",
        "hex": f"http://0x7f.0x0.0x0.0x1:{port}/in.mp4",
        "hex-short": f"http://0x7f.1:{port}/in.mp4",
        "short": f"http://127.1:{port}/in.mp4",
        "other-loopback": f"http://127.0.0.2:{port}/in.mp4",
        "localhost": f"http://localhost:{port}/in.mp4",
        "localhost-trailing-dot": f"http://localhost.:{port}/in.mp4",
        "userinfo": f"http://media.example.com@127.0.0.1:{port}/in.mp4",
        "userinfo-password": f"http://user:p%40ss@127.0.0.1:{port}/in.mp4",
        "ipv6": f"http://[::1]:{port}/in.mp4",
        "ipv6-long": f"http://[0:0:0:0:0:0:0:1]:{port}/in.mp4",
        "ipv4-mapped": f"http://[::ffff:127.0.0.1]:{port}/in.mp4",
        "ipv4-mapped-hex": f"http://[::ffff:7f00:1]:{port}/in.mp4",
        "uppercase-scheme": f"HTTP://127.0.0.1:{port}/in.mp4",
        "https": f"https://127.0.0.1:{port}/in.mp4",
        "zero": f"http://0.0.0.0:{port}/in.mp4",
    }


def _job_status(stack: Stack, name: str, spec: dict[str, Any]) -> dict[str, Any] | str:
    """The job's final status, or "422: <message>" when the API refused it at once."""
    try:
        stack.create(name, maxRetries=1, **spec)
    except client.exceptions.ApiException as exc:
        return f"{exc.status}: {exc.body}"
    return {}


def _count_connections(server: socket.socket, accepted: list[Any]) -> None:
    """Accept until the test closes the socket (accept then raises: the end, not an error)."""
    while True:
        try:
            accepted.append(server.accept())
        except OSError:
            return


@pytest.mark.timeout(600)
def test_given_loopback_in_every_spelling_when_jobs_run_then_refused_before_anything_connects(
    stack: Stack, served: dict[str, Any]
) -> None:
    port = served["port"]
    inputs = {f"in-{name}": url for name, url in _spellings(port).items()}
    rtmp = socket.create_server(("127.0.0.1", 0))  # an RTMP "server" that only counts connections
    accepted: list[Any] = []
    threading.Thread(target=_count_connections, args=(rtmp, accepted), daemon=True).start()
    outputs = {
        "out-rtmp": f"rtmp://127.0.0.1:{rtmp.getsockname()[1]}/live/stolen",
        "out-rtmp-decimal": f"rtmp://2130706433:{rtmp.getsockname()[1]}/live/stolen",
        "out-rtmp-ipv6": f"rtmp://[::1]:{rtmp.getsockname()[1]}/live/stolen",
    }
    stack.agent(slots=4)
    operator = stack.operator(egress_allow=())  # the chart's default: public addresses only
    stack.wait_agents()
    operator.wait_active()
    api_refused: dict[str, str] = {}
    for name, url in inputs.items():
        refused = _job_status(stack, name, {"input": {"url": url}, "audio": {"codec": "copy"}})
        if refused:
            api_refused[name] = refused
    for name, url in outputs.items():
        spec = {"output": {"url": url}, "volumes": [], "queue": "default"}
        refused = _job_status(stack, name, spec)
        if refused:
            api_refused[name] = refused
    names = [n for n in [*inputs, *outputs] if n not in api_refused]
    final = stack.wait_all_terminal(names, timeout=300)

    wrong = {}
    for name in names:
        status = final[name]["status"]
        got = (status.get("phase"), status.get("reason"), status.get("attempts"))
        message = status.get("message") or ""
        # "localhost." does not resolve where /etc/hosts alone answers for localhost: refused all the same
        if got != ("Failed", "InputError", 1) or not ("may not be reached" in message or "cannot resolve" in message):
            wrong[name] = (got, status.get("message"))
    assert not wrong, wrong
    assert all(r.startswith("422") for r in api_refused.values()), api_refused
    assert served["v4"].connections == 0, "a job reached the loopback HTTP server"
    assert served["v6"] is None or served["v6"].connections == 0, "a job reached the IPv6 loopback server"
    assert accepted == [], "a job connected to the loopback RTMP port"
    rtmp.close()
    print(f"\nFIGURE egress_spellings={len(inputs) + len(outputs)} refused_by_api={len(api_refused)} connections=0")


@pytest.mark.timeout(600)
def test_given_an_allowed_server_that_redirects_or_lists_elsewhere_then_only_it_is_reached(
    stack: Stack, tmp_path: Path
) -> None:
    """Server A is allowed (that port only); what it points to on B (loopback, another port) is refused
    whatever the form: a redirect, an absolute playlist entry, httpproxy://, tcp://, https://."""
    media = make_media(tmp_path / "in.mp4", seconds=2, extra=FASTSTART).read_bytes()
    segment = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            str(tmp_path / "in.mp4"),
            "-c",
            "copy",
            "-f",
            "mpegts",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    target = Counting(("127.0.0.1", 0), files={"/in.mp4": media, "/seg.ts": segment})
    b = target.port

    def playlist(uri: str) -> bytes:
        return f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{uri}\n#EXT-X-ENDLIST\n".encode()

    lists = {
        "/abs.m3u8": f"http://127.0.0.1:{b}/seg.ts",
        "/dec.m3u8": f"http://2130706433:{b}/seg.ts",
        "/proxy.m3u8": f"httpproxy://127.0.0.1:{b}/seg.ts",
        "/tcp.m3u8": f"tcp://127.0.0.1:{b}/seg.ts",
        "/https.m3u8": f"https://127.0.0.1:{b}/seg.ts",
        "/own.m3u8": "seg.ts",
    }
    allowed = Counting(
        ("127.0.0.1", 0),
        files={"/in.mp4": media, "/seg.ts": segment, **{k: playlist(v) for k, v in lists.items()}},
        redirects={
            "/to-b": f"http://127.0.0.1:{b}/in.mp4",
            "/to-b-v6": f"http://[::1]:{b}/in.mp4",
            "/to-file": "file:///etc/passwd",
            "/to-self": "/in.mp4",
        },
    )
    for server in (target, allowed):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    a = f"http://127.0.0.1:{allowed.port}"
    jobs = {
        "redirect": ({"url": f"{a}/to-b"}, "refused"),
        "redirect-v6": ({"url": f"{a}/to-b-v6"}, "refused"),
        "redirect-file": ({"url": f"{a}/to-file"}, "refused"),
        "list-absolute": ({"url": f"{a}/abs.m3u8", "allowPlaylists": True}, "refused"),
        "list-decimal": ({"url": f"{a}/dec.m3u8", "allowPlaylists": True}, "refused"),
        "list-httpproxy": ({"url": f"{a}/proxy.m3u8", "allowPlaylists": True}, "refused"),
        "list-tcp": ({"url": f"{a}/tcp.m3u8", "allowPlaylists": True}, "refused"),
        "list-https": ({"url": f"{a}/https.m3u8", "allowPlaylists": True}, "refused"),
        "control-file": ({"url": f"{a}/in.mp4"}, "completed"),
        "control-redirect-same-server": ({"url": f"{a}/to-self"}, "completed"),
        "control-own-list": ({"url": f"{a}/own.m3u8", "allowPlaylists": True}, "completed"),
    }
    try:
        stack.agent(slots=4)
        operator = stack.operator(egress_allow=(f"127.0.0.1:{allowed.port}",))
        stack.wait_agents()
        operator.wait_active()
        for name, (input_, _) in jobs.items():
            stack.create(name, input=input_, maxRetries=1, audio={"codec": "copy"})
        final = stack.wait_all_terminal(list(jobs), timeout=400)
    finally:
        for server in (target, allowed):
            server.shutdown()
            server.server_close()

    wrong = {}
    for name, (_, expected) in jobs.items():
        status = final[name]["status"]
        ok = (
            status.get("phase") == "Completed"
            if expected == "completed"
            else (status.get("phase") == "Failed" and status.get("reason") == "InputError")
        )
        if not ok:
            wrong[name] = (status.get("phase"), status.get("reason"), status.get("message"))
    assert not wrong, wrong
    assert target.connections == 0, "a redirect or playlist reached a server the job may not reach"
    assert "may not be reached" in final["redirect"]["status"]["message"]


# ------------------------------------------------------------------------- the check itself, no stack


def _resolver(answers: dict[str, list[str]], calls: list[str]) -> Any:
    def resolve(host: str, port: int) -> list[Any]:
        calls.append(host)
        return [ipaddress.ip_address(a) for a in answers[host]]

    return resolve


@pytest.mark.parametrize(
    ("host", "answer", "refused"),
    [
        ("metadata.example", ["169.254.169.254"], "cloud metadata"),
        ("metadata-v6.example", ["fd00:ec2::254"], "unique local"),
        ("internal.example", ["10.0.0.5"], "private"),
        ("cgnat.example", ["100.64.1.1"], "carrier-grade"),
        ("link-local-v6.example", ["fe80::1"], "link-local"),
        ("mixed.example", ["127.0.0.1", "10.0.0.1"], "private"),  # one private answer refuses the name
        ("nat64.example", ["64:ff9b::a9fe:a9fe"], "cloud metadata"),
        ("public.example", ["93.184.216.34"], None),
        ("public-v6.example", ["2606:4700:4700::1111"], None),
    ],
)
def test_given_a_name_then_every_address_it_resolves_to_is_checked_before_any_connection(host, answer, refused):
    calls: list[str] = []
    policy = EgressPolicy.parse(["127.0.0.1/32"])  # only so that a failing check would reach loopback, never off
    if refused is None:
        assert checked_address(host, 443, policy, _resolver({host: answer}, calls)) == ipaddress.ip_address(answer[0])
    else:
        with pytest.raises(Refused, match=refused):
            checked_address(host, 443, policy, _resolver({host: answer}, calls))
    assert calls == [host]


@pytest.mark.parametrize(
    "literal",
    [
        "169.254.169.254",
        "0xA9FEA9FE",
        "2852039166",
        "169.254.43518",
        "10.1",
        "[fd00::1]",
        "[::ffff:169.254.169.254]",
        "[fe80::1%25eth0]",
        "0",
    ],
)
def test_given_a_literal_then_it_is_refused_without_resolving(literal: str):
    calls: list[str] = []
    with pytest.raises(Refused, match="may not be reached"):
        checked_address(literal, 80, EgressPolicy(), _resolver({}, calls))
    assert calls == []


def test_given_dns_rebinding_then_the_pinned_address_is_used_until_a_refresh_cuts_it_off(tmp_path: Path):
    """First answer 127.0.0.1 (allowed here), later 127.0.0.2 (not allowed): connections keep going to the
    first address without asking DNS again; a refresh (a live job reconnecting) re-checks and refuses."""
    server = Counting(("127.0.0.1", 0), files={"/x": b"pinned"})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    answers = {"rebind.example": ["127.0.0.1"]}
    calls: list[str] = []
    gateway = Gateway(EgressPolicy.parse(["127.0.0.1/32"]), resolve=_resolver(answers, calls))
    try:
        local = gateway.local_url(f"http://rebind.example:{server.port}/x")
        answers["rebind.example"] = ["127.0.0.2"]
        for _ in range(3):
            with urllib.request.urlopen(local, timeout=10) as resp:
                assert resp.read() == b"pinned"
        assert calls == ["rebind.example"]
        gateway.refresh()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(local, timeout=10)
        assert "127.0.0.2" in gateway.refusals[-1]
    finally:
        gateway.close()
        server.shutdown()
        server.server_close()
    assert server.connections == 3


# ------------------------------------------------------------------------------------------------ TLS


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate for 127.0.0.1; yields (port, cert)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = Counting(
        ("127.0.0.1", 0), files={"/in.mp4": make_media(tmp_path / "in.mp4", seconds=1, extra=FASTSTART).read_bytes()}
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.port, cert
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("trusted", [False, True])
def test_given_an_https_input_then_its_certificate_is_verified(
    api_client, control_plane, namespace, tmp_path, tls_server, trusted: bool
) -> None:
    port, cert = tls_server
    out = shared_folder(tmp_path / "out")
    job = create_job(
        api_client,
        namespace,
        "tls",
        {
            "input": {"url": f"https://127.0.0.1:{port}/in.mp4"},
            "output": {"url": f"file://{out}/x.mp4"},
            "video": {"preset": "ultrafast"},
            "audio": {"codec": "copy"},
            "volumes": [{"name": "out", "mountPath": str(out), "emptyDir": {}}],
        },
    )
    kubeconfig = runner_kubeconfig(api_client, control_plane, namespace, tmp_path / "kubeconfig")
    env = {"SSL_CERT_FILE": str(cert)} if trusted else {}
    runner = RunnerProcess(
        build(job, egress_allow=(f"127.0.0.1:{port}",)), kubeconfig=kubeconfig, work=tmp_path, env=env
    )
    try:
        code = runner.wait(timeout=120)
    finally:
        runner.close()
    if trusted:
        assert code == 0, runner.log_text()[-3000:]
        assert (out / "x.mp4").stat().st_size > 0
    else:
        assert code == api.RUNNER_EXIT_CODES["InputError"], runner.log_text()[-3000:]
        assert "certificate verify failed" in runner.termination()["message"]
        assert not (out / "x.mp4").exists()


# ------------------------------------------------------------------------------------- NetworkPolicy


def test_given_the_operators_job_network_policy_then_the_api_accepts_it_and_it_keeps_private_ranges_out(
    api_client: client.ApiClient, namespace: str
) -> None:
    # What the operator makes in every namespace before its first job pod (network_guard.py; the
    # integration test test_operator_network_policy.py watches it do so). No network plugin enforces it here.
    allow = ["10.20.0.0/16", "media.corp:443", "[fd00::/8]:443"]
    policy = network_policy(namespace, egress_allow=allow, api_server=[("172.18.0.2", 6443)])
    made = client.NetworkingV1Api(api_client).create_namespaced_network_policy(namespace, policy, dry_run="All")
    spec = made.spec
    assert spec.policy_types == ["Ingress", "Egress"] and not spec.ingress
    public = [
        p.ip_block for rule in spec.egress for p in rule.to or [] if p.ip_block and p.ip_block.cidr == "0.0.0.0/0"
    ]
    assert public and {
        "127.0.0.0/8",
        "169.254.0.0/16",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
    } <= set(public[0]._except)
    cidrs = {p.ip_block.cidr for rule in spec.egress for p in rule.to or [] if p.ip_block}
    assert {"10.20.0.0/16", "fd00::/8", "172.18.0.2/32"} <= cidrs
