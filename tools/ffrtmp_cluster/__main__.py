"""`python -m ffrtmp_cluster image|up|down|status|demo`: `make image`, `make cluster`, `make down`,
`make cluster-demo`. Errors are one line on stderr and exit status 1."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _image(args: argparse.Namespace) -> int:
    from . import image

    built = image.build(Path(args.dist))
    img = built.image
    how = "reused (no change)" if built.cached else "built"
    print(f"{built.ref} {how} in {built.seconds:.1f} s")
    print(f"  archive  {built.archive} ({img.size / 1e6:.0f} MB; {img.unpacked / 1e6:.0f} MB unpacked)")
    print(f"  digest   {img.manifest_digest} (manifest; containerd)")
    print(f"  image id {img.config_digest} (config; docker/podman)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ffrtmp_cluster", description=__doc__)
    parser.add_argument("--dev-dir", type=Path, default=Path(os.environ.get("FFRTMP_DEV_DIR", ".dev")))
    sub = parser.add_subparsers(dest="command", required=True)
    img = sub.add_parser("image", help="build dist/ffrtmp-<version>.tar (cached)")
    img.add_argument("--dist", default="dist")
    for name, text in (
        ("up", "start the cluster (whatever is missing), install the chart, wait until ready"),
        ("demo", "up, then run the example jobs as pods and follow them"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--nodes", type=int, default=int(os.environ.get("NODES", "1")))
        cmd.add_argument("--archive", type=Path, help="image archive (default dist/ffrtmp-<version>.tar)")
        cmd.add_argument("--set", action="append", default=[], help="extra helm --set values")
    sub.add_parser("down", help="stop the cluster and remove all it made (image stores stay cached)")
    sub.add_parser("status", help="show the parts; exit 1 unless all run")
    args = parser.parse_args(argv)
    try:
        if args.command == "image":
            return _image(args)
        from .cluster import Cluster, UpConfig

        cluster = Cluster(args.dev_dir)
        if args.command in ("up", "demo"):
            if args.nodes < 1:
                parser.error("--nodes (NODES) must be at least 1")
            cfg = UpConfig(
                nodes=args.nodes, archive=args.archive, helm_args=tuple(a for s in args.set for a in ("--set", s))
            )
            if args.command == "demo":
                from . import demo

                return 0 if demo.run(cluster, cfg) else 1
            cluster.up(cfg)
        elif args.command == "down":
            if not cluster.down():
                print(f"no cluster in {cluster.dir}")
        else:
            return 0 if cluster.status() else 1
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
