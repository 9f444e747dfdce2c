"""What the runner sets up before ffmpeg starts, so that a job reaches only its volumes and the addresses
it may reach: the input opened on its volume (confine.py; a concat list checked file by file), the output
folder opened and the temp file created in it, the egress gateway for network URLs (gateway.py), and the
plan rewritten to name what was opened (/proc/self/fd/N) and the gateway's listeners instead of paths and
hosts. Every ffmpeg and ffprobe the runner starts gets `env` and `pass_fds`.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import ffrtmp_api as api
from ffrtmp_api.egress import EgressPolicy

from . import concat, ladder, netplan, split
from .confine import Confined, OutputFolder, fd_path, open_folder, open_input
from .failures import INPUT_ERROR, OUTPUT_ERROR, Failure

if TYPE_CHECKING:  # imported where used: only network URLs need the gateway, and every runner start pays an import
    from .gateway import Gateway

_PROXY_VARIABLES = (
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
    "all_proxy",
    "ALL_PROXY",
)


class Refusal(Exception):
    """The plan cannot run confined; `failure` is the job's failure (InputError or OutputError)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass
class Launch:
    """The files and listeners one attempt holds open, and how its ffmpeg processes start."""

    env: dict[str, str]
    gateway: Gateway | None = None
    folder: OutputFolder | None = None
    final_name: str | None = None  # the output file's name in `folder`
    parts: dict[str, int] = field(default_factory=dict)  # temp outputs written (name -> fd); one per live run
    fds: list[int] = field(default_factory=list)
    shown: dict[str, str] = field(default_factory=dict)  # what ffmpeg was given -> what the user wrote

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """Every fd ffmpeg is given by /proc/self/fd/N: the files, and the output folder (HLS names in it)."""
        return (*self.fds, *((self.folder.fd,) if self.folder is not None else ()))

    def keep(self, fd: int) -> int:
        self.fds.append(fd)
        return fd

    def new_part(self, name: str) -> str:
        """A new temp file in the output folder (a live job's next run); ffmpeg's reference to it."""
        assert self.folder is not None
        fd = self.parts[name] = self.keep(self.folder.create(name))
        ref = "file:" + fd_path(fd)
        self.shown[ref] = posixpath.join(self.folder.path, name)
        return ref

    def final_ref(self, fd: int | None) -> str | None:
        """ffmpeg's reference to the finished output: the file written (`fd`, renamed into place), else its
        name in the opened folder; None for outputs that are not files."""
        if fd is not None:
            return "file:" + fd_path(fd if fd in self.fds else self.keep(fd))
        if self.folder is not None and self.final_name:
            return "file:" + self.folder.child_path(self.final_name)
        return None

    def display(self, text: str) -> str:
        """`text` (an ffmpeg message) with the gateway's and /proc/self/fd names turned back into the job's."""
        for given, written in sorted(self.shown.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(given, written).replace(given.removeprefix("file:"), written)
        return text

    def failure(self, default: Failure) -> Failure:
        """The gateway's first refusal (a redirect or playlist entry leading somewhere refused) explains a
        failed run better than ffmpeg's "403 Forbidden"."""
        if self.gateway is not None and self.gateway.refusals:
            return Failure(INPUT_ERROR, self.gateway.refusals[0])  # the spec's fault: final
        message = self.display(default.message)
        if self.gateway is not None and self.gateway.errors:
            # ffmpeg saw the gateway's 502 or a closed connection; the user wants the upstream's own error
            head, found, _ = message.partition(": Server returned")
            message = f"{head}: {self.gateway.errors[-1]}" if found else f"{message} ({self.gateway.errors[-1]})"
        return Failure(default.reason, message)

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.close()
        if self.folder is not None:
            self.folder.close()
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()


def prepare(plan: api.ExecutionPlan, *, policy: EgressPolicy) -> tuple[api.ExecutionPlan, Launch]:
    """The plan as ffmpeg runs it, and the Launch holding what it opened. Raises Refusal."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARIABLES}
    launch = Launch(env=env)
    try:
        plan = _network(plan, launch, policy)
        plan = _input_file(plan, launch)
        plan = _output_file(plan, launch)
    except BaseException:
        launch.close()
        raise
    return plan, launch


def mounts(plan: api.ExecutionPlan) -> list[str]:
    return [v.mountPath for v in plan.volumes]


# -------------------------------------------------------------------------------------- network


def _network(plan: api.ExecutionPlan, launch: Launch, policy: EgressPolicy) -> api.ExecutionPlan:
    in_scheme, out_scheme = netplan.scheme(plan.inputUrl), netplan.scheme(plan.outputUrl)
    if in_scheme not in netplan.NETWORK_SCHEMES and out_scheme not in netplan.NETWORK_SCHEMES:
        return plan
    from .gateway import Gateway, Refused, Unresolvable

    gateway = launch.gateway = Gateway(policy)
    launch.env["http_proxy"] = gateway.proxy_url
    # A refused address is the spec's fault, on the output too: InputError, final, naming the field.
    for url, scheme, field_name in (
        (plan.inputUrl, in_scheme, "spec.input.url"),
        (plan.outputUrl, out_scheme, "spec.output.url"),
    ):
        if not url or scheme not in netplan.NETWORK_SCHEMES:
            continue
        try:
            if scheme == "srt":
                _pin_srt(url, policy)
            else:
                gateway.local_url(url)  # resolved, checked and pinned now: a refusal fails the job before ffmpeg
        except Unresolvable as exc:  # as ffmpeg would have said it: nothing was refused
            is_input = field_name == "spec.input.url"
            what = "cannot read the input" if is_input else "cannot write the output"
            raise Refusal(Failure(INPUT_ERROR if is_input else OUTPUT_ERROR, f"{what} {url}: {exc}")) from None
        except Refused as exc:
            raise Refusal(Failure(INPUT_ERROR, f"{field_name}: {exc}")) from None
    rewritten = netplan.rewrite(plan, local=gateway.local_url, pinned=lambda url: _pin_srt(url, policy))
    launch.shown.update(rewritten.shown)
    return rewritten.plan


def _pin_srt(url: str, policy: EgressPolicy) -> str:
    """srt:// goes over UDP, which the gateway does not carry: the checked address is written into the URL,
    so libsrt connects to it and never resolves the name (no rebinding)."""
    from .gateway import Refused, checked_address, system_resolver

    problem = netplan.srt_problem(url)
    if problem:
        raise Refused(problem)
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        raise Refused("an srt:// URL needs a host and a port")
    address = checked_address(parts.hostname, parts.port, policy, system_resolver)
    host = f"[{address}]" if address.version == 6 else str(address)
    return urlunsplit((parts.scheme, f"{host}:{parts.port}", parts.path, parts.query, parts.fragment))


# ----------------------------------------------------------------------------------------- files


def _replace_input(plan: api.ExecutionPlan, old: str, new: str) -> api.ExecutionPlan:
    def swap(argv: list[str]) -> list[str]:
        return [new if a == old and i > 0 and argv[i - 1] == "-i" else a for i, a in enumerate(argv)]

    return plan.model_copy(update={name: swap(getattr(plan, name)) for name in netplan.INPUT_ARGVS})


def _input_file(plan: api.ExecutionPlan, launch: Launch) -> api.ExecutionPlan:
    path = plan.inputUrl
    if not path or "://" in path or plan.testSource is not None:
        return plan
    volumes = mounts(plan)
    try:
        fd = launch.keep(open_input(path, volumes))
        if _concat_allowed(plan) and (concat.is_list(fd) or _forced_format(plan) == "concat"):
            # A list's names are relative to it: ffmpeg gets the list by its opened folder, which pins every
            # name to that folder; each name was checked above, links included.
            concat.check_list(path, fd, volumes)
            folder = launch.keep(open_folder(posixpath.dirname(path), volumes, what="the input's folder"))
            ref = "file:" + fd_path(folder, posixpath.basename(path))
        else:
            ref = "file:" + fd_path(fd)
    except Confined as exc:
        raise Refusal(Failure(INPUT_ERROR, f"spec.input.url: {exc}")) from None
    launch.shown[ref] = path
    return _replace_input(plan, "file:" + path, ref)


def _concat_allowed(plan: api.ExecutionPlan) -> bool:
    args = plan.inputArgs
    return any(args[i - 1] == "-format_whitelist" and "concat" in args[i].split(",") for i in range(1, len(args)))


def _forced_format(plan: api.ExecutionPlan) -> str | None:
    args = plan.inputArgs
    return next((args[i] for i in range(1, len(args) - 1) if args[i - 1] == "-f"), None)


def _output_file(plan: api.ExecutionPlan, launch: Launch) -> api.ExecutionPlan:
    if "://" in plan.outputUrl:
        return plan
    directory, final = posixpath.split(plan.outputUrl)
    try:
        if plan.renditions:  # an ABR ladder: a temp folder tree made in the opened folder, named by fd
            return ladder.launch_output(plan, launch)
        if split.owns_output(plan):  # a split job's split or cleanup child: its work folder (split.py)
            return split.launch_output(plan, launch)
        folder = launch.folder = OutputFolder(directory, mounts(plan))
        launch.final_name = final
        argv = list(plan.ffmpegArgs)
        if plan.tempOutputUrl:
            argv[-1] = launch.new_part(posixpath.basename(plan.tempOutputUrl))
        else:  # hls: the muxer writes the playlist and segments by name; they are named inside the opened folder
            stem = posixpath.splitext(final)[0]
            folder.remove_links([final, final + ".tmp"] + [n for n in folder.listing() if n.startswith(stem + "_")])
            argv[-1] = "file:" + folder.child_path(final)
            for i in range(1, len(argv)):
                if argv[i - 1] == "-hls_segment_filename":
                    argv[i] = "file:" + folder.child_path(posixpath.basename(argv[i].removeprefix("file:")))
            launch.shown["file:" + fd_path(folder.fd) + "/"] = directory + "/"
        plan = split.launch_inputs(plan, launch)  # a stitch's slices and audio (split.py); others unchanged
    except Confined as exc:  # a link leading out is the spec's fault (final); a full disk may pass (retried)
        raise Refusal(Failure(INPUT_ERROR if exc.final else OUTPUT_ERROR, f"spec.output.url: {exc}")) from None
    return plan.model_copy(update={"ffmpegArgs": argv})
