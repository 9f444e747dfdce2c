"""The small Kubernetes API client of the runner (and of the benchmarks): JSON requests, text GETs and
watch streams over urllib3, with the connection settings read from a kubeconfig or the in-cluster service
account. Importing the kubernetes package costs the runner ~0.25 s of CPU per job (its config loader pulls
in requests, oauthlib, yaml, ...); this needs urllib3 only. TLS is verified as configured; the token never
appears in a repr, log or error.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_REREAD_SECONDS = 60.0  # re-read the token file at least this often, and whenever it changed


class ConfigError(Exception):
    """The kubeconfig or in-cluster environment does not describe a usable connection."""


class ApiError(Exception):
    """A non-2xx answer (or a watch ERROR event): the HTTP status and the apiserver's reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"({status}) {reason}")
        self.status = status
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    server: str  # https://host:port (no trailing slash)
    ca_pem: str | None = None  # None: the system trust store
    insecure: bool = False  # insecure-skip-tls-verify
    tls_server_name: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    token_file: str | None = None  # read per request (cached for a minute): rotated tokens keep working
    client_cert_pem: str | None = dataclasses.field(default=None, repr=False)
    client_key_pem: str | None = dataclasses.field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = dataclasses.field(default=None, repr=False)


# ------------------------------------------------------------------------------------------ config


def load_kubeconfig(path: str | os.PathLike[str], *, context: str | None = None) -> ClusterConfig:
    """The connection of `context` (default: current-context) of the kubeconfig at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc.strerror or exc}") from exc
    return parse_kubeconfig(_parse_document(text), base_dir=path.parent, context=context)


def _parse_document(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)  # the standalone agent writes JSON: no YAML parser needed then
    except ValueError:
        import yaml  # lazily: ~10 ms, only for hand-written kubeconfigs

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"kubeconfig is neither JSON nor YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError("kubeconfig is not a mapping")
    return doc


def parse_kubeconfig(doc: Mapping[str, Any], *, base_dir: Path, context: str | None = None) -> ClusterConfig:
    """Pure: a parsed kubeconfig document to a ClusterConfig. Relative file paths are relative to base_dir."""
    context_name = context or doc.get("current-context")
    if not context_name:
        raise ConfigError("kubeconfig has no current-context")
    ctx = _named(doc, "contexts", context_name, "context")
    cluster = _named(doc, "clusters", ctx.get("cluster"), "cluster")
    user = _named(doc, "users", ctx.get("user"), "user") if ctx.get("user") else {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise ConfigError(f"cluster {ctx.get('cluster')!r} has no http(s) server")
    for unsupported in ("exec", "auth-provider"):
        if user.get(unsupported):
            raise ConfigError(f"user {ctx.get('user')!r}: {unsupported} credentials are not supported here")
    basic = (str(user["username"]), str(user.get("password") or "")) if user.get("username") else None
    return ClusterConfig(
        server=server,
        ca_pem=_pem(cluster, "certificate-authority", base_dir),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        token=user.get("token") or None,
        token_file=str(_path(user["tokenFile"], base_dir)) if user.get("tokenFile") and not user.get("token") else None,
        client_cert_pem=_pem(user, "client-certificate", base_dir),
        client_key_pem=_pem(user, "client-key", base_dir),
        basic_auth=basic,
    )


def _named(doc: Mapping[str, Any], section: str, name: Any, key: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(key) or {}
    raise ConfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _path(value: str, base_dir: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base_dir / path


def _pem(section: Mapping[str, Any], key: str, base_dir: Path) -> str | None:
    """`key-data` (base64 PEM) wins over `key` (a file), as in client-go."""
    if section.get(f"{key}-data"):
        try:
            return base64.b64decode("".join(str(section[f"{key}-data"]).split()), validate=True).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{key}-data is not base64 PEM") from exc
    if section.get(key):
        try:
            return _path(section[key], base_dir).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {key} {section[key]}: {exc.strerror or exc}") from exc
    return None


def load_incluster(*, environ: Mapping[str, str] = os.environ, sa_dir: Path = SERVICE_ACCOUNT_DIR) -> ClusterConfig:
    """The pod's service account: KUBERNETES_SERVICE_HOST/PORT, token (re-read as it rotates) and ca.crt."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    token_file = sa_dir / "token"
    if not token_file.is_file():
        raise ConfigError(f"service account token {token_file} is missing")
    try:
        ca_pem = (sa_dir / "ca.crt").read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"service account CA {sa_dir / 'ca.crt'} is unreadable: {exc.strerror or exc}") from exc
    host = f"[{host}]" if ":" in host else host  # IPv6 service address
    return ClusterConfig(server=f"https://{host}:{port}", ca_pem=ca_pem, token_file=str(token_file))


def load_from_environment(environ: Mapping[str, str] = os.environ) -> ClusterConfig:
    """$KUBECONFIG when set, else the in-cluster service account (as the kubernetes client did)."""
    if environ.get("KUBECONFIG"):
        return load_kubeconfig(environ["KUBECONFIG"])
    return load_incluster(environ=environ)


# ------------------------------------------------------------------------------------------ client


class KubeClient:
    """JSON requests against one API server through one connection pool.

    The runner gives each thread its own client. Threads that share one (the benchmarks) pass `block=True`:
    they then wait for one of `pool_size` keep-alive connections instead of opening throwaway ones.
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        pool_size: int = 2,
        block: bool = False,
        user_agent: str = "ffrtmp-runner",
    ) -> None:
        self.config = config
        self._clock = clock
        self._user_agent = user_agent
        self._token_read: tuple[float, tuple[int, int, int], str] | None = None  # (when, file identity, token)
        kwargs: dict[str, Any] = {"maxsize": pool_size, "block": block}
        if config.server.startswith("https://"):
            kwargs["ssl_context"] = ssl_context(config)
            if config.tls_server_name:
                kwargs["server_hostname"] = config.tls_server_name
                kwargs["assert_hostname"] = config.tls_server_name
            if config.insecure:
                kwargs["cert_reqs"] = "CERT_NONE"
                kwargs["assert_hostname"] = False
        self._pool = urllib3.connection_from_url(config.server, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """`path` may carry its own query string; `query` is appended (None values left out)."""
        headers = self._headers()
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        resp = self._pool.request(
            method, _url(path, query), body=data, headers=headers, timeout=urllib3.Timeout(connect=10.0, read=timeout)
        )
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, _reason(resp.status, resp.data))
        return json.loads(resp.data) if resp.data else {}

    def text(self, path: str, *, timeout: float = 30.0) -> str:
        """A plain-text GET (the API server's /metrics)."""
        resp = self._pool.request(
            "GET",
            path,
            headers={**self._headers(), "Accept": "text/plain"},
            timeout=urllib3.Timeout(connect=10.0, read=timeout),
        )
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, _reason(resp.status, resp.data))
        return resp.data.decode("utf-8", "replace")

    def stream(
        self, path: str, *, query: Mapping[str, Any] | None = None, read_timeout: float | None
    ) -> urllib3.BaseHTTPResponse:
        """A GET whose body is left to read as it arrives (a watch); the caller closes it (or shuts it down
        from another thread to stop a reader). A non-2xx answer raises ApiError."""
        resp = self._pool.request(
            "GET",
            _url(path, query),
            headers=self._headers(),
            preload_content=False,
            timeout=urllib3.Timeout(connect=10.0, read=read_timeout),
        )
        if not 200 <= resp.status < 300:
            try:
                raise ApiError(resp.status, _reason(resp.status, resp.read()))
            finally:
                _close(resp)
        return resp

    def watch(self, path: str, *, query: Mapping[str, Any], read_timeout: float) -> Iterator[dict[str, Any]]:
        """Watch events ({"type", "object"}) until the server ends the stream; an ERROR event raises ApiError."""
        resp = self.stream(path, query={**query, "watch": "true"}, read_timeout=read_timeout)
        try:
            yield from watch_events(resp)
        finally:
            _close(resp)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        config = self.config
        token = config.token or (self._file_token() if config.token_file else None)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif config.basic_auth:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(config.basic_auth).encode()).decode()
        return headers

    def _file_token(self) -> str:
        """The token file's content, read again whenever the file changed (a kubelet or the standalone agent
        renews short-lived tokens by replacing it: the next request uses the new token) or a minute passed."""
        assert self.config.token_file
        now = self._clock()
        try:
            st = os.stat(self.config.token_file)
            identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            identity = (0, 0, 0)
        cached = self._token_read
        if cached is None or cached[1] != identity or now - cached[0] >= TOKEN_FILE_REREAD_SECONDS:
            try:
                self._token_read = (now, identity, Path(self.config.token_file).read_text(encoding="utf-8").strip())
            except OSError as exc:
                if cached is None:
                    raise ConfigError(f"cannot read token file {self.config.token_file}: {exc.strerror}") from exc
                # a renewal in progress: keep the last token, try again next time
        assert self._token_read is not None
        return self._token_read[2]


def ssl_context(config: ClusterConfig) -> ssl.SSLContext:
    """Verifies the server against the configured CA (else the system store) unless insecure is set."""
    ctx = ssl.create_default_context(cadata=config.ca_pem) if config.ca_pem else ssl.create_default_context()
    if config.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if config.client_cert_pem:
        _load_client_cert(ctx, cert_pem=config.client_cert_pem, key_pem=config.client_key_pem)
    return ctx


def _load_client_cert(ctx: ssl.SSLContext, *, cert_pem: str, key_pem: str | None) -> None:
    """ssl loads key pairs from files only: a private temp dir (0700), removed as soon as they are loaded."""
    with tempfile.TemporaryDirectory(prefix="ffrtmp-tls-") as tmp:
        cert_path = os.path.join(tmp, "client.crt")
        key_path = os.path.join(tmp, "client.key") if key_pem else None
        for path, pem in ((cert_path, cert_pem), (key_path, key_pem)):
            if path and pem:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(pem)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise ConfigError(f"client certificate/key unusable: {exc.reason or exc}") from None


def _url(path: str, query: Mapping[str, Any] | None) -> str:
    return path + ("?" + urlencode({k: v for k, v in query.items() if v is not None}) if query else "")


def _reason(status: int, data: bytes) -> str:
    """The apiserver's Status message when it sent one (never request headers: the token stays out)."""
    try:
        body = json.loads(data)
        return str(body.get("reason") or "") + (f": {body['message']}" if body.get("message") else "")
    except (ValueError, AttributeError):
        return data[:200].decode("utf-8", "replace") or f"HTTP {status}"


def watch_events(resp: urllib3.BaseHTTPResponse) -> Iterator[dict[str, Any]]:
    """The events of an open watch stream, one per JSON line; an ERROR event raises ApiError."""
    pending = b""
    for chunk in resp.stream(65536, decode_content=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield _event(json.loads(line))
    if pending.strip():
        yield _event(json.loads(pending))


def _close(resp: urllib3.BaseHTTPResponse) -> None:
    resp.close()  # an unfinished stream cannot be reused: the pool reconnects next time
    resp.release_conn()


def _event(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("type") == "ERROR":
        obj = event.get("object") or {}
        raise ApiError(int(obj.get("code") or 500), f"{obj.get('reason')}: {obj.get('message')}")
    return event


def custom_object_path(*, group: str, version: str, namespace: str, plural: str, name: str | None = None) -> str:
    base = f"/apis/{group}/{version}/namespaces/{quote(namespace, safe='')}/{plural}"
    return base + (f"/{quote(name, safe='')}" if name else "")
