"""Shell completion through argcomplete: subcommands, flags and flag values come from the parser; job and
node names from the cluster (the completers below). `eval "$(register-python-argcomplete ffrtmp)"` turns it
on in bash or zsh; `kubectl_complete-transcode` serves kubectl's plugin completion (kubectl 1.26+).

A completer runs inside the user's shell at every Tab: it must answer fast and never print or raise, so
any failure (no kubeconfig, cluster down, no RBAC) completes nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ffrtmp_api as api

REQUEST_TIMEOUT_S = 3.0
IFS = "\013"
# Flags are offered once a "-" is typed (as kubectl does), so a Tab after a command lists its names only.
ALWAYS_COMPLETE_OPTIONS = False


def enable(parser: argparse.ArgumentParser) -> None:
    """When the process was started by a completion hook (_ARGCOMPLETE set), print the completions and
    exit; otherwise return at once. Without argcomplete installed, completion is simply off."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser, always_complete_options=ALWAYS_COMPLETE_OPTIONS)


def _names(parsed_args: argparse.Namespace, list_items: Callable[[Any], Iterable[dict]], prefix: str) -> list[str]:
    from .kube import connect  # imported here: the kubernetes client is only needed when names are wanted

    try:
        kube = connect(
            kubeconfig=getattr(parsed_args, "kubeconfig", None),
            context=getattr(parsed_args, "context", None),
            namespace=getattr(parsed_args, "namespace", None),
        )
        with kube.api_client:
            items = list(list_items(kube))
    except Exception:  # completion must never fail or print: complete nothing instead
        return []
    return sorted(name for item in items if (name := item["metadata"]["name"]).startswith(prefix))


def _jobs(kube: Any) -> list[dict]:
    return kube.custom.list_namespaced_custom_object(
        api.GROUP, api.VERSION, kube.namespace, api.PLURAL, _request_timeout=REQUEST_TIMEOUT_S
    )["items"]


def job_names(prefix: str, parsed_args: argparse.Namespace, **_: object) -> list[str]:
    """TranscodeJob names in the namespace (-n, else the context's) that start with `prefix`."""
    return _names(parsed_args, _jobs, prefix)


def active_job_names(prefix: str, parsed_args: argparse.Namespace, **_: object) -> list[str]:
    """Only jobs that have not ended: pause, resume and cancel refuse the others."""
    terminal = {p.value for p in api.TERMINAL_PHASES}
    return _names(
        parsed_args,
        lambda kube: (j for j in _jobs(kube) if (j.get("status") or {}).get("phase") not in terminal),
        prefix,
    )


def node_names(prefix: str, parsed_args: argparse.Namespace, **_: object) -> list[str]:
    """Worker node names (label ffrtmp.io/worker=true)."""

    def workers(kube: Any) -> list[dict]:
        nodes = kube.core.list_node(label_selector=f"{api.LABEL_WORKER}=true", _request_timeout=REQUEST_TIMEOUT_S)
        return [{"metadata": {"name": n.metadata.name}} for n in nodes.items]

    return _names(parsed_args, workers, prefix)


def queue_names(prefix: str, parsed_args: argparse.Namespace, **_: object) -> list[str]:
    """TranscodeQueue names in serving order, the built-in live, default and batch among them (offered even
    when the cluster cannot be asked)."""
    from . import queues
    from .kube import connect

    try:
        kube = connect(
            kubeconfig=getattr(parsed_args, "kubeconfig", None),
            context=getattr(parsed_args, "context", None),
            namespace=getattr(parsed_args, "namespace", None),
        )
        with kube.api_client:
            order = queues.names(kube)
    except Exception:  # completion must never fail or print: the built-in names still help
        order = list(api.BUILTIN_QUEUES)
    return [name for name in order if name.startswith(prefix)]


def complete(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """The completions argcomplete gives for `prog WORDS...`, the last word being the one under the cursor."""
    import argcomplete

    line = " ".join([parser.prog.split()[0], *map(shlex.quote, words[:-1]), words[-1] if words else ""])
    saved = dict(os.environ)
    os.environ.update(
        {
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_IFS": IFS,
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_SUPPRESS_SPACE": "1",
        }
    )
    stream = io.StringIO()

    def done(code: int = 0) -> None:
        raise SystemExit(code)

    try:
        argcomplete.autocomplete(
            parser, always_complete_options=ALWAYS_COMPLETE_OPTIONS, output_stream=stream, exit_method=done
        )
    except SystemExit:
        pass
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return [c for c in stream.getvalue().split(IFS) if c]


def kubectl_complete(argv: Sequence[str] | None = None) -> int:
    """`kubectl_complete-transcode ARGS...`: kubectl's plugin completion protocol. kubectl passes what
    follows `kubectl transcode`, the last argument being the word to complete (possibly empty); the answer
    is one completion per line, then `:4` (cobra's ShellCompDirectiveNoFileComp)."""
    from .main import build_parser

    words = list(sys.argv[1:] if argv is None else argv) or [""]
    for candidate in complete(build_parser("kubectl transcode"), words):
        print(candidate.rstrip(" "))
    print(":4")
    return 0
