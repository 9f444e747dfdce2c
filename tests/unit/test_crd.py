"""The generated TranscodeJob CRD: committed file in sync with api.py, and structurally valid."""

from pathlib import Path
from typing import Any

import ffrtmp_api as api
import yaml
from ffrtmp_operator import crd

ROOT = Path(__file__).resolve().parents[2]


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_given_the_models_when_rendered_then_committed_crd_matches():
    committed = (ROOT / "crds" / crd.CRD_FILE).read_text()
    assert committed == crd.render(), "crds/ drifted from api.py: run `make crds`"


def test_given_the_schema_then_it_is_structural():
    schema = crd.openapi_schema()
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        if path.endswith(".properties") or path.endswith(".x-kubernetes-validations"):
            continue
        if "properties" in node or "items" in node or "enum" in node:
            assert "type" in node, f"{path} has no type"


def test_given_every_spec_field_then_it_has_a_description():
    spec = crd.openapi_schema()["properties"]["spec"]["properties"]
    missing = [name for name, sub in spec.items() if not sub.get("description")]
    assert missing == []


def test_given_the_crd_then_users_get_short_name_columns_and_status_subresource():
    version = crd.crd()["spec"]["versions"][0]
    assert crd.crd()["spec"]["names"]["shortNames"] == ["tj"]
    assert version["subresources"] == {"status": {}}
    names = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert names == ["Phase", "Progress", "Queue", "Priority", "Node", "Age"]


def test_given_the_examples_then_each_job_validates_against_the_models():
    jobs = [
        doc
        for f in sorted((ROOT / "examples").glob("*.yaml"))
        for doc in yaml.safe_load_all(f.read_text())
        if doc and doc.get("kind") == api.KIND
    ]
    assert len(jobs) >= 4
    for doc in jobs:
        api.TranscodeJob.model_validate(doc)


def _rules(node: dict) -> list[str]:
    return [r["rule"] for r in node.get("x-kubernetes-validations", [])]


def test_given_the_schema_then_paths_must_be_in_normal_form_and_system_classes_are_refused():
    spec = crd.openapi_schema()["properties"]["spec"]["properties"]
    volume = spec["volumes"]["items"]["properties"]
    assert volume["mountPath"]["pattern"].startswith("^(/[^/")  # one or more "/segment": no //, no trailing /
    assert any("[.][.]?" in r for r in _rules(volume["mountPath"]))
    assert any("'/etc'" in r for r in _rules(volume["mountPath"]))
    assert any("[.][.]?" in r for r in _rules(volume["hostPath"]["properties"]["path"]))
    for url in (spec["input"]["properties"]["url"], spec["output"]["properties"]["url"]):
        assert "\\p{Cc}" in url["pattern"] and "\\p{Z}" in url["pattern"]
        assert any("file:///" in r and "%" in r for r in _rules(url))
    assert any("system-" in r for r in _rules(spec["priorityClassName"]))
