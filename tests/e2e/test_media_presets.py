"""TranscodePresets end to end on the local stack: a job takes a preset's settings, a job overriding one of
its fields gets that field and the rest from the preset, a job naming a missing preset waits (Scheduled
condition PresetNotFound and an Event) and starts when the preset appears in the chart's (system) namespace,
and a preset edited after a job resolved it does not change that job."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import pytest
from kubernetes.client.rest import ApiException

from tests.support import wait_until
from tests.support.jobpods import traversable
from tests.support.stack import RUN_LABEL, Stack

SMALL = {
    "description": "tiny test preset",
    "video": {"codec": "h264", "preset": "ultrafast", "crf": 30, "width": 320, "height": 180},
    "audio": {"codec": "aac", "bitrate": "64k"},
    "output": {"container": "mkv"},
}


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A hostPath folder the job pods' user (65532) may write to."""
    (tmp_path / "media").mkdir()
    (tmp_path / "media").chmod(0o777)
    return traversable(tmp_path / "media")


def _preset(stack: Stack, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": api.API_VERSION, "kind": api.PRESET_KIND, "metadata": {"name": name}, "spec": spec}
    return stack.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PRESET_PLURAL, body)


def _job(stack: Stack, media: Path, name: str, preset: str, **overrides: Any) -> None:
    spec = {
        "input": {"testSource": {"width": 640, "height": 360, "fps": 10, "durationSeconds": 2, "audio": True}},
        "output": {"url": f"file:///media/out/{name}.mkv"},
        "volumes": [{"name": "media", "mountPath": "/media", "hostPath": {"path": str(media)}}],
        "preset": preset,
        **overrides,
    }
    body = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": name},
        "spec": {**spec, "nodeSelector": spec.get("nodeSelector", {RUN_LABEL: stack.run_id})},
    }
    stack.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, stack.ns, api.PLURAL, body)


def _streams(path: Path) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
            "-show_entries",
            "format=format_name",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    data = json.loads(done.stdout)
    return {s["codec_type"]: s for s in data["streams"]} | {"format": data["format"]}


def _events(stack: Stack, job: str) -> list[Any]:
    return stack.core.list_namespaced_event(stack.ns, field_selector=f"involvedObject.name={job}").items


def test_given_presets_then_jobs_take_them_override_fields_wait_for_missing_ones_and_keep_what_they_resolved(
    stack: Stack, media: Path
) -> None:
    small, later = f"small-{stack.run_id}", f"later-{stack.run_id}"
    system = api.DEFAULT_SYSTEM_NAMESPACE
    _preset(stack, stack.ns, small, SMALL)
    stack.agent(slots=2)
    stack.operator().wait_active()
    stack.wait_agents()
    try:
        _job(stack, media, "uses", small)
        _job(stack, media, "overrides", small, video={"width": 160, "height": 90}, audio={"codec": "opus"})
        _job(stack, media, "waits", later)
        _job(stack, media, "pinned", small, nodeSelector={RUN_LABEL: "nowhere"})  # resolved, not placed yet

        # A job with no settings of its own: all of them from the preset, recorded in its status.
        status = stack.wait_phase("uses", ("Completed", "Failed"), timeout=120)
        assert status["phase"] == "Completed", (status.get("reason"), status.get("message"))
        streams = _streams(media / "out" / "uses.mkv")
        assert (streams["video"]["codec_name"], streams["video"]["width"], streams["video"]["height"]) == (
            "h264",
            320,
            180,
        )
        assert streams["audio"]["codec_name"] == "aac" and "matroska" in streams["format"]["format_name"]
        resolved = status["resolvedPreset"]
        assert (resolved["name"], resolved["namespace"], resolved["generation"]) == (small, stack.ns, 1)
        assert resolved["spec"]["video"]["crf"] == 30
        assert any(e.reason == "PresetResolved" for e in _events(stack, "uses"))

        # The job's own fields win, field by field; the rest still comes from the preset.
        status = stack.wait_phase("overrides", ("Completed", "Failed"), timeout=120)
        assert status["phase"] == "Completed", (status.get("reason"), status.get("message"))
        streams = _streams(media / "out" / "overrides.mkv")
        assert (streams["video"]["width"], streams["video"]["height"], streams["audio"]["codec_name"]) == (
            160,
            90,
            "opus",
        )

        # A missing preset: the job waits, saying why, and starts when the preset appears (chart's namespace).
        def waiting() -> dict[str, Any] | None:
            current = stack.status("waits")
            scheduled = next((c for c in current.get("conditions") or [] if c["type"] == "Scheduled"), {})
            return current if scheduled.get("reason") == "PresetNotFound" else None

        current = wait_until(waiting, timeout=60, what="waits to say PresetNotFound")
        assert current["phase"] == "Queued" and later in next(
            c["message"] for c in current["conditions"] if c["type"] == "Scheduled"
        )
        assert any(e.reason == "PresetNotFound" and e.type == "Warning" for e in _events(stack, "waits"))
        assert not list((media / "out").glob("waits*"))
        _preset(
            stack,
            system,
            later,
            {
                "video": {"codec": "h264", "preset": "ultrafast", "width": 192, "height": 108},
                "output": {"container": "mkv"},
            },
        )
        status = stack.wait_phase("waits", ("Completed", "Failed"), timeout=120)
        assert status["phase"] == "Completed" and status["resolvedPreset"]["namespace"] == system, status
        assert _streams(media / "out" / "waits.mkv")["video"]["width"] == 192

        # An edit after a job resolved its preset does not change that job.
        assert wait_until(lambda: stack.status("pinned").get("resolvedPreset"), timeout=30, what="pinned resolved")
        stack.custom.patch_namespaced_custom_object(
            api.GROUP,
            api.VERSION,
            stack.ns,
            api.PRESET_PLURAL,
            small,
            {"spec": {"video": {"width": 240, "height": 136}}},
        )
        stack.custom.patch_namespaced_custom_object(
            api.GROUP,
            api.VERSION,
            stack.ns,
            api.PLURAL,
            "pinned",
            {"spec": {"nodeSelector": {RUN_LABEL: stack.run_id}}},
        )
        status = stack.wait_phase("pinned", ("Completed", "Failed"), timeout=120)
        assert status["phase"] == "Completed" and status["resolvedPreset"]["generation"] == 1, status
        assert _streams(media / "out" / "pinned.mkv")["video"]["width"] == 320  # the settings it resolved
    finally:
        try:
            stack.custom.delete_namespaced_custom_object(api.GROUP, api.VERSION, system, api.PRESET_PLURAL, later)
        except ApiException as exc:
            if exc.status != 404:
                raise
