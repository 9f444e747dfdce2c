"""The generated TranscodeQueue CRD (cluster-scoped, short name tq): committed copies in sync with
ffrtmp_api.queue, structural, with the columns `kubectl get tq` shows; and the built-in queues."""

from pathlib import Path

import ffrtmp_api as api
from ffrtmp_operator import queue_crd

from tests.unit.test_crd import _walk

ROOT = Path(__file__).resolve().parents[2]


def test_given_the_models_when_rendered_then_both_committed_copies_match():
    for folder in (ROOT / "crds", ROOT / "helm" / "ffrtmp" / "crds"):
        assert (folder / queue_crd.CRD_FILE).read_text() == queue_crd.render(), f"{folder}: run `make crds`"


def test_given_the_schema_then_it_is_structural_and_every_spec_field_is_described():
    schema = queue_crd.openapi_schema()
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
    spec = schema["properties"]["spec"]["properties"]
    assert [n for n, sub in spec.items() if not sub.get("description")] == []


def test_given_the_crd_then_it_is_cluster_scoped_with_a_short_name_status_and_columns():
    crd = queue_crd.crd()
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["scope"] == "Cluster" and crd["spec"]["names"]["shortNames"] == ["tq"]
    assert version["subresources"] == {"status": {}}
    names = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert names == ["Order", "Paused", "Max", "Pending", "Admitted", "Running", "Age"]


def test_given_no_queue_objects_then_the_built_in_queues_keep_todays_order_and_preemption():
    live, default, batch = (api.BUILTIN_QUEUES[n] for n in ("live", "default", "batch"))
    assert live.order < default.order < batch.order
    assert live.preemption.reclaimFrom == ["batch"] and default.preemption.reclaimFrom == []
    assert not any(q.fairSharing.enabled or q.aging.enabled or q.paused or q.maxRunning for q in (live, default, batch))
