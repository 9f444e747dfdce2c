"""The cluster's network, all of it on this machine inside 10.240.0.0/12 (checked not to overlap any address
or route the machine has):

- 10.250.0.0/24 on the bridge `ffrtmp0` (no ports; it only holds addresses): .1 the control plane
  (kube-apiserver), .10+i node i (its kubelet's address and port 10250);
- 10.244.i.0/24: node i's pods, on the CNI bridge `ffrtmp-cni<i>` (host-local IPAM, gateway .1);
  a pod gets one route, 10.240.0.0/12 via its gateway, and no default route;
- 10.241.0.0/16: Service ClusterIPs (kube-proxy, iptables mode).
Forwarding is switched on while the cluster runs (pods on different nodes, pod to Service to pod), and the
chain FFRTMP-GUARD drops anything forwarded between our range and any other address, so no packet of the
cluster's is routed off the machine. No NAT leaves the range either: the CNI bridge does not masquerade.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import subprocess
from pathlib import Path

RANGE = ipaddress.ip_network("10.240.0.0/12")
HOST_BRIDGE = "ffrtmp0"
CONTROL_IP = "10.250.0.1"
HOST_NET = "10.250.0.0/24"
SERVICE_CIDR = "10.241.0.0/16"
KUBERNETES_SERVICE_IP = "10.241.0.1"
POD_CIDR = "10.244.0.0/16"
GUARD = "FFRTMP-GUARD"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def node_ip(i: int) -> str:
    return f"10.250.0.{10 + i}"


def pod_subnet(i: int) -> str:
    return f"10.244.{i}.0/24"


def cni_bridge(i: int) -> str:
    return f"ffrtmp-cni{i}"


def _ours(ifname: str) -> bool:
    return ifname == HOST_BRIDGE or ifname.startswith("ffrtmp-cni")


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done


def _links() -> list[dict]:
    return json.loads(_run("ip", "-j", "addr", "show").stdout or "[]")


def check_no_overlap() -> None:
    """Fail when an address or route of the machine (other than ours) lies in 10.240.0.0/12."""
    for link in _links():
        if _ours(link.get("ifname", "")):
            continue
        for addr in link.get("addr_info", []):
            if addr.get("family") != "inet":
                continue
            net = ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False)
            if net.overlaps(RANGE):
                raise RuntimeError(
                    f"{link['ifname']} has {addr['local']}/{addr['prefixlen']}, inside the cluster's "
                    f"range {RANGE}: pick another machine or change tools/ffrtmp_cluster/net.py"
                )
    for route in json.loads(_run("ip", "-j", "route", "show").stdout or "[]"):
        dst = route.get("dst", "")
        if dst in ("", "default") or _ours(route.get("dev", "")):
            continue
        if ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False).overlaps(RANGE):
            raise RuntimeError(f"the route to {dst} overlaps the cluster's range {RANGE}")


def setup(nodes: int, state: dict) -> None:
    """The host bridge with the control-plane and node addresses, forwarding, the guard chain. Records the
    previous ip_forward value in state (restored by teardown)."""
    check_no_overlap()
    names = {link["ifname"]: link for link in _links()}
    if HOST_BRIDGE not in names:
        _run("ip", "link", "add", HOST_BRIDGE, "type", "bridge")
    have = {a["local"] for a in names.get(HOST_BRIDGE, {}).get("addr_info", []) if a.get("family") == "inet"}
    for ip in [CONTROL_IP, *[node_ip(i) for i in range(1, nodes + 1)]]:
        if ip not in have:
            _run("ip", "addr", "add", f"{ip}/24", "dev", HOST_BRIDGE)
    _run("ip", "link", "set", HOST_BRIDGE, "up")
    state.setdefault("ip_forward", IP_FORWARD.read_text().strip())
    IP_FORWARD.write_text("1\n")
    if _run("iptables", "-n", "-L", GUARD, check=False).returncode != 0:
        _run("iptables", "-N", GUARD)
    _run("iptables", "-F", GUARD)
    r = str(RANGE)
    for rule in (
        ["-s", r, "!", "-d", r, "-j", "DROP"],
        ["-d", r, "!", "-s", r, "-j", "DROP"],
        ["-s", r, "-d", r, "-j", "ACCEPT"],
    ):
        _run("iptables", "-A", GUARD, *rule)
    if _run("iptables", "-C", "FORWARD", "-j", GUARD, check=False).returncode != 0:
        _run("iptables", "-I", "FORWARD", "1", "-j", GUARD)


def cni_config(i: int, ipam_dir: Path) -> dict:
    """Node i's CNI network: a bridge, host-local addresses, one route for our range, no masquerade."""
    subnet = pod_subnet(i)
    gateway = str(next(ipaddress.ip_network(subnet).hosts()))
    return {
        "cniVersion": "1.0.0",
        "name": "ffrtmp",
        "plugins": [
            {
                "type": "bridge",
                "bridge": cni_bridge(i),
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": subnet, "gateway": gateway}]],
                    "routes": [{"dst": str(RANGE)}],
                },
            }
        ],
    }


def netns_in_range() -> list[str]:
    """Names in /run/netns whose interfaces hold an address of our pod range (left by a crashed node)."""
    out = []
    for ns in sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []:
        done = _run("ip", "-n", ns, "-j", "addr", "show", check=False)
        try:
            links = json.loads(done.stdout or "[]")
        except json.JSONDecodeError:
            continue
        for link in links:
            for addr in link.get("addr_info", []):
                if addr.get("family") == "inet" and ipaddress.ip_address(addr["local"]) in ipaddress.ip_network(
                    POD_CIDR
                ):
                    out.append(ns)
    return sorted(set(out))


def delete_netns(name: str) -> None:
    _run("ip", "netns", "delete", name, check=False)


def teardown(state: dict) -> list[str]:
    """Remove the bridges, the guard chain and restore ip_forward; what was removed, for the log."""
    removed = []
    for ns in netns_in_range():
        delete_netns(ns)
        removed.append(f"netns {ns}")
    for link in _links():
        name = link.get("ifname", "")
        if _ours(name):
            _run("ip", "link", "delete", name, check=False)
            removed.append(f"link {name}")
    while _run("iptables", "-D", "FORWARD", "-j", GUARD, check=False).returncode == 0:
        removed.append(f"FORWARD -j {GUARD}")
    if _run("iptables", "-n", "-L", GUARD, check=False).returncode == 0:
        _run("iptables", "-F", GUARD, check=False)
        _run("iptables", "-X", GUARD, check=False)
        removed.append(f"chain {GUARD}")
    removed += _sweep_kube_chains()
    if "ip_forward" in state:
        IP_FORWARD.write_text(state["ip_forward"] + "\n")
    return removed


def _sweep_kube_chains() -> list[str]:
    """KUBE-* chains the kubelet and kube-proxy leave after `kube-proxy --cleanup` (KUBE-FIREWALL,
    KUBE-IPTABLES-HINT, ...), in IPv4 and IPv6. Only our cluster runs Kubernetes on this machine."""
    removed = []
    for cmd in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            rules = _run(cmd, "-t", table, "-S", check=False).stdout.splitlines()
            chains = [r.split()[1] for r in rules if r.startswith("-N KUBE-")]
            for rule in rules:
                parts = shlex.split(rule)
                if (
                    parts[:1] == ["-A"]
                    and "-j" in parts
                    and parts[parts.index("-j") + 1].startswith("KUBE-")
                    and not parts[1].startswith("KUBE-")
                ):
                    _run(cmd, "-t", table, "-D", *parts[1:], check=False)
            for chain in chains:
                _run(cmd, "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(cmd, "-t", table, "-X", chain, check=False)
            if chains:
                removed.append(f"{cmd} {table}: {len(chains)} KUBE-* chains")
    return removed
