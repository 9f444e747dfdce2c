"""The job NetworkPolicy body (network_policy.py): what job pods may reach, as the API would store it."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

import ffrtmp_api as api
from ffrtmp_api.egress import address_literal, blocked_range
from ffrtmp_operator.network_policy import NAME, differs, network_policy, public_excepts


def _policy(**kwargs: Any) -> dict[str, Any]:
    return network_policy(
        "tenant-a", egress_allow=kwargs.get("allow", ()), api_server=kwargs.get("api_server", [("172.18.0.2", 6443)])
    )


def _cidr_rules(policy: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """cidr -> ports of each rule that names one ipBlock (the API server's and the allow list's)."""
    return {
        rule["to"][0]["ipBlock"]["cidr"]: rule.get("ports", [])
        for rule in policy["spec"]["egress"]
        if len(rule.get("to", [])) == 1 and "ipBlock" in rule["to"][0]
    }


def test_given_any_namespace_when_built_then_job_pods_take_no_connections_and_the_policy_is_ours() -> None:
    policy = _policy()
    meta, spec = policy["metadata"], policy["spec"]
    assert (meta["name"], meta["namespace"]) == (NAME, "tenant-a")
    assert meta["labels"][api.LABEL_MANAGED_BY] == api.MANAGED_BY and "ownerReferences" not in meta
    assert spec["podSelector"] == {"matchLabels": {api.LABEL_MANAGED_BY: api.MANAGED_BY}}
    assert spec["policyTypes"] == ["Ingress", "Egress"] and not spec.get("ingress")


def test_given_no_allow_list_when_built_then_egress_is_dns_the_api_server_and_public_addresses_only() -> None:
    egress = _policy()["spec"]["egress"]
    dns, api_server, public = egress
    assert dns["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert api_server == {"to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}], "ports": [{"protocol": "TCP", "port": 6443}]}
    v4, v6 = (p["ipBlock"] for p in public["to"])
    assert v4["cidr"] == "0.0.0.0/0" and {"10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8"} <= set(v4["except"])
    assert v6["cidr"] == "::/0" and {"fc00::/7", "64:ff9b::/96", "2002::/16"} <= set(v6["except"])


def test_given_addresses_the_runner_refuses_then_the_policy_leaves_each_out_of_public() -> None:
    refused = ["127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "192.168.1.1", "172.31.0.1", "::1"]
    refused += ["fd12::1", "fe80::1", "ff02::1", "64:ff9b::a00:1", "2002:a00:1::1", "224.0.0.1", "0.0.0.0"]
    for text in refused:
        address = address_literal(text)
        assert address is not None and blocked_range(address), text
        excepts = [ipaddress.ip_network(n) for n in public_excepts(address.version)]
        assert any(address in n for n in excepts), text
    assert not any(ipaddress.ip_address("8.8.8.8") in ipaddress.ip_network(n) for n in public_excepts(4))


def test_given_an_allow_list_when_built_then_its_networks_are_reachable_on_their_ports_and_host_names_are_left_out() -> (
    None
):
    rules = _cidr_rules(_policy(allow=["10.20.0.0/16", "192.168.5.7:1935", "[fd00::/8]:443", "media.corp:443"]))
    assert rules["10.20.0.0/16"] == []  # every port
    assert rules["192.168.5.7/32"] == [{"protocol": "TCP", "port": 1935}, {"protocol": "UDP", "port": 1935}]
    assert rules["fd00::/8"] == [{"protocol": "TCP", "port": 443}, {"protocol": "UDP", "port": 443}]
    assert set(rules) == {"172.18.0.2/32", "10.20.0.0/16", "192.168.5.7/32", "fd00::/8"}


def test_given_unknown_api_server_endpoints_when_built_then_any_address_on_443_and_6443_is_allowed() -> None:
    api_rule = _policy(api_server=[])["spec"]["egress"][1]
    assert api_rule == {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]}


def test_given_the_stored_policy_when_compared_then_only_a_changed_spec_or_lost_label_differs() -> None:
    desired = _policy(allow=["10.20.0.0/16"])
    stored = copy.deepcopy(desired)  # as the API answers: defaults filled in, empty lists dropped, labels added
    stored["metadata"] |= {"resourceVersion": "7", "uid": "u"}
    stored["metadata"]["labels"]["team"] = "a"
    assert not differs(stored, desired)

    widened = copy.deepcopy(stored)
    widened["spec"]["egress"].append({})  # allow all egress
    assert differs(widened, desired)
    unlabelled = copy.deepcopy(stored)
    del unlabelled["metadata"]["labels"][api.LABEL_MANAGED_BY]
    assert differs(unlabelled, desired)
    narrowed = copy.deepcopy(stored)
    narrowed["spec"]["podSelector"]["matchExpressions"] = [{"key": "x", "operator": "Exists"}]
    assert differs(narrowed, desired)
