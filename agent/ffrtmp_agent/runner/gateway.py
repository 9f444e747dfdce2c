"""The runner's egress gateway: every network connection ffmpeg makes goes through it, and it connects only
to addresses the job may reach (ffrtmp_api.egress), each resolved once and pinned.

ffmpeg never connects to a tenant's host itself. Each upstream origin (scheme, host, port) the job names
gets a local listener on 127.0.0.1, created after the host was resolved and every address it resolves to
was checked; all connections to that listener go to the address checked then (pinned: a DNS answer that
changes later, DNS rebinding, cannot move it). ffmpeg is given the listener's URL (http://127.0.0.1:P/path,
rtmp://127.0.0.1:P/app/key), so relative and root-relative URLs in playlists stay on the same origin.
  * http and https origins: the gateway speaks HTTP to ffmpeg and HTTP or HTTPS upstream. TLS is the
    gateway's (Python ssl: the system trust store or $SSL_CERT_FILE, the host name as SNI and checked
    against the certificate), so ffmpeg needs no TLS and no `httpproxy` protocol: with `httpproxy` on the
    protocol whitelist an HLS playlist could name httpproxy://127.0.0.1:port/ and reach any port directly.
    A redirect to another origin is checked and rewritten to that origin's listener.
  * rtmp and rtmps origins: bytes spliced both ways; rtmps gets its TLS from the gateway.
  * absolute http:// URLs inside playlists reach the forward listener (ffmpeg's $http_proxy), which checks
    them the same way. Absolute https:// URLs inside playlists cannot be pinned (ffmpeg would do the TLS) and
    are refused by the protocol whitelist.
"""
# Over 400 lines on purpose: the address check and the pinned connect of every protocol stay in one reviewed module.

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ffrtmp_api.egress import EgressPolicy, IPAddress, address_literal

log = logging.getLogger("ffrtmp.runner")

DEFAULT_PORTS = {"http": 80, "https": 443, "rtmp": 1935, "rtmps": 443}
HTTP_SCHEMES = ("http", "https")
TLS_SCHEMES = ("https", "rtmps")
MAX_HEAD = 64 * 1024
MAX_ORIGINS = 32  # a playlist that redirects through ever new hosts is cut short
CONNECT_TIMEOUT = 15.0
IDLE_TIMEOUT = 120.0  # an upstream silent for this long is dropped (ffmpeg's own timeout is 15 s)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "host",
}

Resolver = Callable[[str, int], list[IPAddress]]


class Refused(Exception):
    """A destination the job may not reach; the message says which and why."""


class Unresolvable(Refused):
    """A host name that resolves to no address (now): the input or output cannot be read, nothing refused."""


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (getaddrinfo, both families)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Unresolvable(f"cannot resolve {host}: {exc.strerror}") from None
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = address_literal(str(sockaddr[0]))
        if address is not None and address not in found:
            found.append(address)
    return found


def checked_address(host: str, port: int, policy: EgressPolicy, resolve: Resolver) -> IPAddress:
    """The address to connect to for host:port: a literal as written (every inet_aton spelling), else the
    first address the name resolves to. Refused when any address it resolves to is not allowed: a name
    that points at a private address anywhere is not a public name."""
    literal = address_literal(host)
    addresses = [literal] if literal is not None else resolve(host, port)
    if not addresses:
        raise Unresolvable(f"{host} resolves to no address")
    for address in addresses:
        problem = policy.problem(address, host=host, port=port)
        if problem:
            shown = host if literal is None else f"the address {host}"
            raise Refused(f"{shown} may not be reached: {problem} (an admin may allow it: jobPolicy.egress.allow)")
    return addresses[0]


@dataclass
class Origin:
    scheme: str
    host: str  # lowercase, without brackets
    port: int
    address: IPAddress | None  # pinned; None once a refresh found the name refused
    listener: socket.socket

    @property
    def local_port(self) -> int:
        return int(self.listener.getsockname()[1])

    @property
    def upstream(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class Gateway:
    """Local listeners for a job's network origins plus the forward listener for $http_proxy. Threads only;
    close() stops them. `refusals` collects what was refused, for the job's failure message."""

    def __init__(
        self, policy: EgressPolicy, *, resolve: Resolver = system_resolver, tls: ssl.SSLContext | None = None
    ) -> None:
        self.policy = policy
        self.resolve = resolve
        self.tls = tls or ssl.create_default_context()
        self.refusals: list[str] = []
        self.errors: list[str] = []  # upstream connections that failed (refused, timed out): ffmpeg sees a 502
        self._origins: dict[tuple[str, str, int], Origin] = {}
        self._by_port: dict[int, Origin] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._forward = self._listen()
        self._serve(self._forward, self._forward_connection)

    @property
    def proxy_url(self) -> str:
        """$http_proxy for ffmpeg: absolute http:// URLs (in playlists) come here to be checked."""
        return f"http://127.0.0.1:{self._forward.getsockname()[1]}"

    # ------------------------------------------------------------------------------------ origins

    def origin(self, scheme: str, host: str, port: int | None) -> Origin:
        """The listener for scheme://host:port, made (resolved, checked, pinned) on first use."""
        scheme, host = scheme.lower(), host.lower().strip("[]")
        port = port or DEFAULT_PORTS[scheme]
        key = (scheme, host, port)
        with self._lock:
            if key in self._origins:
                return self._origins[key]
            if len(self._origins) >= MAX_ORIGINS:
                raise Refused(f"more than {MAX_ORIGINS} origins: {scheme}://{host}:{port} refused")
        try:
            address = checked_address(host, port, self.policy, self.resolve)
        except Unresolvable as exc:
            self.errors.append(str(exc))
            raise
        except Refused as exc:
            self.refusals.append(str(exc))
            raise
        with self._lock:
            if key not in self._origins:
                made = Origin(scheme, host, port, address, self._listen())
                self._origins[key] = made
                self._by_port[made.local_port] = made
                handler = self._http_connection if scheme in HTTP_SCHEMES else self._tcp_connection
                self._serve(made.listener, lambda conn, o=made: handler(conn, o))
                log.info("egress: %s pinned to %s (local port %d)", made.upstream, address, made.local_port)
            return self._origins[key]

    def local_url(self, url: str) -> str:
        """`url` (http, https, rtmp, rtmps) as ffmpeg should open it: the same path on the origin's listener
        (credentials kept, for HTTP authentication). Raises Refused."""
        parts = urlsplit(url)
        origin = self.origin(parts.scheme, parts.hostname or "", parts.port)
        scheme = "http" if origin.scheme in HTTP_SCHEMES else "rtmp"
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (userinfo + "@" if userinfo else "") + f"127.0.0.1:{origin.local_port}"
        return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))

    def refresh(self) -> None:
        """Resolves and checks every origin again (a live job reconnecting after hours: the name may have
        moved). A name that now resolves somewhere refused is cut off; one that does not resolve keeps its
        last address (a DNS hiccup must not end a stream)."""
        with self._lock:
            origins = list(self._origins.values())
        for origin in origins:
            try:
                address = checked_address(origin.host, origin.port, self.policy, self.resolve)
            except Unresolvable:
                continue
            except Refused as exc:
                self.refusals.append(str(exc))
                address = None
            if address != origin.address:
                log.info("egress: %s re-pinned to %s", origin.upstream, address)
                origin.address = address

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            listeners = [self._forward, *(o.listener for o in self._origins.values())]
        for listener in listeners:
            with contextlib.suppress(OSError):
                listener.close()

    # --------------------------------------------------------------------------------- listeners

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        return listener

    def _serve(self, listener: socket.socket, handle: Callable[[socket.socket], None]) -> None:
        def accept_loop() -> None:
            while not self._closed.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return  # closed
                threading.Thread(target=self._guarded, args=(handle, conn), name="egress-conn", daemon=True).start()

        threading.Thread(target=accept_loop, name="egress-accept", daemon=True).start()

    @staticmethod
    def _guarded(handle: Callable[[socket.socket], None], conn: socket.socket) -> None:
        try:
            handle(conn)
        except Exception as exc:  # noqa: BLE001 - one broken connection must not take the gateway down
            log.warning("egress: connection failed: %s", exc)
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    # ----------------------------------------------------------------------------------- HTTP

    def _forward_connection(self, conn: socket.socket) -> None:
        """A proxy-form request from ffmpeg ($http_proxy): GET http://host:port/path."""
        head, rest = _read_head(conn)
        if head is None:
            return
        method, target, headers = _parse_request(head)
        parts = urlsplit(target)
        if method == "CONNECT" or parts.scheme.lower() != "http" or not parts.hostname:
            self.refusals.append(f"a request for {target[:200]} was refused: only http:// URLs go through the gateway")
            _answer(conn, 403, "only http:// URLs can be reached from inside a playlist")
            return
        own = self._by_port.get(parts.port or 0) if parts.hostname == "127.0.0.1" else None
        try:
            origin = own or self.origin("http", parts.hostname, parts.port)
        except Refused as exc:
            _answer(conn, 403, str(exc))
            return
        path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self._relay_http(conn, origin, method, path, headers, rest)

    def _http_connection(self, conn: socket.socket, origin: Origin) -> None:
        head, rest = _read_head(conn)
        if head is None:
            return
        method, target, headers = _parse_request(head)
        if not target.startswith("/"):
            _answer(conn, 400, "origin-form requests only")
            return
        self._relay_http(conn, origin, method, target, headers, rest)

    def _relay_http(
        self, conn: socket.socket, origin: Origin, method: str, path: str, headers: list[tuple[str, str]], rest: bytes
    ) -> None:
        try:
            upstream = self._connect(origin)
        except OSError as exc:
            _answer(conn, 502, self._connect_failed(origin, exc))
            return
        with upstream:
            host = origin.host if ":" not in origin.host else f"[{origin.host}]"
            default = DEFAULT_PORTS[origin.scheme] == origin.port
            lines = [f"{method} {path} HTTP/1.1", f"Host: {host}" + ("" if default else f":{origin.port}")]
            lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP]
            lines += ["Connection: close", "", ""]
            upstream.sendall("\r\n".join(lines).encode("latin-1") + rest)
            head, body = _read_head(upstream)
            if head is None:
                _answer(conn, 502, f"{origin.upstream} closed the connection")
                return
            try:
                head = self._rewrite_response(head, origin)
            except Refused as exc:
                _answer(conn, 403, str(exc))
                return
            conn.sendall(head + body)
            _pump(conn, upstream)

    def _rewrite_response(self, head: bytes, origin: Origin) -> bytes:
        """Connection: close, and a redirect's absolute Location onto the target origin's listener (checked
        first: a redirect to a refused address is refused)."""
        status_line, *fields = head.decode("latin-1").split("\r\n")
        out = [status_line]
        for field in fields:
            if not field:
                continue  # the blank line that ends the head
            name, _, value = field.partition(":")
            key = name.strip().lower()
            if key in ("connection", "keep-alive"):
                continue
            if key == "location" and "://" in value:
                target = urlsplit(value.strip())
                if target.scheme.lower() not in HTTP_SCHEMES:
                    raise Refused(f"{origin.upstream} redirected to a {target.scheme or 'relative'} URL")
                value = " " + self.local_url(urlunsplit(target))
                log.info("egress: redirect from %s rewritten to %s", origin.upstream, value.strip())
            out.append(f"{name}:{value}")
        return "\r\n".join([*out, "Connection: close", "", ""]).encode("latin-1")

    # ------------------------------------------------------------------------------------ TCP

    def _tcp_connection(self, conn: socket.socket, origin: Origin) -> None:
        try:
            upstream = self._connect(origin)
        except OSError as exc:
            self._connect_failed(origin, exc)
            return
        with upstream:
            _pump(conn, upstream)

    def _connect_failed(self, origin: Origin, exc: OSError) -> str:
        """Logs a failed upstream connection; a TLS failure (an unverified certificate) is a refusal the job's
        failure names, a refused or timed out connection is ffmpeg's to report."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            message = f"TLS with {origin.upstream} failed: certificate verify failed ({exc.verify_message})"
            self.refusals.append(message)
        elif isinstance(exc, ssl.SSLError):
            message = f"TLS with {origin.upstream} failed: {exc.reason or exc}"
            self.refusals.append(message)
        else:
            message = f"cannot connect to {origin.upstream}: {exc.strerror or exc}"
            self.errors.append(exc.strerror or str(exc))
        log.warning("egress: %s", message)
        return message

    def _connect(self, origin: Origin) -> socket.socket:
        """A connection to the pinned address (never the name again), TLS-wrapped for https/rtmps with the
        host name as SNI and for the certificate check."""
        address = origin.address
        if address is None:
            raise ConnectionRefusedError(f"{origin.host} now resolves to a refused address")
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect((str(address), origin.port))
            if origin.scheme in TLS_SCHEMES:
                sock = self.tls.wrap_socket(sock, server_hostname=origin.host)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(IDLE_TIMEOUT)
        return sock


# ---------------------------------------------------------------------------------------- helpers


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """(the head up to and including the blank line, the bytes read after it); (None, b"") when the peer
    closed first or the head is too large."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            return None, b""
        try:
            chunk = sock.recv(65536)
        except (OSError, TimeoutError):
            return None, b""
        if not chunk:
            return None, b""
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def _parse_request(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    request_line, *fields = head.decode("latin-1").split("\r\n")
    method, target, *_ = request_line.split(" ") + ["", ""]
    headers = [(k.strip(), v.strip()) for k, _, v in (f.partition(":") for f in fields if f)]
    return method.upper(), target, headers


def _answer(conn: socket.socket, status: int, message: str) -> None:
    reasons = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}
    body = message.encode("utf-8", "replace")
    head = (
        f"HTTP/1.1 {status} {reasons[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        conn.sendall(head.encode("latin-1") + body)


def _pump(client: socket.socket, upstream: socket.socket) -> None:
    """Copies bytes both ways until either side closes. One thread: an SSL socket must not be read and
    written from two threads at once; its buffered bytes (pending()) count as readable."""
    client.settimeout(IDLE_TIMEOUT)
    pair = {client: upstream, upstream: client}
    while True:
        ready = [upstream] if isinstance(upstream, ssl.SSLSocket) and upstream.pending() else []
        if not ready:
            ready, _, _ = select.select([client, upstream], [], [], IDLE_TIMEOUT)
            if not ready:
                return  # both idle for too long
        for sock in ready:
            try:
                data = sock.recv(65536)
                if not data:
                    return
                pair[sock].sendall(data)
            except (OSError, TimeoutError):
                return
