"""The child TranscodeJobs of a split job, one builder per child kind (Clustercode's split_job, slice_job,
merge_job): pure, the parent's effective spec in, a manifest out. Every child is an ordinary job -- queue,
priority, placement rules, volumes, retries and timeout are the parent's -- owned by the parent and labelled
with its uid and the child's role, under a deterministic name (a second create is a harmless 409).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping
from typing import Any, NamedTuple

import ffrtmp_api as api
from ffrtmp_api import paths
from ffrtmp_api import split as splitting

LABEL_PARENT_UID = "ffrtmp.io/split-parent-uid"
LABEL_ROLE = "ffrtmp.io/split-role"
MAX_NAME = 63  # a job's name is a label value on its pods
# What a child keeps of the parent's spec; the rest (split, preset, live, canceled) is not its own. A ladder's
# children keep its renditions: each slice encodes them all, the split and stitch lay out their HLS folders.
_INHERITED = (
    "renditions",
    "queue",
    "priority",
    "priorityClassName",
    "input",
    "output",
    "video",
    "audio",
    "hardware",
    "volumes",
    "resources",
    "nodeSelector",
    "paused",
    "maxRetries",
    "timeoutSeconds",
)


class Parent(NamedTuple):
    namespace: str
    name: str
    uid: str
    spec: Mapping[str, Any]
    """The parent's effective spec (its preset merged): what the children run with."""


def child_name(parent: str, suffix: str) -> str:
    """ "<parent>-<suffix>", kept within 63 characters by a hash of the parent's name where needed."""
    name = f"{parent}-{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(parent.encode()).hexdigest()[:8]
    tail = f"-{digest}-{suffix}"
    return parent[: MAX_NAME - len(tail)].rstrip("-.") + tail


def work_folder(parent: Parent) -> str:
    """The parent's work folder on its volume (a path), beside its output."""
    url = parent.spec["output"]["url"].removesuffix("/")  # a ladder's folder
    return splitting.work_folder(paths.file_url_path(url), parent.name)


def _manifest(parent: Parent, suffix: str, role: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {
            "name": child_name(parent.name, suffix),
            "namespace": parent.namespace,
            "labels": {LABEL_PARENT_UID: parent.uid, LABEL_ROLE: role, api.LABEL_MANAGED_BY: api.MANAGED_BY},
            "ownerReferences": [
                {
                    "apiVersion": api.API_VERSION,
                    "kind": api.KIND,
                    "name": parent.name,
                    "uid": parent.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def _inherited(parent: Parent) -> dict[str, Any]:
    return {k: parent.spec[k] for k in _INHERITED if k in parent.spec}


def split_child(parent: Parent, *, segment_seconds: int) -> dict[str, Any]:
    """Cuts the input into source segments (stream copy) and encodes the audio, once. Needs no encoder."""
    spec = _inherited(parent) | {
        "video": {"codec": "copy"},
        "part": {"parent": parent.name, "role": "split", "segmentSeconds": segment_seconds},
    }
    return _manifest(parent, "split", "split", spec)


def slice_child(parent: Parent, *, index: int, seconds: float, start: float = 0.0) -> dict[str, Any]:
    """Encodes one source segment into the work folder, video only, with the parent's video settings. A
    ladder's slice writes every rendition as HLS into a folder, its timestamps offset by `start` so that the
    slices' segments follow one another as one encode's would."""
    work = work_folder(parent)
    source = {"url": "file://" + posixpath.join(work, splitting.source_name(index))}
    part = {"parent": parent.name, "role": "slice", "index": index, "seconds": round(seconds, 6)}
    if parent.spec.get("renditions"):
        url = "file://" + posixpath.join(work, splitting.encoded_folder(index)) + "/"
        output = {k: v for k, v in parent.spec["output"].items() if k == "segmentSeconds"}
        output |= {"url": url, "container": "hls"}
        part["start"] = round(start, 6)
    else:
        output = {"url": "file://" + posixpath.join(work, splitting.encoded_name(index)), "container": "mkv"}
    spec = _inherited(parent) | {"input": source, "output": output, "audio": {"codec": "none"}, "part": part}
    return _manifest(parent, f"s{index:05d}", "slice", spec)


def stitch_child(parent: Parent, *, segments: int, audio: bool, seconds: float) -> dict[str, Any]:
    """Joins the slices and the audio by stream copy into the parent's output; measures quality."""
    spec = _inherited(parent) | {
        "video": {"codec": "copy"},
        "part": {
            "parent": parent.name,
            "role": "stitch",
            "segments": segments,
            "audio": audio,
            "seconds": round(seconds, 6),
        },
    }
    if parent.spec.get("quality"):
        spec["quality"] = parent.spec["quality"]
    return _manifest(parent, "stitch", "stitch", spec)


def cleanup_child(parent: Parent) -> dict[str, Any]:
    """Removes the work folder of a parent that failed or was canceled. Never paused: it only tidies up."""
    spec = _inherited(parent) | {
        "video": {"codec": "copy"},
        "paused": False,
        "part": {"parent": parent.name, "role": "cleanup"},
    }
    return _manifest(parent, "cleanup", "cleanup", spec)
