"""The pod sandbox ("pause") image for `make cluster` nodes: a static Go binary (pause/main.go) alone in one
layer, built here because the upstream image cannot be pulled. containerd names it as its sandbox_image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import oci
from .image import CACHE, SOURCE_DATE_EPOCH, _key

REF = "localhost/ffrtmp-pause:1"
SOURCE = Path(__file__).resolve().parent / "pause" / "main.go"


def build() -> Path:
    """The pause image archive (cached by the source's content)."""
    key = _key("pause", SOURCE.read_text())
    archive = CACHE / f"pause-{key}.tar"
    if archive.exists():
        return archive
    if shutil.which("go") is None:
        raise RuntimeError("go is missing: it builds the pod sandbox binary (see tools/binaries.sh)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ffrtmp-pause-") as tmp:
        root = Path(tmp, "root")
        root.mkdir()
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": ""}
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(root / "pause"), SOURCE.name],
            cwd=SOURCE.parent,
            env=env,
            check=True,
            capture_output=True,
        )
        layer = oci.write_layer_from_dir(root, Path(tmp, "layer.tar.gz"), mtime=SOURCE_DATE_EPOCH)
        config = oci.image_config(
            [layer],
            user="65535:65535",
            env={},
            cmd=["/pause"],
            workdir="/",
            labels={"org.opencontainers.image.title": "ffrtmp pause"},
            created="2024-01-01T00:00:00Z",
        )
        oci.write_archive(archive, refs=[REF], layers=[layer], config=config)
    return archive
