"""`make demo`: bring the local stack up, give it shared media storage (a hostPath PV in .dev/media, the
claim "media" in namespace "demo"), record a real input file with ffmpeg, apply example jobs from
examples/ and follow them until they finish, the way a user would with `kubectl get tj -w`.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import ffrtmp_api as api
import yaml

from . import controlplane as cp
from .stack import Stack, StackConfig

NAMESPACE = "demo"
EXAMPLES = ("hello.yaml", "file-to-hevc.yaml")  # a synthetic source, and a file on the shared volume
INPUT = "in/talk.mp4"  # what examples/file-to-hevc.yaml reads
TERMINAL = {"Completed", "Failed", "Canceled"}


def _kubectl(lay: cp.Layout, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(lay.bin_dir / "kubectl"), "--kubeconfig", str(lay.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _storage(media: Path) -> str:
    """examples/storage.yaml with the PV pointing into the dev dir instead of /var/lib/ffrtmp/media."""
    docs = list(yaml.safe_load_all((cp.REPO / "examples" / "storage.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "PersistentVolume":
            doc["spec"]["hostPath"]["path"] = str(media)
    return yaml.safe_dump_all(docs)


def _record_input(path: Path) -> None:
    """A 10 s 720p clip with a tone, so the file job has a real input to read."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30:duration=10",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=10",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
    )


def _jobs(lay: cp.Layout) -> dict[str, dict]:
    listed = yaml.safe_load(_kubectl(lay, "get", "tj", "-n", NAMESPACE, "-o", "yaml"))
    return {j["metadata"]["name"]: j.get("status") or {} for j in listed["items"]}


def run(stack: Stack, cfg: StackConfig, *, timeout_s: float = 300) -> bool:
    """Run the demo on the stack; True when every example job completed."""
    lay = stack.up(cfg)
    media = stack.dev / "media"
    (media / "out").mkdir(parents=True, exist_ok=True)
    _record_input(media / INPUT)
    # Job pods run as the non-root runner user, as an admin's storage would be set up for them.
    os.chown(media / "out", api.RUNNER_UID, api.RUNNER_UID)

    _kubectl(
        lay,
        "apply",
        "-f",
        "-",
        stdin=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    )
    _kubectl(lay, "apply", "-n", NAMESPACE, "-f", "-", stdin=_storage(media))
    names = [yaml.safe_load((cp.REPO / "examples" / f).read_text())["metadata"]["name"] for f in EXAMPLES]
    # A rerun starts the jobs afresh. Their old pods go too: no garbage collector runs locally to follow
    # the ownerReferences, and a leftover "hello-1" would stand in the new job's way.
    _kubectl(lay, "delete", "tj", "-n", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=60s", *names)
    _kubectl(
        lay,
        "delete",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        f"{api.LABEL_JOB} in ({','.join(names)})",
        "--ignore-not-found",
        "--wait=true",
        "--timeout=60s",
    )
    for example in EXAMPLES:
        stack.say(_kubectl(lay, "apply", "-n", NAMESPACE, "-f", str(cp.REPO / "examples" / example)).strip())

    seen: dict[str, tuple] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = _jobs(lay)
        for name in names:
            st = jobs.get(name, {})
            line = (
                st.get("phase", "Pending"),
                (st.get("progress") or {}).get("percent"),
                st.get("node"),
                st.get("reason"),
            )
            if seen.get(name) != line:
                seen[name] = line
                stack.say(
                    f"  {name:<12} {line[0]:<10} {line[1] if line[1] is not None else '-':>5}%  "
                    f"node={line[2] or '-'}  {line[3] or ''}"
                )
        if all(jobs.get(n, {}).get("phase") in TERMINAL for n in names):
            break
        time.sleep(1)

    stack.say(_kubectl(lay, "get", "tj", "-n", NAMESPACE, "-o", "wide"))
    for name, st in _jobs(lay).items():
        if st.get("result"):
            stack.say(f"{name}: result {st['result']}")
    for out in sorted((media / "out").iterdir()):
        stack.say(f"output {out} ({out.stat().st_size} bytes)")
    stack.say(
        f"try: source {stack.dev / 'env'}; kubectl get tj -n {NAMESPACE}; kubectl describe tj -n {NAMESPACE} hello"
    )
    return all(_jobs(lay).get(n, {}).get("phase") == "Completed" for n in names)
