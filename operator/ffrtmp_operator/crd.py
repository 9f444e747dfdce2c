"""Generates the TranscodeJob CustomResourceDefinition from the pydantic models in `api.py`.

Pydantic emits `$defs` references, `anyOf` with null for optional fields and titles; a CRD needs an
inlined structural schema, so the schema is rewritten here. `python -m ffrtmp_operator.crd --write`
regenerates `crds/`; a unit test fails when the committed file drifts from the models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import yaml

CRD_FILE = f"{api.PLURAL}.{api.GROUP}.yaml"
_DROP_KEYS = {"title", "$defs"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs, collapse Optional (anyOf with null), drop titles, recursively."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unsupported union in schema: {node['anyOf']}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", "absent") is None:
            rest.pop("default")
        # the outer node's description and validations win over the referenced model's docstring
        return _structural({**options[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "default" and value in ([], {}):
            continue  # empty-collection defaults only add noise to every stored object
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON Schema 2020-12 gives the bound; OpenAPI v3.0 (CRDs) wants the bound plus a flag
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = _structural(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "additionalProperties" in out and out["additionalProperties"] is False:
        del out["additionalProperties"]  # structural schemas forbid false; unknown fields are pruned anyway
    return out


def openapi_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the TranscodeJob CRD."""
    spec = api.TranscodeJobSpec.model_json_schema(ref_template="#/$defs/{model}")
    status = api.TranscodeJobStatus.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**spec.get("$defs", {}), **status.get("$defs", {})}
    spec_schema = _structural(spec, defs)
    spec_schema["description"] = "What to transcode, how, and where it may run."
    status_schema = _structural(status, defs)
    status_schema["description"] = "Observed state, written by the operator and the job's runner."
    return {
        "type": "object",
        "description": "A video transcode job run by ffrtmp.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": api.ROOT_VALIDATIONS,
    }


def crd() -> dict[str, Any]:
    columns = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Progress", "type": "number", "jsonPath": ".status.progress.percent"},
        {"name": "Queue", "type": "string", "jsonPath": ".spec.queue"},
        {"name": "Priority", "type": "string", "jsonPath": ".spec.priority"},
        {"name": "Node", "type": "string", "jsonPath": ".status.node"},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
        {"name": "Attempts", "type": "integer", "jsonPath": ".status.attempts", "priority": 1},
        # Why a queued job waits (NoFreeSlot, QueuePaused, FailedCreate, ...), as kube-scheduler's PodScheduled.
        {
            "name": "Scheduling",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Scheduled")].reason',
            "priority": 1,
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{api.PLURAL}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": api.SHORT_NAMES,
                "categories": ["all", "ffrtmp"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def render() -> str:
    header = "# Generated by `make crds` from operator/ffrtmp_operator/api.py. Do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", metavar="DIR", help="write the CRD into DIR instead of stdout")
    args = parser.parse_args(argv)
    from . import preset_crd, queue_crd  # build on this module

    files = ((CRD_FILE, render()), (queue_crd.CRD_FILE, queue_crd.render()), (preset_crd.CRD_FILE, preset_crd.render()))
    if args.write:
        for name, text in files:
            path = Path(args.write) / name
            path.write_text(text)
            print(path)
    else:
        sys.stdout.write("---\n".join(text for _, text in files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
