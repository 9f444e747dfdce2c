"""Pod volumes as local directories for the standalone agent: hostPath is that path, emptyDir a dir in the
pod's work dir, a PVC its bound PV's hostPath/local path (found through pvc.spec.volumeName: no PV
controller binds claims on the local stack), a projected service-account volume files the agent writes.

`volume_sources` and `bind_mounts` are pure; `resolve_claim` and `write_projected` do the I/O.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from kubernetes import client
from kubernetes.client.exceptions import ApiException


class VolumeError(Exception):
    """A volume the standalone agent cannot provide; the pod fails with this message."""


class BindMount(NamedTuple):
    source: str  # host path
    target: str  # the container's mountPath
    read_only: bool


def volume_sources(pod: dict[str, Any], *, pod_dir: str, claim_paths: dict[str, str]) -> dict[str, str]:
    """Host directory for each of the pod's volumes, by volume name."""
    sources: dict[str, str] = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        name = vol["name"]
        if vol.get("hostPath"):
            sources[name] = vol["hostPath"]["path"]
        elif "emptyDir" in vol or vol.get("projected"):
            sources[name] = os.path.join(pod_dir, "volumes", name)
        elif vol.get("persistentVolumeClaim"):
            claim = vol["persistentVolumeClaim"]["claimName"]
            if claim not in claim_paths:
                raise VolumeError(f"volume {name}: claim {claim} was not resolved")
            sources[name] = claim_paths[claim]
        else:
            kinds = sorted(k for k in vol if k != "name")
            raise VolumeError(f"volume {name}: type {'/'.join(kinds)} is not supported by the standalone agent")
    return sources


def bind_mounts(pod: dict[str, Any], *, sources: dict[str, str]) -> list[BindMount]:
    """The first container's volumeMounts as bind mounts, parents before children."""
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
    mounts: list[BindMount] = []
    for vm in container.get("volumeMounts") or []:
        name = vm["name"]
        if name not in sources:
            raise VolumeError(f"volumeMount {vm.get('mountPath')}: no volume named {name}")
        source = sources[name]
        if vm.get("subPath"):
            sub = os.path.normpath(vm["subPath"])
            if sub.startswith("..") or os.path.isabs(sub):
                raise VolumeError(f"volumeMount {vm['mountPath']}: subPath must stay inside the volume")
            source = os.path.join(source, sub)
        claim_ro = bool((volumes.get(name) or {}).get("persistentVolumeClaim", {}).get("readOnly"))
        is_projected = bool((volumes.get(name) or {}).get("projected"))
        read_only = bool(vm.get("readOnly")) or claim_ro or is_projected
        mounts.append(BindMount(source, os.path.normpath(vm["mountPath"]), read_only))
    return sorted(mounts, key=lambda m: m.target.count("/"))


def claim_names(pod: dict[str, Any]) -> list[str]:
    vols = (pod.get("spec") or {}).get("volumes") or []
    return [v["persistentVolumeClaim"]["claimName"] for v in vols if v.get("persistentVolumeClaim")]


def pv_path(pv: dict[str, Any]) -> str | None:
    spec = pv.get("spec") or {}
    return (spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path")


# ---------------------------------------------------------------------------------------------- I/O


def resolve_claim(core: client.CoreV1Api, namespace: str, claim: str) -> str:
    """The host path behind PVC `claim`: pvc.spec.volumeName -> PV -> hostPath.path / local.path."""
    try:
        pvc = core.api_client.sanitize_for_serialization(core.read_namespaced_persistent_volume_claim(claim, namespace))
    except ApiException as exc:
        raise VolumeError(f"persistentVolumeClaim {claim}: {exc.reason or exc.status}") from exc
    pv_name = (pvc.get("spec") or {}).get("volumeName")
    if not pv_name:
        raise VolumeError(f"persistentVolumeClaim {claim} is not bound (set spec.volumeName to a hostPath/local PV)")
    try:
        pv = core.api_client.sanitize_for_serialization(core.read_persistent_volume(pv_name))
    except ApiException as exc:
        raise VolumeError(f"persistentVolume {pv_name} of claim {claim}: {exc.reason or exc.status}") from exc
    path = pv_path(pv)
    if not path:
        raise VolumeError(f"persistentVolume {pv_name}: only hostPath and local volumes can be used locally")
    return path


def prepare_sources(pod: dict[str, Any], sources: dict[str, str]) -> None:
    """Create emptyDirs and DirectoryOrCreate/untyped hostPaths; check hostPath type Directory exists."""
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        path = sources.get(vol["name"])
        if path is None:
            continue
        host = vol.get("hostPath")
        if host and host.get("type") == "Directory" and not os.path.isdir(path):
            raise VolumeError(f"volume {vol['name']}: hostPath {path} is not a directory")
        if host and host.get("type") not in (None, "", "Directory", "DirectoryOrCreate"):
            if not os.path.exists(path):
                raise VolumeError(f"volume {vol['name']}: hostPath {path} does not exist")
            continue
        os.makedirs(path, exist_ok=True)


def write_projected(
    pod: dict[str, Any], sources: dict[str, str], *, ca_pem: str | None, core: client.CoreV1Api
) -> list[Path]:
    """Fill projected volumes (the kube-api-access-* volume the ServiceAccount admission adds); returns the
    paths their serviceAccountToken goes to (tokens.py writes and renews it, private to the pod's user)."""
    namespace = pod["metadata"]["namespace"]
    token_paths: list[Path] = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        projected = vol.get("projected")
        if not projected:
            continue
        root = Path(sources[vol["name"]])
        root.mkdir(parents=True, exist_ok=True)
        for src in projected.get("sources") or []:
            if "serviceAccountToken" in src:
                token_paths.append(root / src["serviceAccountToken"].get("path", "token"))
            elif "configMap" in src:
                _write_config_map(core, namespace, src["configMap"], root, ca_pem=ca_pem)
            elif "downwardAPI" in src:
                for item in src["downwardAPI"].get("items") or []:
                    field = (item.get("fieldRef") or {}).get("fieldPath", "")
                    value = {"metadata.namespace": namespace, "metadata.name": pod["metadata"]["name"]}.get(field)
                    if value is not None:
                        _write(root / item["path"], value)
    return token_paths


def own_empty_dirs(pod: dict[str, Any], sources: dict[str, str], *, uid: int, gid: int, fs_group: int | None) -> None:
    """emptyDir and projected folders belong to the pod's user (and fsGroup, setgid, as a kubelet does)."""
    group = fs_group if fs_group is not None else gid
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if "emptyDir" in vol or vol.get("projected"):
            path = sources[vol["name"]]
            os.chown(path, uid, group, follow_symlinks=False)
            os.chmod(path, 0o2770 if fs_group is not None else 0o700)  # the agent's folder, before the pod runs
            for child in Path(path).rglob("*"):
                os.chown(child, uid, group, follow_symlinks=False)


def _write_config_map(
    core: client.CoreV1Api, namespace: str, ref: dict[str, Any], root: Path, *, ca_pem: str | None
) -> None:
    try:
        data = core.read_namespaced_config_map(ref["name"], namespace).data or {}
    except ApiException as exc:
        if exc.status != 404:
            raise
        # No controller publishes kube-root-ca.crt on the local stack: use the agent's own CA.
        data = {"ca.crt": ca_pem} if ref["name"] == "kube-root-ca.crt" and ca_pem else {}
        if not data and not ref.get("optional"):
            raise VolumeError(f"configMap {ref['name']} not found") from exc
    items = ref.get("items") or [{"key": k, "path": k} for k in data]
    for item in items:
        if item["key"] in data:
            _write(root / item["path"], data[item["key"]])


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)
    tmp.replace(path)
