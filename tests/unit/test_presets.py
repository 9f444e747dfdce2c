"""TranscodePresets (operator presets.py): the merge rule, the lookup order, which jobs still resolve, and
the job record built from the merged spec; plus the generated TranscodePreset CRD."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ffrtmp_api as api
import pytest
import yaml
from ffrtmp_operator import preset_crd, presets
from ffrtmp_operator.records import job_record
from ffrtmp_operator.scheduling import schedulable

ROOT = Path(__file__).resolve().parents[2]
WEB_720P = {
    "video": {"codec": "hevc", "preset": "medium", "bitrate": "3M", "width": 1280, "height": 720},
    "audio": {"codec": "opus", "bitrate": "96k"},
    "output": {"container": "mkv"},
}
LADDER = {
    "video": {"codec": "h264", "preset": "veryfast"},
    "output": {"container": "hls", "segmentSeconds": 4},
    "renditions": [
        {"name": "720p", "width": 1280, "height": 720, "bitrate": "3M"},
        {"name": "360p", "width": 640, "height": 360, "bitrate": "800k"},
    ],
}
JOB = {
    "input": {"url": "file:///media/in/a.mp4"},
    "output": {"url": "file:///media/out/a.mkv"},
    "volumes": [{"name": "media", "mountPath": "/media", "emptyDir": {}}],
    "preset": "web-720p",
}


@pytest.mark.parametrize(
    ("name", "preset", "job", "expected"),
    [
        (
            "given a job with no settings then it takes the preset's",
            WEB_720P,
            {},
            {"video": WEB_720P["video"], "audio": WEB_720P["audio"], "output": {"container": "mkv"}},
        ),
        (
            "given a job's field then it wins over the preset's, the rest is kept",
            WEB_720P,
            {"video": {"preset": "fast"}, "audio": {"bitrate": "128k"}},
            {"video": {**WEB_720P["video"], "preset": "fast"}, "audio": {"codec": "opus", "bitrate": "128k"}},
        ),
        (
            "given a job's crf then it replaces the preset's bitrate",
            WEB_720P,
            {"video": {"crf": 20}},
            {"video": {"codec": "hevc", "preset": "medium", "width": 1280, "height": 720, "crf": 20}},
        ),
        (
            "given a job's container then the preset's is not taken",
            WEB_720P,
            {"output": {"url": "file:///media/out/a.mp4", "container": "mp4"}},
            {"output": {"url": "file:///media/out/a.mp4", "container": "mp4"}},
        ),
        (
            "given ladder renditions then a job's rendition of the same name overrides fields, new names add",
            LADDER,
            {
                "renditions": [
                    {"name": "360p", "width": 640, "height": 360, "crf": 24},
                    {"name": "1080p", "width": 1920, "height": 1080, "bitrate": "6M"},
                ]
            },
            {
                "renditions": [
                    LADDER["renditions"][0],
                    {"name": "360p", "width": 640, "height": 360, "crf": 24},
                    {"name": "1080p", "width": 1920, "height": 1080, "bitrate": "6M"},
                ],
                "output": {"container": "hls", "segmentSeconds": 4},
            },
        ),
    ],
)
def test_merge(name: str, preset: dict[str, Any], job: dict[str, Any], expected: dict[str, Any]) -> None:
    own = {"output": {"url": "file:///media/out/a/"}, **job}
    merged = presets.merge(preset, own)
    for key, value in expected.items():
        if key == "output":
            assert {k: v for k, v in merged["output"].items() if k != "url"} == {
                k: v for k, v in value.items() if k != "url"
            }, name
            assert merged["output"]["url"] == own["output"]["url"], name  # never the URL
        else:
            assert merged[key] == value, name


def test_given_a_merge_then_neither_input_is_changed() -> None:
    preset, job = {"video": {"codec": "hevc"}}, {"video": {"crf": 20}, "output": {"url": "x"}}
    presets.merge(preset, job)
    assert preset == {"video": {"codec": "hevc"}} and job == {"video": {"crf": 20}, "output": {"url": "x"}}


def test_given_presets_in_both_namespaces_then_the_job_s_own_namespace_wins() -> None:
    own = presets.PresetRecord("team", "web-720p", 1, {"video": {"crf": 20}})
    shared = presets.PresetRecord("ffrtmp-system", "web-720p", 3, WEB_720P)
    found = {("team", "web-720p"): own, ("ffrtmp-system", "web-720p"): shared}
    assert presets.lookup("web-720p", namespace="team", system_namespace="ffrtmp-system", presets=found) is own
    assert presets.lookup("web-720p", namespace="other", system_namespace="ffrtmp-system", presets=found) is shared
    assert presets.lookup("nope", namespace="team", system_namespace="ffrtmp-system", presets=found) is None


def _job(*, status: dict[str, Any] | None = None, **spec: Any) -> Any:
    body = {
        "metadata": {"namespace": "team", "name": "a", "uid": "u", "resourceVersion": "1", "generation": 1},
        "spec": {**JOB, **spec},
        "status": status or {},
    }
    return job_record(body)


def test_given_a_job_with_an_unresolved_preset_then_it_is_not_schedulable_until_resolved() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    queued = _job(status={"phase": "Queued"})
    assert presets.needs_resolution(queued) and not schedulable(queued, now)
    copied = presets.resolution(presets.PresetRecord("ffrtmp-system", "web-720p", 2, WEB_720P))
    resolved = _job(status={"phase": "Queued", **copied})
    assert not presets.needs_resolution(resolved) and schedulable(resolved, now)
    assert resolved.resolved_preset == ("ffrtmp-system", "web-720p", 2)


def test_given_a_resolved_preset_then_the_record_schedules_and_plans_with_the_merged_spec() -> None:
    copied = presets.resolution(presets.PresetRecord("ffrtmp-system", "web-720p", 2, WEB_720P))
    record = _job(status={"phase": "Queued", **copied}, video={"preset": "fast"})
    assert record.codec == "hevc"  # the preset's codec: the scheduler looks for an HEVC encoder
    spec = api.TranscodeJobSpec.model_validate(record.spec())
    assert (spec.video.codec, spec.video.preset, spec.video.bitrate, spec.audio.codec) == ("hevc", "fast", "3M", "opus")
    assert b"resolvedPreset" not in record.status_json  # only its identity is kept in memory


def test_given_a_resolved_preset_that_makes_the_spec_invalid_then_the_job_is_broken_naming_it() -> None:
    copied = presets.resolution(presets.PresetRecord("ffrtmp-system", "hls-ladder", 1, LADDER))
    record = _job(status={"phase": "Queued", **copied}, preset="hls-ladder")  # output is a file, not a folder
    assert record.broken and "spec" in record.broken


def test_given_a_placed_job_then_its_preset_is_never_resolved_again() -> None:
    copied = presets.resolution(presets.PresetRecord("ffrtmp-system", "web-720p", 2, WEB_720P))
    running = _job(status={"phase": "Processing", **copied}, preset="web-1080p")  # renamed after placement
    assert not presets.needs_resolution(running)


def test_given_jobs_when_a_preset_appears_then_only_those_waiting_for_it_are_woken() -> None:
    waiting = _job(status={"phase": "Queued"})
    other = job_record(
        {
            "metadata": {"namespace": "team", "name": "b", "uid": "v", "generation": 1},
            "spec": {**JOB, "preset": "web-1080p"},
            "status": {"phase": "Queued"},
        }
    )
    jobs = [waiting, other]
    assert presets.waiting_on(jobs, ("ffrtmp-system", "web-720p"), system_namespace="ffrtmp-system") == [("team", "a")]
    assert presets.waiting_on(jobs, ("elsewhere", "web-720p"), system_namespace="ffrtmp-system") == []


# ------------------------------------------------------------------------------------------- CRD


def test_given_the_models_when_rendered_then_committed_preset_crd_matches() -> None:
    committed = (ROOT / "crds" / preset_crd.CRD_FILE).read_text()
    assert committed == preset_crd.render(), "crds/ drifted from ffrtmp_api/preset.py: run `make crds`"
    assert (ROOT / "helm" / "ffrtmp" / "crds" / preset_crd.CRD_FILE).read_text() == committed


def test_given_the_preset_crd_then_it_is_namespaced_with_short_name_tp_and_a_structural_schema() -> None:
    crd = preset_crd.crd()
    assert crd["spec"]["scope"] == "Namespaced" and crd["spec"]["names"]["shortNames"] == ["tp"]
    text = yaml.safe_dump(crd)
    assert "$ref" not in text and "anyOf" not in text and "title:" not in text


def test_given_the_chart_s_presets_then_each_validates_and_the_examples_too() -> None:
    docs = [d for f in [ROOT / "examples" / "preset.yaml"] for d in yaml.safe_load_all(f.read_text()) if d]
    for doc in docs:
        if doc["kind"] == api.PRESET_KIND:
            api.TranscodePreset.model_validate(doc)
