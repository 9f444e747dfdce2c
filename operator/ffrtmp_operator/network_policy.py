"""The job pods' NetworkPolicy (pure builders): no ingress; egress to cluster DNS, the API server (the
runner reads its job and patches its status) and public addresses, plus the networks of the admin's
`--egress-allow` (chart jobPolicy.egress.allow). The ranges left out of "public" are those the runner's
egress check refuses (ffrtmp_api.egress), so the network and the runner draw the same line; host names in
the allow list cannot be written in a NetworkPolicy (list their networks too).

One policy per namespace with job pods, made by the operator before the first pod there (network_guard.py):
a namespace is covered because the operator runs jobs in it, not because an admin listed it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import ffrtmp_api as api
from ffrtmp_api.egress import EgressPolicy, blocked_networks

__all__ = ["NAME", "differs", "network_policy", "public_excepts"]

NAME = "ffrtmp-jobs"
DNS_NAMESPACE = "kube-system"
DNS_LABELS = {"k8s-app": "kube-dns"}
# The API server's usual ports, where its endpoints could not be read: any address on them.
API_PORTS = (443, 6443)


def public_excepts(version: int) -> list[str]:
    """The ranges cut out of 0.0.0.0/0 (4) or ::/0 (6): ffrtmp_api.egress's refused ranges, plus NAT64 and
    6to4 for IPv6 (the runner judges those by the IPv4 address they carry; a policy cannot, so all go)."""
    return list(_collapsed(version))


@cache
def _collapsed(version: int) -> tuple[str, ...]:
    # Computed once: collapsing the ranges was 4 % of the operator's CPU in a burst, done for every job pod.
    return tuple(str(n) for n in ipaddress.collapse_addresses(blocked_networks(version)))  # type: ignore[arg-type,type-var]


def _host_cidr(ip: str) -> str:
    return str(ipaddress.ip_network(ip))  # a /32 or /128


def _ports(port: int, protocols: Iterable[str]) -> list[dict[str, Any]]:
    return [{"protocol": p, "port": port} for p in protocols]


def network_policy(
    namespace: str, *, egress_allow: Iterable[str], api_server: Sequence[tuple[str, int]]
) -> dict[str, Any]:
    """The policy for `namespace`. `api_server`: the API server's (ip, port) endpoints; empty: any address
    on 443 and 6443. Raises ValueError for an allow entry EgressPolicy refuses (the flags were checked)."""
    egress: list[dict[str, Any]] = [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": DNS_NAMESPACE}},
                    "podSelector": {"matchLabels": dict(DNS_LABELS)},
                }
            ],
            "ports": _ports(53, ("UDP", "TCP")),
        }
    ]
    if api_server:
        # NetworkPolicy sees traffic to the kubernetes Service after DNAT: its real endpoints.
        egress += [
            {"to": [{"ipBlock": {"cidr": _host_cidr(ip)}}], "ports": _ports(port, ("TCP",))} for ip, port in api_server
        ]
    else:
        egress.append({"ports": [p for port in API_PORTS for p in _ports(port, ("TCP",))]})
    egress.append(
        {
            "to": [
                {"ipBlock": {"cidr": "0.0.0.0/0", "except": public_excepts(4)}},
                {"ipBlock": {"cidr": "::/0", "except": public_excepts(6)}},
            ]
        }
    )
    for network, port in EgressPolicy.parse(egress_allow).networks:
        rule: dict[str, Any] = {"to": [{"ipBlock": {"cidr": str(network)}}]}
        if port is not None:
            rule["ports"] = _ports(port, ("TCP", "UDP"))
        egress.append(rule)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": NAME,
            "namespace": namespace,
            # No ownerReferences: it serves every job of the namespace, and nothing outside it may own it.
            "labels": {api.LABEL_MANAGED_BY: api.MANAGED_BY, "app.kubernetes.io/component": "job"},
        },
        "spec": {
            "podSelector": {"matchLabels": {api.LABEL_MANAGED_BY: api.MANAGED_BY}},
            "policyTypes": ["Ingress", "Egress"],
            "egress": egress,
        },
    }


def _pruned(value: Any) -> Any:
    """`value` without None, empty lists and empty maps, at any depth (the API drops them, e.g. ingress: [])."""
    if isinstance(value, dict):
        kept = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Whether the stored policy (raw API JSON) strays from `desired`: another spec, or our labels gone."""
    labels = current.get("metadata", {}).get("labels") or {}
    wanted = desired["metadata"]["labels"]
    return _pruned(current.get("spec")) != _pruned(desired["spec"]) or any(
        labels.get(k) != v for k, v in wanted.items()
    )
