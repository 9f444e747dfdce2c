"""The agent's writes on its Node: the ffrtmp labels (proven encoders, GPU, worker) and the hardware
annotation. Writes are kept low: the Node is patched only when our labels or annotation differ, and the
fields that change on every probe do not count as a difference.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import ffrtmp_api as api
from kubernetes import client

from . import probe

log = logging.getLogger(__name__)


def metadata_patch(node_obj: dict[str, Any], *, labels: dict[str, str], hardware: dict[str, Any]) -> dict[str, Any]:
    """The Node patch that brings our labels and hardware annotation up to date; {} when they are.

    `probedAt` and the load figures change on every probe, so they are ignored when deciding whether
    the annotation changed: a restart on the same hardware writes nothing.
    """
    meta = node_obj.get("metadata") or {}
    patch: dict[str, Any] = {}
    label_changes = probe.labels_patch(meta.get("labels") or {}, labels)
    if label_changes:
        patch["labels"] = label_changes
    current = (meta.get("annotations") or {}).get(api.ANNOTATION_HARDWARE)
    if current is None or _stable(_loads(current)) != _stable(hardware):
        patch["annotations"] = {api.ANNOTATION_HARDWARE: json.dumps(hardware, separators=(",", ":"))}
    return {"metadata": patch} if patch else {}


def _loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _stable(hardware: dict[str, Any]) -> dict[str, Any]:
    """The hardware document without the fields that change from one probe to the next."""
    doc = {k: v for k, v in hardware.items() if k != "probedAt"}
    doc["cpu"] = {k: v for k, v in (doc.get("cpu") or {}).items() if not k.startswith("load")}
    doc["memory"] = {k: v for k, v in (doc.get("memory") or {}).items() if k != "availableBytes"}
    enc = dict(doc.get("encoders") or {})
    enc["trials"] = [{k: v for k, v in t.items() if k not in ("seconds", "error")} for t in enc.get("trials", [])]
    doc["encoders"] = enc
    doc["gpus"] = [
        {k: v for k, v in g.items() if not k.endswith("Percent") and k != "encoderSessions"}
        for g in doc.get("gpus") or []
    ]
    return doc


def sync_node_metadata(core: client.CoreV1Api, node: str, *, labels: dict[str, str], hardware: dict[str, Any]) -> bool:
    """Patch the Node's labels/annotation when they differ; True when a write happened."""
    current = core.api_client.sanitize_for_serialization(core.read_node(node))
    patch = metadata_patch(current, labels=labels, hardware=hardware)
    if not patch:
        return False
    core.patch_node(node, patch, _content_type=api.MERGE_PATCH)
    log.info("node %s: labels/annotation updated (%s)", node, ", ".join(sorted(patch["metadata"])))
    return True
