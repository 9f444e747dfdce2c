"""`python -m ffrtmp_stack up|down|status`: run the local stack (used by `make up` / `make down`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .stack import DEFAULT_DEV_DIR, Stack, StackConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffrtmp_stack", description=__doc__)
    parser.add_argument("--dev-dir", type=Path, default=Path(os.environ.get("FFRTMP_DEV_DIR", DEFAULT_DEV_DIR)),
                        help="where state, pids, logs and the kubeconfig live (default: .dev in the repo)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start whatever is missing and wait until everything is ready")
    up.add_argument("--agents", type=int, default=2, help="standalone agents ffrtmp-local-1..n")
    up.add_argument("--slots", type=int, default=2, help="jobs each agent runs at once")
    up.add_argument("--metrics-port", type=int, default=9090,
                    help="operator metrics port; agent i uses this + i (0 = no metrics)")
    sub.add_parser("down", help="stop every part (etcd data and keys stay in the dev dir)")
    sub.add_parser("status", help="show each part; exit 1 unless all are running and ready")
    args = parser.parse_args(argv)

    stack = Stack(args.dev_dir)
    began = time.monotonic()
    try:
        if args.command == "up":
            stack.up(StackConfig(dev_dir=stack.dev, agents=args.agents, slots=args.slots,
                                 metrics_port=args.metrics_port))
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
