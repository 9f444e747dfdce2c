"""Grafana dashboards: the committed JSON (and the chart's copy) is what grafana/generate.py produces, every
panel has a query, and every metric a query names is one the operator (or agent) code exports.
The e2e test (tests/e2e/test_prometheus_dashboards.py) then runs each query against a real Prometheus."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from ffrtmp_operator.metrics import OperatorMetrics
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "summary": ("", "_sum", "_count"),
}


def _generator():
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every target of every committed dashboard."""
    out = []
    for path in sorted(GRAFANA.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((path.name, panel["title"], target["expr"]))
    return out


def metric_names(expr: str) -> set[str]:
    """The ffrtmp metric names a PromQL expression selects (histogram/counter suffixes kept)."""
    return set(re.findall(r"\bffrtmp_[a-zA-Z0-9_]+", expr))


def exported_sample_names() -> set[str]:
    """Every sample name the exporters can produce (families with all their suffixes)."""
    names = _sample_names(OperatorMetrics(process_metrics=False).render())
    names.update(_agent_sample_names())
    return names


def _sample_names(text: bytes) -> set[str]:
    # By type, not from samples: a labelled histogram nobody observed yet has no samples but is exported.
    names: set[str] = set()
    for family in text_string_to_metric_families(text.decode()):
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def _agent_sample_names() -> set[str]:
    """The agent's node metrics, rendered from its real collector; the GPU families need NVML to render,
    so those (all declared through NodeCollector._gauge or CounterMetricFamily) are read from the source."""
    from ffrtmp_agent.node import metrics as agent_metrics
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(
        agent_metrics.NodeCollector("n", slots=2, trials={"libx264": True}, sampler=agent_metrics.Sampler())
    )
    names = _sample_names(generate_latest(registry))
    source = Path(agent_metrics.__file__).read_text()
    names.update(re.findall(r'_gauge\(\s*"(ffrtmp_[a-z0-9_]+)"', source))
    names.update(n + "_total" for n in re.findall(r'CounterMetricFamily\(\s*"(ffrtmp_[a-z0-9_]+)"', source))
    names.update(re.findall(r'GaugeMetricFamily\(\s*"(ffrtmp_[a-z0-9_]+)"', source))
    return names


def test_given_generate_py_then_committed_dashboards_and_chart_copies_match_it():
    rendered = _generator().render()
    for folder in (GRAFANA, REPO / "helm" / "ffrtmp" / "dashboards"):
        committed = {p.name: p.read_text() for p in folder.glob("*.json")}
        assert committed == rendered, f"{folder} is stale: run `make dashboards`"


def test_given_the_dashboards_then_the_four_views_exist_with_unique_uids():
    boards = {p.stem: json.loads(p.read_text()) for p in GRAFANA.glob("*.json")}
    assert set(boards) == {"scheduler", "nodes", "jobs", "quality-energy"}
    assert len({b["uid"] for b in boards.values()}) == 4
    for board in boards.values():
        assert board["panels"], board["title"]
        for panel in board["panels"]:
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize(("board", "title", "expr"), dashboard_queries())
def test_given_a_panel_query_then_every_metric_it_names_is_exported(board, title, expr):
    names = metric_names(expr)
    assert names, f"{board} / {title}: no ffrtmp metric in {expr!r}"
    missing = names - exported_sample_names()
    assert not missing, f"{board} / {title}: {sorted(missing)} not exported"


def test_given_a_wrong_metric_name_then_the_check_catches_it():
    assert metric_names("sum(rate(ffrtmp_jobs_typo_total[5m]))") - exported_sample_names() == {"ffrtmp_jobs_typo_total"}
