"""`ffrtmp submit` from flags: a TranscodeJob manifest from the parsed flags, the `--volume` forms, and the
checks that catch a mistake before anything is sent (a file path under no volume gets a hint naming
`--volume`). Pure: plain data in, a manifest or a UsageError out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import ffrtmp_api as api
from pydantic import ValidationError

from .errors import UsageError

VOLUME_FORMS = "NAME:MOUNTPATH:pvc=CLAIM, NAME:MOUNTPATH:hostPath=/DIR or NAME:MOUNTPATH:emptyDir"
_PVC_KINDS = {"pvc", "persistentvolumeclaim", "claim"}


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise UsageError(f"size {text!r} must look like 1280x720")
    return int(match.group(1)), int(match.group(2))


def parse_volume(text: str) -> dict[str, Any]:
    """`--volume NAME:MOUNTPATH:SOURCE`, SOURCE one of `pvc=CLAIM` (also `persistentVolumeClaim=CLAIM`),
    `hostPath=/DIR`, `emptyDir` (also `emptyDir=Memory`, a tmpfs). Source kinds ignore case."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"--volume {text!r} must be {VOLUME_FORMS}")
    name, mount, source = parts
    if not mount.startswith("/"):
        raise UsageError(f"--volume {text!r}: the mount path {mount!r} must be absolute (start with /)")
    volume: dict[str, Any] = {"name": name, "mountPath": mount}
    kind, equals, value = source.partition("=")
    kind = kind.lower()
    if kind in _PVC_KINDS and value:
        volume["persistentVolumeClaim"] = {"claimName": value}
    elif kind == "hostpath" and value.startswith("/"):
        volume["hostPath"] = {"path": value}
    elif kind == "emptydir" and (not equals or value in ("", "Memory")):
        volume["emptyDir"] = {"medium": "Memory"} if value == "Memory" else {}
    else:
        raise UsageError(f"--volume {text!r}: the source {source!r} must be pvc=CLAIM, hostPath=/DIR or emptyDir")
    return volume


def _volume_hint(flag: str, url: str, volumes: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a file:// URL would be refused (the API server's rule: it must lie under a volume's mountPath),
    with the --volume flag that fixes it; None when it is fine or not a file URL."""
    if not url.startswith("file://"):
        return None
    if any(url.startswith(f"file://{v['mountPath']}/") for v in volumes):
        return None
    path = url.removeprefix("file://")
    top = path.lstrip("/").split("/", 1)
    if len(top) == 2 and top[0]:
        name = re.sub(r"[^a-z0-9-]+", "-", top[0].lower()).strip("-") or "media"
        fix = f"add --volume {name}:/{top[0]}:SOURCE (SOURCE: pvc=CLAIM, emptyDir or hostPath=/DIR)"
    else:
        fix = f"put the file in a folder and mount it, e.g. --volume media:/media:pvc=CLAIM and {flag} file:///media{path}"
    mounted = ", ".join(v["mountPath"] for v in volumes) or "none"
    return f"{flag} {url} lies under no volume (mounted: {mounted}); {fix}"


def job_from_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    """A TranscodeJob manifest from `ffrtmp submit` flags (None = not given), checked by the api models
    and the volume rule so a mistake is reported before anything reaches the server."""
    if bool(flags.get("input")) == bool(flags.get("test_source")):
        raise UsageError("give exactly one of --input URL and --test-source PATTERN")
    if not flags.get("output"):
        raise UsageError("--output URL is required (or use -f FILE)")
    spec: dict[str, Any] = {"queue": flags.get("queue") or "default", "priority": flags.get("priority") or "medium"}
    if flags.get("input"):
        spec["input"] = {"url": flags["input"]}
    else:
        source: dict[str, Any] = {"pattern": flags["test_source"]}
        if flags.get("source_size"):
            source["width"], source["height"] = parse_size(flags["source_size"])
        if flags.get("source_fps") is not None:
            source["fps"] = flags["source_fps"]
        if flags.get("duration") is not None:
            source["durationSeconds"] = flags["duration"]
        spec["input"] = {"testSource": source}
    spec["output"] = {"url": flags["output"]}
    video: dict[str, Any] = {}
    for key in ("codec", "preset", "crf", "bitrate", "fps", "gop"):
        if flags.get(key) is not None:
            video[key] = flags[key]
    if flags.get("size"):
        video["width"], video["height"] = parse_size(flags["size"])
    if video:
        spec["video"] = video
    if flags.get("audio_codec"):
        spec["audio"] = {"codec": flags["audio_codec"]}
    if flags.get("accelerator"):
        spec["hardware"] = {"accelerator": flags["accelerator"]}
    volumes = [parse_volume(v) for v in flags.get("volume") or []]
    if volumes:
        spec["volumes"] = volumes
    for flag, url in (("--input", flags.get("input")), ("--output", flags["output"])):
        if url and (hint := _volume_hint(flag, url, volumes)):
            raise UsageError(hint)
    if flags.get("quality"):
        spec["quality"] = {"metrics": [m.strip() for m in flags["quality"].split(",") if m.strip()]}
    if flags.get("max_retries") is not None:
        spec["maxRetries"] = flags["max_retries"]
    if flags.get("timeout") is not None:
        spec["timeoutSeconds"] = flags["timeout"]
    if flags.get("live_duration") is not None:
        spec["live"] = {"durationSeconds": flags["live_duration"]}
    try:
        api.TranscodeJobSpec.model_validate(spec)
    except ValidationError as error:  # pydantic's message names the field
        first = str(error).splitlines()
        raise UsageError(f"invalid job: {' '.join(first[1:3]) if len(first) > 2 else error}") from None
    metadata: dict[str, Any] = {"name": flags["name"]} if flags.get("name") else {"generateName": "job-"}
    return {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": metadata, "spec": spec}
