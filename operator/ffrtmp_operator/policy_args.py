"""The operator's job-policy flags (`--host-path`, `--priority-class`, `--input-format`, resource defaults and
maxima) and their parsing into `settings.JobPolicy`. The chart renders these flags from values.jobPolicy;
a bad value stops the operator at start-up rather than widening what jobs may do.
"""

from __future__ import annotations

import argparse
import re

from ffrtmp_api import paths
from ffrtmp_api.egress import EgressPolicy

from .policy import parse_quantity
from .settings import JobPolicy

__all__ = ["add_arguments", "job_policy"]

_CLASS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_FORMAT_NAME = re.compile(r"^[a-z0-9_]+$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# flag -> (JobPolicy field, help)
_QUANTITIES = {
    "--job-cpu-request": ("cpu_request", "CPU request of a job pod that sets none"),
    "--job-memory-request": ("memory_request", "memory request of a job pod that sets none"),
    "--job-cpu-limit": ("cpu_limit", "CPU limit of a job pod that sets none"),
    "--job-memory-limit": ("memory_limit", "memory limit of a job pod that sets none"),
    "--job-max-cpu": ("max_cpu", "largest CPU request or limit a job may ask for"),
    "--job-max-memory": ("max_memory", "largest memory request or limit a job may ask for"),
    "--empty-dir-size-limit": ("empty_dir_size_limit", "sizeLimit of an emptyDir that sets none"),
    "--max-memory-empty-dir": ("max_memory_empty_dir", "largest sizeLimit of a medium: Memory emptyDir"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = JobPolicy()
    group = parser.add_argument_group("job policy", "what tenants' jobs may ask for (chart values jobPolicy.*)")
    group.add_argument(
        "--host-path",
        action="append",
        default=[],
        metavar="NAMESPACE=FOLDER",
        help="let jobs in NAMESPACE mount hostPath volumes at or under FOLDER (repeatable; "
        "default: no hostPath anywhere)",
    )
    group.add_argument(
        "--priority-class",
        action="append",
        default=[],
        metavar="NAME",
        help=f"a PriorityClass spec.priorityClassName may name (repeatable; always allowed: "
        f"{', '.join(d.priority_classes)})",
    )
    group.add_argument(
        "--input-format",
        action="append",
        default=[],
        metavar="DEMUXER",
        help="a demuxer every job may use beyond the safe list (repeatable)",
    )
    group.add_argument(
        "--egress-allow",
        action="append",
        default=[],
        metavar="CIDR|HOST",
        help="a network or host name jobs may reach although it is loopback, link-local or "
        "private (repeatable; default: public addresses only)",
    )
    for flag, (name, text) in _QUANTITIES.items():
        group.add_argument(flag, default=getattr(d, name), metavar="QUANTITY", help=f"{text} ('' = none)")


def job_policy(parser: argparse.ArgumentParser, args: argparse.Namespace) -> JobPolicy:
    """The JobPolicy the parsed flags describe; a value that is not safe to use ends the program through
    parser.error (exit status 2), like any bad flag."""
    try:
        return _job_policy(args)
    except ValueError as exc:
        parser.error(str(exc))


def _job_policy(args: argparse.Namespace) -> JobPolicy:
    host_paths = []
    for item in args.host_path:
        namespace, _, folder = item.partition("=")
        problem = paths.normal_form_problem(folder)
        if not _NAMESPACE.match(namespace) or problem:
            raise ValueError(f"--host-path {item!r}: want NAMESPACE=/folder ({problem or 'namespace'})")
        host_paths.append((namespace, folder))
    for name in args.priority_class:
        if not _CLASS_NAME.match(name) or name.startswith("system-"):
            raise ValueError(f"--priority-class {name!r}: not a PriorityClass jobs may use")
    for name in args.input_format:
        if not _FORMAT_NAME.match(name):
            raise ValueError(f"--input-format {name!r}: not a demuxer name")
    EgressPolicy.parse(args.egress_allow)  # raises ValueError naming a bad entry
    quantities = {}
    for flag, (name, _) in _QUANTITIES.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value:
            try:
                parse_quantity(value)
            except ValueError as exc:
                raise ValueError(f"{flag}: {exc}") from None
        quantities[name] = value
    return JobPolicy(
        host_paths=tuple(host_paths),
        priority_classes=tuple(dict.fromkeys([*JobPolicy().priority_classes, *args.priority_class])),
        input_formats=tuple(dict.fromkeys(args.input_format)),
        egress_allow=tuple(dict.fromkeys(args.egress_allow)),
        **quantities,
    )
