"""`python -m ffrtmp_stack up|down|status|demo`: the local stack (`make up`, `make down`, `make demo`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import demo
from .stack import DEFAULT_DEV_DIR, Stack, StackConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffrtmp_stack", description=__doc__)
    parser.add_argument(
        "--dev-dir",
        type=Path,
        default=Path(os.environ.get("FFRTMP_DEV_DIR", DEFAULT_DEV_DIR)),
        help="where state, pids, logs and the kubeconfig live (default: .dev in the repo)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("up", "start whatever is missing and wait until everything is ready"),
        ("demo", "up, then run example jobs on shared media storage and follow them"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--agents", type=int, default=2, help="standalone agents ffrtmp-local-1..n")
        cmd.add_argument("--slots", type=int, default=2, help="jobs each agent runs at once")
        cmd.add_argument(
            "--metrics-port",
            type=int,
            default=9090,
            help="operator metrics port; agent i uses this + i (0 = no metrics)",
        )
    sub.add_parser("down", help="stop every part (etcd data and keys stay in the dev dir)")
    sub.add_parser("status", help="show each part; exit 1 unless all are running and ready")
    args = parser.parse_args(argv)

    stack = Stack(args.dev_dir)
    began = time.monotonic()
    try:
        if args.command in ("up", "demo"):
            cfg = StackConfig(dev_dir=stack.dev, agents=args.agents, slots=args.slots, metrics_port=args.metrics_port)
            if args.command == "demo":
                return 0 if demo.run(stack, cfg) else 1
            stack.up(cfg)
            print(f"up took {time.monotonic() - began:.1f} s")
        elif args.command == "down":
            stack.down()
        else:
            return 0 if stack.status() else 1
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
