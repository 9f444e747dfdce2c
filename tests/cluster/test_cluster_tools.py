"""The tools behind `make image` and `make cluster` on their own: the archive writer (one tar that is both an
OCI layout and a docker-archive, identical for identical input), the Containerfile and `make image`
describing the same image, and the one-line errors a user meets.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from ffrtmp_cluster import image, oci

from .kit import REPO, Kube


def _archive(tmp: Path, name: str) -> oci.Image:
    root = tmp / "root"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "bin" / "hello").write_text("#!/bin/sh\necho hi\n")
    if not (root / "bin" / "hi").exists():
        os.link(root / "bin" / "hello", root / "bin" / "hi")  # a hard link: stored once
    layer = oci.write_layer_from_dir(root, tmp / f"{name}.tar.gz", mtime=1704067200)
    config = oci.image_config(
        [layer],
        user="65532:65532",
        env={"PATH": "/bin"},
        cmd=["/bin/hello"],
        workdir="/",
        labels={"org.opencontainers.image.title": "t"},
        created="2024-01-01T00:00:00Z",
    )
    return oci.write_archive(tmp / f"{name}.tar", refs=["localhost/t:1"], layers=[layer], config=config)


def test_given_a_tree_when_archived_then_the_tar_is_an_oci_layout_and_a_docker_archive(tmp_path: Path) -> None:
    img = _archive(tmp_path, "a")
    with tarfile.open(tmp_path / "a.tar") as tar:
        names = set(tar.getnames())
        index = json.load(tar.extractfile("index.json"))
        docker = json.load(tar.extractfile("manifest.json"))
        blobs = {
            n.rsplit("/", 1)[1]: tar.extractfile(n).read()
            for n in names
            if n.startswith("blobs/sha256/") and tar.getmember(n).isfile()
        }
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    for digest, data in blobs.items():  # content addressed: every blob hashes to its name
        assert hashlib.sha256(data).hexdigest() == digest
    [entry] = index["manifests"]
    assert entry["digest"] == img.manifest_digest
    assert entry["annotations"]["io.containerd.image.name"] == "localhost/t:1"
    assert docker[0]["RepoTags"] == ["localhost/t:1"]
    assert docker[0]["Config"] == f"blobs/sha256/{img.config_digest.split(':')[1]}"
    config = json.loads(blobs[img.config_digest.split(":")[1]])
    assert config["config"]["User"] == "65532:65532"


def test_given_the_same_tree_twice_then_the_image_digest_is_the_same(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    assert _archive(tmp_path / "one", "x").manifest_digest == _archive(tmp_path / "two", "x").manifest_digest


def test_given_the_containerfile_then_it_describes_the_image_make_image_builds() -> None:
    text = (REPO / "Containerfile").read_text()
    assert re.search(r"^ARG BASE=debian:bookworm", text, re.MULTILINE)
    for exclude in image.EXCLUDES:
        assert f"path-exclude={exclude}" in text, exclude
    for package in image.PACKAGES:
        assert re.search(rf"--no-install-recommends [^\n]*\b{package}\b", text), package
    assert f"USER {image.RUNNER_UID}:{image.RUNNER_UID}" in text
    assert "'/src[operator,agent]'" in text  # image.requirements(): the base plus these extras
    for prune in image.PRUNE:
        assert f"site-packages/{prune}" in text
    assert "org.opencontainers.image.version" in text and "org.opencontainers.image.source" in text


def _cli(dev: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'tools'}:{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "ffrtmp_cluster", "--dev-dir", str(dev), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_given_no_image_archive_when_the_cluster_starts_then_one_line_says_to_build_it(tmp_path: Path) -> None:
    done = _cli(tmp_path / "dev", "up", "--archive", str(tmp_path / "missing.tar"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: image archive {tmp_path / 'missing.tar'} is missing: run `make image` first"
    ]


def test_given_a_running_cluster_when_another_dev_dir_starts_one_then_one_line_names_the_running_one(
    kube: Kube, tmp_path: Path
) -> None:
    if not kube.local:  # FFRTMP_TEST_KUBECONFIG names a cluster elsewhere: nothing of ours runs here
        assert kube.core.list_node().items
        return
    archive = next((REPO / "dist").glob("ffrtmp-*.tar"))
    done = _cli(tmp_path / "dev", "up", "--archive", str(archive))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: a cluster from ") and "one cluster per machine" in line
