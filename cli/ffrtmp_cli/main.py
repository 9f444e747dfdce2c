# PYTHON_ARGCOMPLETE_OK  (tells argcomplete's global completion that this entry point supports it)
"""`ffrtmp` (also the kubectl plugin `kubectl transcode`): submit, list, follow, pause, resume, cancel and
read the logs of TranscodeJobs, and look at worker nodes. Flag parsing and dispatch only; the commands
live in jobs.py and nodes.py. Errors are one line on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO, get_args

import ffrtmp_api as api
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from . import completion, jobs, nodes, queues
from .errors import EXIT_ERROR, EXIT_USAGE, CliError, UsageError
from .kube import Kube, api_error_message, connect

TEST_PATTERNS = get_args(api.TestSource.model_fields["pattern"].annotation)  # the lavfi sources a job may name


COMPLETION_HELP = {
    "ffrtmp": 'Shell completion (bash, zsh): eval "$(register-python-argcomplete ffrtmp)"',
    "kubectl transcode": "Shell completion: kubectl completes `kubectl transcode` through kubectl_complete-transcode "
    "(kubectl 1.26+, installed with this command)",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line naming where help is, like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _connection_flags(*, top_level: bool) -> _Parser:
    """kubectl's connection flags, accepted before or after the command. Defaults are set only at the top:
    a subcommand's copy must not overwrite a value given before the command, so it uses SUPPRESS (and
    its help therefore names the default literally, never as %(default)s)."""
    p = _Parser(add_help=False)
    default = None if top_level else argparse.SUPPRESS
    p.add_argument("--kubeconfig", default=default, help="path to the kubeconfig (default $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", default=default, help="kubeconfig context to use")
    p.add_argument("-n", "--namespace", default=default, help="namespace (default: the context's, else default)")
    p.add_argument(
        "--system-namespace",
        default=api.DEFAULT_SYSTEM_NAMESPACE if top_level else argparse.SUPPRESS,
        help=f"where the agents' heartbeat Leases live (default {api.DEFAULT_SYSTEM_NAMESPACE})",
    )
    return p


def _command(
    sub: argparse._SubParsersAction,
    name: str,
    common: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace, Kube, TextIO], int],
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """A subcommand: its parser knows the function that runs it and itself (for errors about extra words)."""
    parser = sub.add_parser(name, parents=[common], **kwargs)
    parser.set_defaults(run=run, parser=parser, prepare=None)
    return parser


def _add_submit(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    s = _command(
        sub,
        "submit",
        common,
        jobs.submit,
        help="create a job from flags or -f FILE",
        description="Create a TranscodeJob from a YAML file (-f) or from flags. A file:// input or "
        "output must lie under a --volume mount path.",
    )
    s.set_defaults(prepare=jobs.prepare_submit)
    s.add_argument("-f", "--filename", dest="file", help="TranscodeJob YAML ('-' for stdin)")
    s.add_argument("--name", help="job name (default: generated)")
    s.add_argument("--input", help="input URL: file:///vol/in.mp4, https://..., rtmp://...")
    s.add_argument(
        "--test-source", metavar="PATTERN", choices=TEST_PATTERNS, help=f"synthetic input: {', '.join(TEST_PATTERNS)}"
    )
    s.add_argument("--source-size", metavar="WxH", help="test source frame size (default 1280x720)")
    s.add_argument("--source-fps", type=int, help="test source frame rate")
    s.add_argument("--duration", type=float, help="test source length in seconds")
    s.add_argument("--output", help="output URL: file:///vol/out.mp4 or rtmp://...")
    s.add_argument("--codec", choices=["h264", "hevc", "av1", "vp9", "copy"])
    s.add_argument("--preset", help="encoder preset, e.g. veryfast")
    s.add_argument("--crf", type=int, help="constant rate factor (quality; lower is better)")
    s.add_argument("--bitrate", help="video bitrate, e.g. 2500k")
    s.add_argument("--size", metavar="WxH", help="output frame size")
    s.add_argument("--fps", type=float, help="output frame rate")
    s.add_argument("--gop", type=int, help="keyframe interval in frames")
    s.add_argument("--audio-codec", choices=["aac", "opus", "mp3", "copy", "none"])
    s.add_argument("--accelerator", choices=["auto", "none", "nvidia", "intel", "vaapi"])
    s.add_argument(
        "--queue", help="the TranscodeQueue to wait in (default: default; `ffrtmp queues` lists them)"
    ).completer = completion.queue_names  # type: ignore[attr-defined]
    s.add_argument("--priority", choices=list(api.PRIORITY_CLASSES))
    s.add_argument(
        "--volume",
        action="append",
        metavar="NAME:MOUNTPATH:SOURCE",
        help="job volume (repeatable); SOURCE is pvc=CLAIM, hostPath=/DIR or emptyDir, e.g. media:/media:pvc=media",
    )
    s.add_argument("--quality", metavar="LIST", help="quality metrics, e.g. psnr,ssim")
    s.add_argument("--max-retries", type=int)
    s.add_argument("--timeout", type=int, help="fail the job after this many seconds")
    s.add_argument("--live-duration", type=int, help="live jobs: stop after this many seconds")
    s.add_argument("--follow", action="store_true", help="then follow it like `status --follow`")


def build_parser(prog: str = "ffrtmp") -> argparse.ArgumentParser:
    common = _connection_flags(top_level=False)
    parser = _Parser(
        prog=prog,
        parents=[_connection_flags(top_level=True)],
        description="Drive ffrtmp TranscodeJobs and look at worker nodes.",
        epilog=COMPLETION_HELP.get(prog, COMPLETION_HELP["ffrtmp"]),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_submit(sub, common)

    ls = _command(sub, "list", common, jobs.list_jobs, aliases=["ls"], help="list jobs")
    ls.add_argument("-A", "--all-namespaces", action="store_true", help="jobs of every namespace")
    ls.add_argument("--phase", choices=[p.value for p in api.Phase], help="only jobs in this phase")
    ls.add_argument("-o", "--output", choices=["table", "json", "yaml", "name"], default="table")

    st = _command(sub, "status", common, jobs.status, help="show a job; --follow draws a live progress bar")
    st.add_argument("name", help="job name").completer = completion.job_names  # type: ignore[attr-defined]
    st.add_argument(
        "-f", "--follow", action="store_true", help="follow until the job ends; exit 0 only if it Completed"
    )
    st.add_argument("--interval", type=float, default=1.0, help="seconds between updates (default 1)")
    st.add_argument("--timeout", type=float, help="with --follow: give up after this many seconds")
    st.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")

    for verb, text in (
        ("pause", "pause a job (spec.paused=true)"),
        ("resume", "resume a job (spec.paused=false)"),
        ("cancel", "cancel a job (spec.canceled=true; cannot be undone)"),
    ):
        flag = _command(sub, verb, common, jobs.set_flag, help=text, description=text[0].upper() + text[1:] + ".")
        flag.add_argument("name", help="job name").completer = completion.active_job_names  # type: ignore[attr-defined]

    lg = _command(sub, "logs", common, jobs.logs, help="the job pod's output (ffmpeg and runner)")
    lg.add_argument("name", help="job name").completer = completion.job_names  # type: ignore[attr-defined]
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing until the pod ends")
    lg.add_argument("--attempt", type=int, help="an earlier attempt's pod (default: the latest)")
    lg.add_argument("--tail", type=int, help="only the last N lines")

    _command(sub, "queues", common, queues.list_queues, help="the TranscodeQueues: order, pause, cap, counts")

    node = sub.add_parser("nodes", parents=[common], help="worker nodes")
    nsub = node.add_subparsers(dest="nodes_command", required=True, metavar="SUBCOMMAND")
    _command(nsub, "list", common, nodes.list_nodes, aliases=["ls"], help="worker nodes with status and slots")
    nd = _command(nsub, "describe", common, nodes.describe_node, help="hardware, encoders, slots and jobs of a node")
    nd.add_argument("node", help="node name").completer = completion.node_names  # type: ignore[attr-defined]
    return parser


def _prog() -> str:
    return "kubectl transcode" if os.path.basename(sys.argv[0] if sys.argv else "") == "kubectl-transcode" else "ffrtmp"


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    prog = _prog()
    parser = build_parser(prog)
    completion.enable(parser)  # answers the shell and exits when run by a completion hook; else no-op
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's parser, so the message points at that command's --help
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # The kubernetes client retries through urllib3, whose WARNING per retry would reach stderr through
    # logging's last-resort handler: the error below is the one line the user gets.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        if args.prepare:
            args.prepare(args)
        kube = connect(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace)
        with kube.api_client:
            return args.run(args, kube, out)
    except UsageError as exc:
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ApiException as exc:
        print(f"error: {api_error_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except (HTTPError, OSError) as exc:
        print(f"error: cannot reach the API server: {_first_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = getattr(exc, "reason", None)
    if reason is not None and str(reason) != str(exc):
        return str(reason).splitlines()[0]
    return text[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
