"""`make image`: the ffrtmp image built here, with no registry and no daemon, in three cached layers:

1. base: Debian bookworm from the machine's own apt sources by mmdebstrap (essential + ffmpeg + python3),
   the non-root user 65532, docs and the GPU-only GL/LLVM libraries left out (see EXCLUDES);
2. deps: a venv in /opt/ffrtmp with the package's dependencies (wheels fetched by pip on the host, installed
   inside the image's own Python through a chroot on an overlay mount);
3. app: the ffrtmp wheel itself.
Each layer is cached under ~/.cache/ffrtmp/image/ by what goes into it; the archive is rewritten only when
a layer or the config changed. The Containerfile at the root describes the same image for `docker build`.
"""
# Over 400 lines on purpose: the three cached layers and the archive writer share one layer cache.

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import oci

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FFRTMP_CACHE", Path.home() / ".cache" / "ffrtmp")) / "image"
SUITE = "bookworm"
PYTHON_VERSION = "3.11"  # bookworm's python3
PACKAGES = ("ffmpeg", "python3")
RUNNER_UID = 65532  # operator/ffrtmp_operator/pods.py runs job pods as this user
# Not unpacked at all. The GL drivers (dri/*_dri.so, 13 names of one 26 MB file) and libLLVM/libz3 behind
# them come in through ffmpeg's SDL/OpenGL dependencies, but no encode path loads them: `ldd` of ffmpeg,
# ffprobe and python3 does not name them, NVENC comes from the driver the NVIDIA runtime mounts, and VAAPI
# drivers (*_drv_video.so) are a separate package. 165 MB of 596 MB.
EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/lib/x86_64-linux-gnu/dri/*_dri.so",
    "/usr/lib/x86_64-linux-gnu/libLLVM-*",
    "/usr/lib/x86_64-linux-gnu/libz3.so*",
)
BASE_HOOKS = (
    f'echo "nonroot:x:{RUNNER_UID}:{RUNNER_UID}:nonroot:/home/nonroot:/usr/sbin/nologin" >> "$1/etc/passwd"',
    f'echo "nonroot:x:{RUNNER_UID}:" >> "$1/etc/group"',
    f'mkdir -p "$1/home/nonroot" && chown {RUNNER_UID}:{RUNNER_UID} "$1/home/nonroot"',
    'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/ldconfig/aux-cache "$1"/var/log/*',
)
SOURCE_DATE_EPOCH = 1704067200  # 2024-01-01: fixed file times, so identical content gives identical layers
VENV = "/opt/ffrtmp"
# Installed by dependencies, imported by nothing of ours: kubernetes' asyncio twin of its client (68 MB with
# its bytecode; kopf talks to the API through aiohttp itself).
PRUNE = ("kubernetes/aio",)
NAME = "localhost/ffrtmp"
BUILDER_VERSION = "1"  # bump to invalidate every cached layer


@dataclass(frozen=True)
class Built:
    archive: Path
    ref: str
    image: oci.Image
    cached: bool
    seconds: float


def _log(msg: str) -> None:
    print(f"image: {msg}", file=sys.stderr, flush=True)


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps([BUILDER_VERSION, *parts], sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run(argv: list[str], **kw) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, **kw, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(argv[:4])}... failed ({done.returncode}):\n{tail}")


def version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def requirements() -> list[str]:
    """What the image's venv needs: the base dependencies plus the operator and agent extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in ("operator", "agent"):
        reqs += [r for r in project.get("optional-dependencies", {}).get(extra, []) if not r.startswith("ffrtmp")]
    return sorted(set(reqs))


def _apt_sources() -> str:
    texts = []
    for path in sorted([Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]):
        if path.is_file():
            texts.append(path.read_text())
    return "\n".join(texts)


def _cached_layer(name: str, key: str) -> oci.Layer | None:
    meta = CACHE / f"{name}-{key}.json"
    if not meta.exists():
        return None
    layer = oci.Layer.from_json(json.loads(meta.read_text()))
    return layer if layer.path.exists() else None


def _remember(name: str, key: str, layer: oci.Layer) -> oci.Layer:
    (CACHE / f"{name}-{key}.json").write_text(json.dumps(layer.to_json()))
    return layer


def build_base() -> tuple[oci.Layer, Path]:
    """The base layer and its unpacked tree (the lower dir of the overlay the next layers build on)."""
    key = _key("base", SUITE, PACKAGES, EXCLUDES, BASE_HOOKS, SOURCE_DATE_EPOCH, _apt_sources())
    rootfs = CACHE / f"base-{key}"
    layer = _cached_layer("base", key)
    if layer and (rootfs / "usr/bin/ffmpeg").exists():
        return layer, rootfs
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap is missing: run `make setup` (or apt-get install mmdebstrap)")
    t0 = time.monotonic()
    _log(f"base layer: mmdebstrap {SUITE} with {', '.join(PACKAGES)} (about a minute)...")
    tar = CACHE / f"base-{key}.tar"
    argv = [
        "mmdebstrap",
        "--variant=essential",
        "--quiet",
        f"--include={','.join(PACKAGES)}",
        *[f"--dpkgopt=path-exclude={p}" for p in EXCLUDES],
        *[f"--customize-hook={h}" for h in BASE_HOOKS],
        SUITE,
        str(tar),
    ]
    _run(argv, env={**os.environ, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH)})
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    _run(["tar", "-xf", str(tar), "-C", str(rootfs), "--numeric-owner"])
    layer = oci.write_layer_from_tar(tar, CACHE / f"base-{key}.tar.gz")
    tar.unlink()
    _log(f"base layer {layer.digest[:19]} ({layer.size / 1e6:.0f} MB gzipped) in {time.monotonic() - t0:.0f} s")
    return _remember("base", key, layer), rootfs


@contextlib.contextmanager
def _overlay(lowers: list[Path], upper: Path) -> Iterator[Path]:
    """An overlay of `lowers` (first = top) with writes going to `upper`, /proc mounted for the chroot."""
    work, merged = upper.parent / f"{upper.name}.work", upper.parent / f"{upper.name}.merged"
    for d in (upper, work, merged):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    opts = f"lowerdir={':'.join(map(str, lowers))},upperdir={upper},workdir={work}"
    _run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)])
    try:
        _run(["mount", "-t", "proc", "proc", str(merged / "proc")])
        try:
            yield merged
        finally:
            _run(["umount", str(merged / "proc")])
    finally:
        _run(["umount", str(merged)])
        shutil.rmtree(work, ignore_errors=True)
        merged.rmdir()


def _wheels(reqs: list[str], key: str) -> Path:
    """Wheels for the image's Python (cp311, manylinux x86_64) plus pip's own, fetched once per key."""
    out = CACHE / f"wheels-{key}"
    if (out / ".done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _log(f"fetching wheels for {', '.join(reqs)}...")
    target = [
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--abi",
        f"cp{PYTHON_VERSION.replace('.', '')}",
        "--abi",
        "abi3",
        "--abi",
        "none",
        *[
            a
            for p in (
                "manylinux_2_36_x86_64",
                "manylinux_2_28_x86_64",
                "manylinux_2_17_x86_64",
                "manylinux2014_x86_64",
                "manylinux1_x86_64",
                "linux_x86_64",
                "any",
            )
            for a in ("--platform", p)
        ],
    ]
    _run([sys.executable, "-m", "pip", "download", "-q", "-d", str(out), *target, "pip", *reqs])
    (out / ".done").touch()
    return out


def _pip(root: Path, wheel_dir: str, *args: str) -> None:
    """Run pip from its wheel (the image has no pip of its own) inside the chroot, offline."""
    pip_whl = next(Path(root, wheel_dir.lstrip("/")).glob("pip-*.whl")).name
    _run(
        [
            shutil.which("chroot") or "/usr/sbin/chroot",
            str(root),
            f"{VENV}/bin/python",
            f"{wheel_dir}/{pip_whl}/pip",
            "install",
            "-q",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--find-links",
            wheel_dir,
            *args,
        ],
        env={"PATH": "/usr/bin:/bin", "HOME": "/root", "LC_ALL": "C.UTF-8"},
    )


def build_deps(base: Path) -> tuple[oci.Layer, Path]:
    reqs = requirements()
    key = _key("deps", reqs, PYTHON_VERSION, PRUNE, base.name)
    upper = CACHE / f"deps-{key}"
    layer = _cached_layer("deps", key)
    if layer and (upper / VENV.lstrip("/")).exists():
        return layer, upper
    t0 = time.monotonic()
    wheels = _wheels(reqs, _key("wheels", reqs, PYTHON_VERSION))
    with _overlay([base], upper) as root:
        _run(["chroot", str(root), "/usr/bin/python3", "-m", "venv", "--without-pip", VENV])
        shutil.copytree(wheels, root / "tmp/wheels")
        _pip(root, "/tmp/wheels", *reqs)
        shutil.rmtree(root / "tmp/wheels")
        for rel in PRUNE:
            shutil.rmtree(
                root / VENV.lstrip("/") / f"lib/python{PYTHON_VERSION}/site-packages" / rel, ignore_errors=True
            )
    layer = oci.write_layer_from_dir(upper, CACHE / f"deps-{key}.tar.gz", mtime=SOURCE_DATE_EPOCH)
    _log(f"deps layer {layer.digest[:19]} ({layer.size / 1e6:.0f} MB gzipped) in {time.monotonic() - t0:.0f} s")
    return _remember("deps", key, layer), upper


def _source_files() -> list[str]:
    """The files a checkout holds (tracked, or new and not ignored): what a user's `docker build` sees."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"], capture_output=True, check=True
        ).stdout
        return [f for f in out.decode().split("\0") if f and (REPO / f).is_file()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        return [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file() and not {".git", ".dev", "dist"} & set(p.relative_to(REPO).parts)
        ]


def build_wheel(out_dir: Path) -> Path:
    """The ffrtmp wheel, built from a copy of the checkout (the build leaves nothing in the tree)."""
    with tempfile.TemporaryDirectory(prefix="ffrtmp-src-") as tmp:
        for rel in _source_files():
            if rel.startswith(("tests/", "bench/", "grafana/", "helm/", "examples/", "tools/")):
                continue
            dest = Path(tmp, rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest)
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out_dir), tmp])
    return next(out_dir.glob("ffrtmp-*.whl"))


def _wheel_key(wheel: Path) -> str:
    """The wheel's RECORD lists every file with its hash: the same code gives the same key."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        return hashlib.sha256(z.read(record)).hexdigest()[:16]


def _source_key() -> str:
    """A hash of what goes into the wheel (pyproject.toml and the package folders it names): with it a
    rerun without changes skips building the wheel (5 s of pip's isolated build environment)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    roots = tuple(project.get("tool", {}).get("setuptools", {}).get("package-dir", {}).values()) or ("",)
    sha = hashlib.sha256()
    for rel in sorted(_source_files()):
        if rel == "pyproject.toml" or any(rel.startswith(r.rstrip("/") + "/") for r in roots if r):
            sha.update(rel.encode() + b"\0" + (REPO / rel).read_bytes() + b"\0")
    return sha.hexdigest()[:16]


def build_app(base: Path, deps: Path) -> oci.Layer:
    src_key = _key("app-src", _source_key(), deps.name)
    layer = _cached_layer("app-src", src_key)
    if layer:
        return layer
    return _remember("app-src", src_key, _build_app(base, deps))


def _build_app(base: Path, deps: Path) -> oci.Layer:
    with tempfile.TemporaryDirectory(prefix="ffrtmp-wheel-") as tmp:
        wheel = build_wheel(Path(tmp))
        key = _key("app", _wheel_key(wheel), deps.name)
        layer = _cached_layer("app", key)
        if layer:
            return layer
        t0 = time.monotonic()
        upper = CACHE / f"app-{key}"
        with _overlay([deps, base], upper) as root:
            (root / "tmp/wheels").mkdir()
            shutil.copy2(wheel, root / "tmp/wheels" / wheel.name)
            shutil.copy2(
                next((deps.parent / f"wheels-{_key('wheels', requirements(), PYTHON_VERSION)}").glob("pip-*.whl")),
                root / "tmp/wheels",
            )
            _pip(root, "/tmp/wheels", "--no-deps", f"/tmp/wheels/{wheel.name}")
            shutil.rmtree(root / "tmp/wheels")
        layer = oci.write_layer_from_dir(upper, CACHE / f"app-{key}.tar.gz", mtime=SOURCE_DATE_EPOCH)
        shutil.rmtree(upper)
        _log(f"app layer {layer.digest[:19]} in {time.monotonic() - t0:.1f} s")
        return _remember("app", key, layer)


def _unpacked_size(layers: list[oci.Layer]) -> int:
    import gzip

    total = 0
    for layer in layers:
        with gzip.open(layer.path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                total += len(chunk)
    return total


def build(dist: Path = REPO / "dist") -> Built:
    """Build (or reuse) dist/ffrtmp-<version>.tar."""
    if os.geteuid() != 0:
        raise RuntimeError("make image needs root (mmdebstrap, overlay mounts and chroot)")
    t0 = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log("another `make image` builds in this cache: waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(dist, t0)


def _build(dist: Path, t0: float) -> Built:
    ver = version()
    base_layer, base = build_base()
    deps_layer, deps = build_deps(base)
    app_layer = build_app(base, deps)
    layers = [base_layer, deps_layer, app_layer]
    ref = f"{NAME}:{ver}"
    labels = {
        "org.opencontainers.image.title": "ffrtmp",
        "org.opencontainers.image.description": tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
            "description"
        ],
        "org.opencontainers.image.version": ver,
        "org.opencontainers.image.source": "https://github.com/ffrtmp/ffrtmp",
        "org.opencontainers.image.base.name": f"debian:{SUITE} (mmdebstrap, essential + {' '.join(PACKAGES)})",
    }
    config = oci.image_config(
        layers,
        user=f"{RUNNER_UID}:{RUNNER_UID}",
        workdir="/",
        cmd=["ffrtmp-operator", "--help"],
        env={
            "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        labels=labels,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(SOURCE_DATE_EPOCH)),
    )
    archive = dist / f"ffrtmp-{ver}.tar"
    stamp = CACHE / f"archive-{_key(ref, [layer.digest for layer in layers], config)}.json"
    if archive.exists() and stamp.exists():
        saved = json.loads(stamp.read_text())
        if saved.get("size") == archive.stat().st_size and saved.get("path") == str(archive):
            image = oci.Image(
                tuple(saved["refs"]), saved["manifest_digest"], saved["config_digest"], saved["size"], saved["unpacked"]
            )
            return Built(archive, ref, image, True, time.monotonic() - t0)
    image = oci.write_archive(archive, refs=[ref], layers=layers, config=config, unpacked=_unpacked_size(layers))
    stamp.write_text(
        json.dumps(
            {
                "path": str(archive),
                "refs": list(image.refs),
                "manifest_digest": image.manifest_digest,
                "config_digest": image.config_digest,
                "size": image.size,
                "unpacked": image.unpacked,
            }
        )
    )
    return Built(archive, ref, image, False, time.monotonic() - t0)
