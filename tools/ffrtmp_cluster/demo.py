"""`make cluster-demo`: on `make cluster`, the example jobs run as pods through the kubelet in a namespace
that enforces Pod Security "restricted", writing to a PersistentVolume (a hostPath PV on <dev>/media, which
every node of this machine sees, owned by the runner's uid 65532), followed the way a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import yaml

from .cluster import REPO, Cluster, UpConfig

NAMESPACE = "demo"
EXAMPLES = ("hello.yaml", "file-to-hevc.yaml")
INPUT = "in/talk.mp4"  # what examples/file-to-hevc.yaml reads
TERMINAL = {"Completed", "Failed", "Canceled"}
RUNNER_UID = 65532


def record_input(path: Path) -> None:
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


def storage(media: Path, *, pv_name: str = "ffrtmp-media") -> str:
    """examples/storage.yaml with the PV pointing at `media`."""
    docs = list(yaml.safe_load_all((REPO / "examples" / "storage.yaml").read_text()))
    for doc in docs:
        if doc["kind"] == "PersistentVolume":
            doc["metadata"]["name"] = pv_name
            doc["spec"]["hostPath"]["path"] = str(media)
        else:
            doc["spec"]["volumeName"] = pv_name
    return yaml.safe_dump_all(docs)


def restricted_namespace(name: str) -> str:
    labels = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "audit", "warn")}
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})


def prepare_media(media: Path) -> None:
    for sub in ("in", "out"):
        (media / sub).mkdir(parents=True, exist_ok=True)
    record_input(media / INPUT)
    for path in [media, *media.rglob("*")]:
        os.chown(path, RUNNER_UID, RUNNER_UID)  # the job pods run as this uid and write here


def run(cluster: Cluster, cfg: UpConfig, *, timeout_s: float = 300) -> bool:
    cluster.up(cfg)
    kubeconfig = cluster.dev / "kubeconfig"
    bin_dir = Path(json.loads((cluster.dir / "state.json").read_text())["bin_dir"])

    def kubectl(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    media = cluster.dev / "media"
    prepare_media(media)
    kubectl("apply", "-f", "-", stdin=restricted_namespace(NAMESPACE))
    kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=storage(media))
    names = [yaml.safe_load((REPO / "examples" / f).read_text())["metadata"]["name"] for f in EXAMPLES]
    # a rerun starts the jobs afresh; the garbage collector removes their old pods
    kubectl("delete", "tj", "-n", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=60s", *names)
    for example in EXAMPLES:
        cluster.say(kubectl("apply", "-n", NAMESPACE, "-f", str(REPO / "examples" / example)).strip())
    seen: dict[str, tuple] = {}
    deadline = time.monotonic() + timeout_s
    jobs: dict[str, dict] = {}
    while time.monotonic() < deadline:
        listed = json.loads(kubectl("get", "tj", "-n", NAMESPACE, "-o", "json"))["items"]
        jobs = {j["metadata"]["name"]: j.get("status") or {} for j in listed}
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
                cluster.say(
                    f"  {name:<12} {line[0]:<10} {line[1] if line[1] is not None else '-':>5}%  "
                    f"node={line[2] or '-'}  {line[3] or ''}"
                )
        if all(jobs.get(n, {}).get("phase") in TERMINAL for n in names):
            break
        time.sleep(1)
    cluster.say(kubectl("get", "tj,pods", "-n", NAMESPACE, "-o", "wide"))
    for out in sorted((media / "out").iterdir()):
        cluster.say(f"output {out} ({out.stat().st_size} bytes, uid {out.stat().st_uid})")
    cluster.say(
        f"try: source {cluster.dev / 'env'}; kubectl get tj,pods -n {NAMESPACE} -o wide; "
        f"kubectl logs -n {NAMESPACE} hello-1"
    )
    return all(jobs.get(n, {}).get("phase") == "Completed" for n in names)
