"""The `ffrtmp` job commands: submit, list, status (with --follow), pause, resume, cancel, logs.

Each takes the parsed flags and a connected `Kube`, writes to stdout, and returns the exit code;
errors are raised as CliError (one line, exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import ffrtmp_api as api
import yaml
from kubernetes.client.exceptions import ApiException

from .errors import CliError, UsageError
from .flags import job_from_flags
from .format import JOB_HEADERS, TERMINAL, describe_job, job_row, progress_line, table, why
from .kube import Kube, api_error_message

LOG_FILE_ANNOTATION = "ffrtmp.io/log-file"  # set on a job pod by a standalone agent: the runner's output file


def _now() -> datetime:
    return datetime.now(UTC)


def _load_manifests(path: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != api.KIND:
            raise CliError(f"{path}: every document must be a {api.KIND}")
    if not docs:
        raise CliError(f"{path} holds no {api.KIND}")
    return docs


def prepare_submit(args: argparse.Namespace) -> None:
    """Read -f FILE or build the job from flags before connecting, so a mistake (a bad flag, a file path
    under no volume) is reported without a cluster and before anything is sent."""
    if args.file:
        manifests = _load_manifests(args.file)
        if args.name:
            if len(manifests) > 1:
                raise UsageError("--name applies to a single job")
            manifests[0].setdefault("metadata", {})["name"] = args.name
    else:
        manifests = [job_from_flags(vars(args))]
    if args.follow and len(manifests) != 1:
        raise UsageError("--follow needs a single job")
    args.manifests = manifests


def submit(args: argparse.Namespace, kube: Kube, out: TextIO) -> int:
    if getattr(args, "manifests", None) is None:
        prepare_submit(args)
    names = []
    for manifest in args.manifests:
        namespace = args.namespace or manifest.get("metadata", {}).get("namespace") or kube.namespace
        manifest.setdefault("metadata", {})["namespace"] = namespace
        created = kube.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, manifest)
        names.append(created["metadata"]["name"])
        print(f"transcodejob.{api.GROUP}/{created['metadata']['name']} created", file=out)
    if args.follow:
        return follow(kube, names[0], out=out, interval=1.0, timeout=None)
    return 0


def list_jobs(args: argparse.Namespace, kube: Kube, out: TextIO) -> int:
    if args.all_namespaces:
        items = kube.custom.list_cluster_custom_object(api.GROUP, api.VERSION, api.PLURAL)["items"]
    else:
        items = kube.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, kube.namespace, api.PLURAL)["items"]
    if args.phase:
        items = [j for j in items if ((j.get("status") or {}).get("phase") or "Pending") == args.phase]
    items.sort(key=lambda j: (j["metadata"].get("namespace", ""), j["metadata"]["name"]))
    if args.output in ("json", "yaml"):
        return _dump({"apiVersion": "v1", "kind": "List", "items": items}, args.output, out)
    if args.output == "name":
        for job in items:
            print(f"transcodejob.{api.GROUP}/{job['metadata']['name']}", file=out)
        return 0
    if not items:
        where = "any namespace" if args.all_namespaces else f"namespace {kube.namespace}"
        print(f"No transcodejobs found in {where}.", file=sys.stderr)
        return 0
    now = _now()
    headers = (["NAMESPACE"] if args.all_namespaces else []) + JOB_HEADERS
    print(table(headers, [job_row(j, now=now, namespace_column=args.all_namespaces) for j in items]), file=out)
    return 0


def _dump(obj: Any, fmt: str, out: TextIO) -> int:
    if fmt == "json":
        print(json.dumps(obj, indent=2), file=out)
    else:
        print(yaml.safe_dump(obj, sort_keys=False).rstrip(), file=out)
    return 0


def status(args: argparse.Namespace, kube: Kube, out: TextIO) -> int:
    if args.follow:
        return follow(kube, args.name, out=out, interval=args.interval, timeout=args.timeout)
    job = kube.get_job(args.name)
    if args.output in ("json", "yaml"):
        return _dump(job, args.output, out)
    print(describe_job(job, now=_now()), file=out)
    return 0


def follow(kube: Kube, name: str, *, out: TextIO, interval: float, timeout: float | None) -> int:
    """Poll the job and redraw one progress line until it ends: exit 0 only if it Completed.
    On a terminal the line is redrawn in place; in a pipe each change is a new line."""
    tty = out.isatty()
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    while True:
        job = kube.get_job(name)
        line = progress_line(job)
        if tty:
            out.write("\r\x1b[2K" + line)
            out.flush()
        elif line != last:
            print(line, file=out, flush=True)
        last = line
        phase = (job.get("status") or {}).get("phase")
        if phase in TERMINAL:
            if tty:
                out.write("\n")
            if phase == api.Phase.COMPLETED:
                return 0
            text = why(job.get("status") or {})
            raise CliError(f"transcodejob {name} {phase}" + (f": {text}" if text else ""))
        if deadline is not None and time.monotonic() > deadline:
            if tty:
                out.write("\n")
            raise CliError(f"transcodejob {name} still {phase or 'Pending'} after {timeout:g}s")
        time.sleep(interval)


def set_flag(args: argparse.Namespace, kube: Kube, out: TextIO) -> int:
    """pause / resume / cancel: a merge patch of spec.paused or spec.canceled."""
    job = kube.get_job(args.name)
    phase = (job.get("status") or {}).get("phase")
    if phase in TERMINAL:
        raise CliError(f"transcodejob {args.name} is already {phase}")
    spec = {"pause": {"paused": True}, "resume": {"paused": False}, "cancel": {"canceled": True}}[args.command]
    kube.patch_job_spec(args.name, spec)
    verb = {"pause": "paused", "resume": "resumed", "cancel": "canceled"}[args.command]
    print(f"transcodejob.{api.GROUP}/{args.name} {verb}", file=out)
    return 0


def _job_pod(kube: Kube, job: dict[str, Any], attempt: int | None) -> dict[str, Any]:
    name = job["metadata"]["name"]
    selector = f"{api.LABEL_JOB}={name}" + (f",{api.LABEL_ATTEMPT}={attempt}" if attempt else "")
    pods = kube.core.list_namespaced_pod(kube.namespace, label_selector=selector).items
    pods = [kube.api_client.sanitize_for_serialization(p) for p in pods]
    if not pods:
        which = f"attempt {attempt} of " if attempt else ""
        phase = (job.get("status") or {}).get("phase") or "Pending"
        raise CliError(f"no pod for {which}transcodejob {name} (phase {phase}; pods of finished jobs may be gone)")
    current = (job.get("status") or {}).get("pod")
    pods.sort(
        key=lambda p: (
            p["metadata"]["name"] == current,
            int(p["metadata"].get("labels", {}).get(api.LABEL_ATTEMPT, "0") or 0),
        )
    )
    return pods[-1]


def logs(args: argparse.Namespace, kube: Kube, out: TextIO) -> int:
    """The runner's output: through the API (a kubelet serves it), or, for a pod a standalone agent runs on
    this machine, from the log file the agent names in the pod's ffrtmp.io/log-file annotation."""
    job = kube.get_job(args.name)
    pod = _job_pod(kube, job, args.attempt)
    pod_name = pod["metadata"]["name"]
    log_file = (pod["metadata"].get("annotations") or {}).get(LOG_FILE_ANNOTATION)
    if log_file and Path(log_file).is_file():
        return _file_logs(kube, pod_name, Path(log_file), out=out, follow=args.follow, tail=args.tail)
    try:
        if args.follow:
            stream = kube.core.read_namespaced_pod_log(
                pod_name,
                kube.namespace,
                container=api.RUNNER_CONTAINER,
                follow=True,
                _preload_content=False,
                tail_lines=args.tail,
            )
            for chunk in stream.stream():
                out.write(chunk.decode(errors="replace"))
                out.flush()
        else:
            text = kube.core.read_namespaced_pod_log(
                pod_name, kube.namespace, container=api.RUNNER_CONTAINER, tail_lines=args.tail
            )
            out.write(text)
    except ApiException as exc:
        hint = f" (log file {log_file} is not on this machine)" if log_file else ""
        raise CliError(f"cannot read the logs of pod {pod_name}: {api_error_message(exc)}{hint}") from None
    return 0


def _file_logs(kube: Kube, pod_name: str, path: Path, *, out: TextIO, follow: bool, tail: int | None) -> int:
    with path.open("rb") as handle:
        data = handle.read()
        if tail is not None:
            data = b"".join(data.splitlines(keepends=True)[-tail:]) if tail > 0 else b""
        out.write(data.decode(errors="replace"))
        out.flush()
        while follow:
            chunk = handle.read()
            if chunk:
                out.write(chunk.decode(errors="replace"))
                out.flush()
                continue
            try:
                phase = kube.core.read_namespaced_pod(pod_name, kube.namespace).status.phase
            except ApiException as exc:
                if exc.status == 404:
                    break
                raise
            if phase in ("Succeeded", "Failed"):
                out.write(handle.read().decode(errors="replace"))
                break
            time.sleep(0.5)
    return 0
