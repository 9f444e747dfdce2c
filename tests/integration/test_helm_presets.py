"""The chart's shared TranscodePresets (templates/presets.yaml): rendered into the release's namespace, each
valid against the preset models, off with presets.create=false; and the operator may follow presets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import ffrtmp_api as api
import pytest
import yaml
from ffrtmp_stack import find_bin_dir

CHART = Path(__file__).resolve().parents[2] / "helm" / "ffrtmp"


@pytest.fixture(scope="module")
def helm() -> str:
    return str(find_bin_dir() / "helm")


def _template(helm: str, *args: str) -> list[dict]:
    done = subprocess.run(
        [helm, "template", "rel", str(CHART), "-n", "media-ns", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_given_defaults_then_the_chart_ships_valid_presets_in_its_namespace(helm):
    presets = [d for d in _template(helm) if d["kind"] == api.PRESET_KIND]
    assert sorted(p["metadata"]["name"] for p in presets) == ["hls-ladder", "web-1080p", "web-720p"]
    for preset in presets:
        assert preset["metadata"]["namespace"] == "media-ns"
        api.TranscodePreset.model_validate(preset)
    ladder = next(p for p in presets if p["metadata"]["name"] == "hls-ladder")["spec"]
    assert ladder["output"]["container"] == "hls" and len(ladder["renditions"]) == 4


def test_given_presets_create_false_then_none_is_rendered_but_the_operator_may_still_follow_them(helm):
    docs = _template(helm, "--set", "presets.create=false")
    assert not [d for d in docs if d["kind"] == api.PRESET_KIND]
    role = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-operator"))
    rules = [r for r in role["rules"] if "transcodepresets" in r.get("resources", [])]
    assert rules and {"list", "watch"} <= set(rules[0]["verbs"])
