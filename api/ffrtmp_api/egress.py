"""Which network addresses a job may reach: every address is allowed except loopback, link-local (cloud
metadata), private, shared (CGNAT), multicast and the other special-purpose ranges of the IANA registries,
unless an admin allows a CIDR or a host name (chart value jobPolicy.egress.allow). Pure: the operator
checks the admin's list with it, the runner classifies each address it resolved before it connects.

An IPv6 address that carries an IPv4 address (::ffff:a.b.c.d, ::a.b.c.d, NAT64 64:ff9b::/96, 6to4
2002::/16) is judged by the IPv4 address; a host written as a number is read as inet_aton reads it
(2130706433, 0177.0.0.1, 0x7f.1, 127.1), so no spelling names an address the classifier did not see.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["EgressPolicy", "IPAddress", "address_literal", "blocked_networks", "blocked_range"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# (network, what it is). Sources: the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and
# updates). Documentation and benchmarking ranges are refused too: nothing public lives there, and a
# private network may use them internally.
_BLOCKED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), what)
    for net, what in (
        ("0.0.0.0/8", "this-network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignment (Teredo, ORCHID, ...)"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")


def blocked_networks(version: int) -> list[IPNetwork]:
    """The ranges the runner refuses, of IP `version`; for 6 also NAT64 and 6to4, which the runner judges by
    the IPv4 address they carry (a NetworkPolicy cannot, so it leaves them out whole)."""
    networks = [n for n, _ in _BLOCKED if n.version == version]
    return [*networks, _NAT64, _6TO4] if version == 6 else networks


_HOST_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def _inet_aton_part(text: str) -> int | None:
    """One dotted part as inet_aton reads it: 0x.. hex, 0.. octal, else decimal; None if not a number."""
    try:
        if text[:2].lower() == "0x":
            return int(text[2:] or "0", 16)
        if len(text) > 1 and text.startswith("0"):
            return int(text[1:], 8)
        return int(text, 10) if text.isdigit() else None
    except ValueError:
        return None


def address_literal(host: str) -> IPAddress | None:
    """The address `host` spells, or None when it is a name. Reads IPv6 with or without brackets (a zone
    "%eth0" is kept by ipaddress, so fe80::1%eth0 stays link-local) and IPv4 in every inet_aton spelling:
    1 to 4 parts, each decimal, octal (0177) or hex (0x7f), the last filling the remaining bytes
    (127.1 = 127.0.0.1, 2130706433 = 127.0.0.1); one trailing dot is ignored, as resolvers do."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    text = text.removesuffix(".")
    parts = text.split(".")
    if not text or len(parts) > 4 or not all(parts):
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):  # type: ignore[operator]
        return None
    number = 0
    for v in leading:
        number = number * 256 + v  # type: ignore[operator]
    number = number * 256 ** (4 - len(leading)) + last  # type: ignore[operator]
    return ipaddress.IPv4Address(number)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64 well-known prefix, 6to4), or None."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def blocked_range(address: IPAddress) -> str | None:
    """'<network> (<what>)' when `address` (or the IPv4 address it carries) is in a refused range."""
    inner = embedded_ipv4(address)
    if inner is not None:
        found = blocked_range(inner)
        return f"{found}, carried in {address}" if found else None
    for network, what in _BLOCKED:
        if address.version == network.version and address in network:
            return f"{network} ({what})"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """The admin's widening of what jobs may reach: networks (CIDRs, any range, private ones included) and
    host names (exact, or "*.example.com" for its subdomains) whose addresses are allowed whatever they are,
    each on every port or on one (":1935"; IPv6 in brackets: "[fd00::/8]:443")."""

    networks: tuple[tuple[IPNetwork, int | None], ...] = ()
    hosts: tuple[tuple[str, int | None], ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> EgressPolicy:
        """From chart/flag entries: "10.1.0.0/16", "fd00::/8", "192.0.2.7" (a /32), "127.0.0.1:1935",
        "[::1]:8080", "media.corp", "*.corp:443". Raises ValueError naming the first entry that is neither."""
        networks: list[tuple[IPNetwork, int | None]] = []
        hosts: list[tuple[str, int | None]] = []
        for raw in entries:
            entry, port = _split_port(raw.strip().lower(), raw)
            entry = entry.rstrip(".")
            try:
                networks.append((ipaddress.ip_network(entry.strip("[]"), strict=False), port))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.match(entry) or address_literal(entry) is not None:
                raise ValueError(
                    f"egress allow entry {raw!r} is neither a CIDR nor a host name (with an optional :port)"
                )
            hosts.append((entry, port))
        return cls(tuple(networks), tuple(dict.fromkeys(hosts)))

    def allows_host(self, host: str, port: int | None = None) -> bool:
        """Whether `host` (a name) is on the admin's list: its addresses are then allowed whatever they are."""
        name = host.lower().rstrip(".")
        for allowed, allowed_port in self.hosts:
            if allowed_port is not None and allowed_port != port:
                continue
            if allowed.startswith("*.") and name.endswith(allowed[1:]) and name != allowed[2:]:
                return True
            if name == allowed:
                return True
        return False

    def problem(self, address: IPAddress, *, host: str | None = None, port: int | None = None) -> str | None:
        """Why a job may not connect to `address` (resolved from `host`, if a name) on `port`, or None."""
        if host is not None and address_literal(host) is None and self.allows_host(host, port):
            return None
        inner = embedded_ipv4(address) or address
        for network, allowed_port in self.networks:
            if allowed_port is not None and allowed_port != port:
                continue
            if any(c.version == network.version and c in network for c in (address, inner)):
                return None
        found = blocked_range(address)
        if found is None:
            return None
        return f"{address} is in {found}"


def _split_port(entry: str, raw: str) -> tuple[str, int | None]:
    """("host or network", port or None): a port follows the last ":" of an IPv4 or name entry, or the "]"
    of a bracketed IPv6 one; a bare IPv6 address or network has none."""
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        if not rest:
            return inside, None
        if not rest.startswith(":"):
            raise ValueError(f"egress allow entry {raw!r}: want [IPv6]:port")
        return inside, _port(rest[1:], raw)
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, _port(port, raw)
    return entry, None


def _port(text: str, raw: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"egress allow entry {raw!r}: {text!r} is not a port")
    return int(text)
