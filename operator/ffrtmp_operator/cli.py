"""`ffrtmp` (also the kubectl plugin `kubectl transcode`): submit, list, follow, pause, resume, cancel and
read the logs of TranscodeJobs, and look at worker nodes. Flag parsing and dispatch only; the commands
live in cli_jobs.py and cli_nodes.py. Errors are one line on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

import ffrtmp_api as api
from . import cli_jobs, cli_nodes
from .cli_format import UsageError
from .cli_kube import CliError, api_error_message, connect

EXIT_ERROR, EXIT_USAGE = 1, 2


def _connection_flags(*, top_level: bool) -> argparse.ArgumentParser:
    """kubectl's connection flags, accepted before or after the command (defaults only at the top)."""
    p = argparse.ArgumentParser(add_help=False)
    default = None if top_level else argparse.SUPPRESS
    p.add_argument("--kubeconfig", default=default, help="path to the kubeconfig (default $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", default=default, help="kubeconfig context to use")
    p.add_argument("-n", "--namespace", default=default, help="namespace (default: the context's, else default)")
    p.add_argument("--system-namespace", default=api.DEFAULT_SYSTEM_NAMESPACE if top_level else argparse.SUPPRESS,
                   help="where the agents' heartbeat Leases live (default %(default)s)")
    return p


def build_parser(prog: str = "ffrtmp") -> argparse.ArgumentParser:
    common = _connection_flags(top_level=False)
    parser = argparse.ArgumentParser(prog=prog, parents=[_connection_flags(top_level=True)],
                                     description="Drive ffrtmp TranscodeJobs and look at worker nodes.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("submit", parents=[common], help="create a job from flags or -f FILE")
    s.add_argument("-f", "--filename", dest="file", help="TranscodeJob YAML ('-' for stdin)")
    s.add_argument("--name", help="job name (default: generated)")
    s.add_argument("--input", help="input URL: file:///vol/in.mp4, https://..., rtmp://...")
    s.add_argument("--test-source", metavar="PATTERN", help="synthetic input: testsrc2, smptebars, ...")
    s.add_argument("--source-size", metavar="WxH", help="test source frame size (default 1280x720)")
    s.add_argument("--source-fps", type=int, help="test source frame rate")
    s.add_argument("--duration", type=float, help="test source length in seconds")
    s.add_argument("--output", help="output URL: file:///vol/out.mp4 or rtmp://...")
    s.add_argument("--codec", choices=["h264", "hevc", "av1", "vp9", "copy"])
    s.add_argument("--preset")
    s.add_argument("--crf", type=int)
    s.add_argument("--bitrate", help="video bitrate, e.g. 2500k")
    s.add_argument("--size", metavar="WxH", help="output frame size")
    s.add_argument("--fps", type=float, help="output frame rate")
    s.add_argument("--gop", type=int)
    s.add_argument("--audio-codec", choices=["aac", "opus", "mp3", "copy", "none"])
    s.add_argument("--accelerator", choices=["auto", "none", "nvidia", "intel", "vaapi"])
    s.add_argument("--queue", choices=list(api.QUEUE_RANK))
    s.add_argument("--priority", choices=list(api.PRIORITY_CLASSES))
    s.add_argument("--volume", action="append", metavar="NAME:MOUNTPATH:SOURCE",
                   help="job volume; SOURCE is pvc=CLAIM, hostPath=/dir or emptyDir (repeatable)")
    s.add_argument("--quality", metavar="LIST", help="quality metrics, e.g. psnr,ssim")
    s.add_argument("--max-retries", type=int)
    s.add_argument("--timeout", type=int, help="fail the job after this many seconds")
    s.add_argument("--live-duration", type=int, help="live jobs: stop after this many seconds")
    s.add_argument("--follow", action="store_true", help="then follow it like `status --follow`")

    ls = sub.add_parser("list", aliases=["ls"], parents=[common], help="list jobs")
    ls.add_argument("-A", "--all-namespaces", action="store_true")
    ls.add_argument("--phase", help="only jobs in this phase")
    ls.add_argument("-o", "--output", choices=["table", "json", "yaml", "name"], default="table")

    st = sub.add_parser("status", parents=[common], help="show a job; --follow draws a live progress bar")
    st.add_argument("name")
    st.add_argument("-f", "--follow", action="store_true",
                    help="follow until the job ends; exit 0 only if it Completed")
    st.add_argument("--interval", type=float, default=1.0, help="seconds between updates (default 1)")
    st.add_argument("--timeout", type=float, help="with --follow: give up after this many seconds")
    st.add_argument("-o", "--output", choices=["text", "json", "yaml"], default="text")

    for verb, text in (("pause", "pause a job (spec.paused=true)"), ("resume", "resume a job (spec.paused=false)"),
                       ("cancel", "cancel a job (spec.canceled=true; cannot be undone)")):
        sub.add_parser(verb, parents=[common], help=text).add_argument("name")

    lg = sub.add_parser("logs", parents=[common], help="the job pod's output (ffmpeg and runner)")
    lg.add_argument("name")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--attempt", type=int, help="an earlier attempt's pod (default: the latest)")
    lg.add_argument("--tail", type=int, help="only the last N lines")

    nodes = sub.add_parser("nodes", parents=[common], help="worker nodes")
    nsub = nodes.add_subparsers(dest="nodes_command", required=True, metavar="SUBCOMMAND")
    nsub.add_parser("list", aliases=["ls"], parents=[common], help="worker nodes with status and slots")
    nd = nsub.add_parser("describe", parents=[common], help="hardware, encoders, slots and jobs of a node")
    nd.add_argument("node")
    return parser


COMMANDS = {
    "submit": cli_jobs.submit, "list": cli_jobs.list_jobs, "ls": cli_jobs.list_jobs, "status": cli_jobs.status,
    "pause": cli_jobs.set_flag, "resume": cli_jobs.set_flag, "cancel": cli_jobs.set_flag, "logs": cli_jobs.logs,
}
NODE_COMMANDS = {"list": cli_nodes.list_nodes, "ls": cli_nodes.list_nodes, "describe": cli_nodes.describe_node}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    prog = "kubectl transcode" if sys.argv and sys.argv[0].endswith("kubectl-transcode") else "ffrtmp"
    args = build_parser(prog).parse_args(argv)
    if args.command == "nodes":
        handler = NODE_COMMANDS[args.nodes_command]
    else:
        handler = COMMANDS[args.command]
    try:
        kube = connect(kubeconfig=args.kubeconfig, context=args.context, namespace=args.namespace)
        with kube.api_client:
            return handler(args, kube, out)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
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
        print("", file=sys.stderr)
        return 130


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = getattr(exc, "reason", None)
    if reason is not None and str(reason) != str(exc):
        return str(reason).splitlines()[0]
    return text[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
