"""Rewrites a plan's network input and output for the egress gateway: ffmpeg opens the gateway's local URL
for each (http(s) and rtmp(s) through a pinned listener, srt with the checked address written in), with a
protocol whitelist that no longer holds TLS (the gateway does it) and RTMP's tcUrl kept as the user wrote
it. Pure: the gateway's URL mapping is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import ffrtmp_api as api

GATEWAY_SCHEMES = ("http", "https", "rtmp", "rtmps")
# The plan's argvs that name the input (those of them the plan model has).
INPUT_ARGVS = tuple(
    n for n in ("ffmpegArgs", "ffmpegArgsWithoutAudio", "inputArgs", "probeArgs") if n in api.ExecutionPlan.model_fields
)
OUTPUT_ARGVS = tuple(n for n in ("ffmpegArgs", "ffmpegArgsWithoutAudio") if n in INPUT_ARGVS)
NETWORK_SCHEMES = (*GATEWAY_SCHEMES, "srt")
# ffmpeg does no TLS once the gateway does it; httpproxy would let a playlist reach any host:port directly.
_WHITELIST_MAP = {"https": "http", "rtmps": "rtmp", "tls": None, "httpproxy": None}


class Rewritten(NamedTuple):
    plan: api.ExecutionPlan
    shown: dict[str, str]  # what ffmpeg was given -> what the user wrote (for failure messages)


def scheme(url: str | None) -> str:
    return urlsplit(url).scheme.lower() if url and "://" in url else ""


def rewrite(plan: api.ExecutionPlan, *, local: Callable[[str], str], pinned: Callable[[str], str]) -> Rewritten:
    """The plan ffmpeg runs: `local(url)` for http(s)/rtmp(s) URLs (the gateway listener), `pinned(url)`
    for srt (the checked address in place of the name). Both raise gateway.Refused."""
    argvs = {name: list(getattr(plan, name)) for name in INPUT_ARGVS}
    shown: dict[str, str] = {}
    url = plan.inputUrl
    in_scheme = scheme(url)
    if url and in_scheme in NETWORK_SCHEMES:
        new = local(url) if in_scheme in GATEWAY_SCHEMES else pinned(url)
        shown[new] = url
        extra = ["-rtmp_tcurl", rtmp_tcurl(url)] if in_scheme.startswith("rtmp") else []
        argvs = {name: _input_rewritten(argv, url, new, extra) for name, argv in argvs.items()}
    out_scheme = scheme(plan.outputUrl)
    if out_scheme in GATEWAY_SCHEMES:
        new = local(plan.outputUrl)
        shown[new] = plan.outputUrl
        for name in OUTPUT_ARGVS:
            argv = argvs[name]
            if argv and argv[-1] == plan.outputUrl:
                argv[-1] = new
                if out_scheme.startswith("rtmp"):
                    argv[-3:-3] = ["-rtmp_tcurl", rtmp_tcurl(plan.outputUrl)]  # before "-f <muxer> <url>"
    return Rewritten(plan.model_copy(update=argvs), shown)


def _input_rewritten(argv: list[str], url: str, new: str, extra: list[str]) -> list[str]:
    out: list[str] = []
    for i, arg in enumerate(argv):
        if i > 0 and argv[i - 1] == "-protocol_whitelist":
            arg = _whitelist(arg)
        if arg == url and i > 0 and argv[i - 1] == "-i":
            out[-1:] = [*extra, "-i"]
            arg = new
        out.append(arg)
    return out


def _whitelist(value: str) -> str:
    names = [_WHITELIST_MAP.get(p, p) for p in value.split(",")]
    return ",".join(dict.fromkeys(n for n in names if n))


def rtmp_tcurl(url: str) -> str:
    """RTMP's tcUrl (scheme://host[:port]/app) as ffmpeg derives it from `url`, so the server still sees
    the host the user named although ffmpeg connects to the gateway. The app is the first path segment,
    or the first two when more than one segment follows (app/instance/stream), as rtmpproto.c splits it."""
    parts = urlsplit(url)
    path = parts.path
    segments = path[1:].split("/") if path.startswith("/") else path.split("/")
    if path.startswith("/ondemand/"):
        app = "ondemand"
    elif len(segments) <= 2:
        app = segments[0]
    else:
        second = segments[1]
        app = segments[0] if ":" in second else "/".join(segments[:2])
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme.lower(), netloc, "/" + app, "", ""))


def srt_problem(url: str) -> str | None:
    """Why an srt:// URL may not be used by a job: it must call out (mode=caller, the default); a listener
    or rendezvous socket would take connections from anywhere."""
    query = dict(parse_qsl(urlsplit(url).query))
    mode = query.get("mode", "caller").lower()
    if mode != "caller":
        return f"srt mode={mode} is not allowed: a job's SRT socket calls out (mode=caller)"
    return None
