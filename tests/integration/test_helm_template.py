"""The Helm chart lints, renders over several value sets, refuses bad values through values.schema.json,
and carries the CRDs and dashboards byte-identical to crds/ and grafana/. Uses the real helm binary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from ffrtmp_stack import find_bin_dir

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "ffrtmp"
NS = "ffrtmp-system"


@pytest.fixture(scope="module")
def helm() -> str:
    return str(find_bin_dir() / "helm")


def _template(helm: str, *args: str) -> list[dict]:
    done = subprocess.run(
        [helm, "template", "rel", str(CHART), "-n", NS, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _kinds(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


def _one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def test_given_the_chart_when_linted_strictly_then_it_passes(helm):
    done = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_given_defaults_then_operator_agent_rbac_services_priorityclasses_render(helm):
    docs = _template(helm)
    kinds = _kinds(docs)
    deploy = _one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["ffrtmp-operator"]
    assert "--peering=ffrtmp" in container["args"] and f"--system-namespace={NS}" in container["args"]
    assert "--metrics-host=0.0.0.0" in container["args"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert deploy["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    ds = _one(docs, "DaemonSet")
    assert ds["spec"]["template"]["spec"]["nodeSelector"] == {"ffrtmp.io/worker": "true"}
    assert "runtimeClassName" not in ds["spec"]["template"]["spec"]
    assert {p["metadata"]["name"]: p["value"] for p in kinds["PriorityClass"]} == {
        "ffrtmp-high": 1000,
        "ffrtmp-medium": 500,
        "ffrtmp-low": 100,
    }
    assert all(p["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for p in kinds["PriorityClass"])
    assert _one(docs, "ClusterKopfPeering")["metadata"]["name"] == "ffrtmp"
    ports = {s["metadata"]["name"]: s["spec"]["ports"][0]["port"] for s in kinds["Service"]}
    assert ports == {"rel-ffrtmp-operator-metrics": 9090, "rel-ffrtmp-agent-metrics": 9091}
    assert "ServiceMonitor" not in kinds, "no ServiceMonitor without the monitoring.coreos.com API"
    assert _one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_given_every_rbac_rule_then_it_has_a_comment_saying_why():
    for name in ("operator-rbac.yaml", "agent-rbac.yaml"):
        lines = (CHART / "templates" / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("- apiGroups:"):
                above = lines[i - 1].strip()
                assert above.startswith("#"), f"{name}:{i + 1}: rule without a comment"


def test_given_rbac_then_no_wildcards_and_no_secret_access(helm):
    for role in (d for d in _template(helm) if d["kind"] in ("ClusterRole", "Role")):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], role["metadata"]["name"]
            # One Secret only, by name, read only: the operator's pod-signing key (templates/pod-signing-key.yaml).
            if "secrets" in rule["resources"]:
                assert rule == {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "resourceNames": ["ffrtmp-pod-signing-key"],
                    "verbs": ["get"],
                }, role["metadata"]["name"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_given_the_monitoring_api_then_servicemonitors_render_for_operator_and_agent(helm):
    docs = _template(helm, "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor")
    monitors = _kinds(docs)["ServiceMonitor"]
    assert sorted(m["metadata"]["name"] for m in monitors) == ["rel-ffrtmp-agent", "rel-ffrtmp-operator"]
    services = {tuple(sorted(s["metadata"]["labels"].items())) for s in _kinds(docs)["Service"]}
    for monitor in monitors:
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        assert any(set(wanted) <= set(labels) for labels in services), "ServiceMonitor selects no Service"


def test_given_gpu_single_replica_no_peering_and_no_agent_then_the_chart_follows(helm):
    gpu = _one(_template(helm, "--set", "agent.gpu.enabled=true"), "DaemonSet")["spec"]["template"]["spec"]
    assert gpu["runtimeClassName"] == "nvidia"
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"} in gpu["containers"][0]["env"]
    docs = _template(
        helm,
        "--set",
        "operator.replicas=1",
        "--set",
        "operator.peering.enabled=false",
        "--set",
        "agent.enabled=false",
        "--set",
        "priorityClasses.create=false",
    )
    kinds = _kinds(docs)
    assert "--no-peering" in _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not {"DaemonSet", "PodDisruptionBudget", "ClusterKopfPeering", "PriorityClass"} & set(kinds)
    assert all("kopf.dev" not in r["apiGroups"] for r in _one(docs, "ClusterRole")["rules"])


def test_given_custom_values_then_ports_slots_and_classes_follow(helm):
    docs = _template(
        helm,
        "--set",
        "metrics.operatorPort=19090",
        "--set",
        "agent.slots=5",
        "--set",
        "image.tag=1.2.3",
        "--set",
        "operator.runnerImage=example.com/runner:9",
    )
    deploy = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-port=19090" in deploy["args"] and deploy["image"] == "ghcr.io/ffrtmp/ffrtmp:1.2.3"
    assert "--runner-image=example.com/runner:9" in deploy["args"]
    agent = _one(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    assert "--slots=5" in agent["args"]


@pytest.mark.parametrize(
    "bad",
    [
        "agent.slots=0",
        "operator.replicas=0",
        "metrics.operatorPort=70000",
        "operator.nope=1",
        "image.pullPolicy=Sometimes",
    ],
)
def test_given_bad_values_then_the_schema_refuses_them(helm, bad):
    done = subprocess.run(
        [helm, "template", "rel", str(CHART), "--set", bad], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "values don't meet the specifications" in done.stderr, done.stderr


def test_given_dashboards_then_each_is_a_configmap_labelled_for_the_grafana_sidecar(helm):
    dashboards = sorted((REPO / "grafana").glob("*.json"))
    assert dashboards, "grafana/*.json missing"
    maps = [d for d in _template(helm) if d["kind"] == "ConfigMap"]
    assert len(maps) == len(dashboards)
    by_file = {next(iter(m["data"])): m for m in maps}
    for path in dashboards:
        cm = by_file[path.name]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["data"][path.name] == path.read_text().rstrip("\n")
    assert not [d for d in _template(helm, "--set", "grafana.dashboards.enabled=false") if d["kind"] == "ConfigMap"]


def test_given_the_chart_copies_then_they_match_crds_and_grafana_byte_for_byte():
    for source_dir, copy_dir in ((REPO / "crds", CHART / "crds"), (REPO / "grafana", CHART / "dashboards")):
        sources = {p.name: p.read_bytes() for p in source_dir.iterdir() if p.suffix in (".yaml", ".json")}
        copies = {p.name: p.read_bytes() for p in copy_dir.iterdir() if p.suffix in (".yaml", ".json")}
        assert copies == sources, f"{copy_dir} differs from {source_dir}: run `make crds` / `make dashboards`"
