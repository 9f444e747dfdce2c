"""The egress classifier (ffrtmp_api.egress): every spelling of a refused address is read as that address,
IPv6 forms that carry an IPv4 address are judged by it, and the admin's allow list widens exactly what it
names (networks, host names, ports)."""

from __future__ import annotations

import ipaddress

import pytest
from ffrtmp_api.egress import EgressPolicy, address_literal, blocked_range

SPELLINGS = [
    ("decimal", "2130706433", "127.0.0.1"),
    ("octal", "0177.0.0.1", "127.0.0.1"),
    ("hex", "0x7f.1", "127.0.0.1"),
    ("hex whole", "0x7f000001", "127.0.0.1"),
    ("short", "127.1", "127.0.0.1"),
    ("two parts octal", "0177.1", "127.0.0.1"),
    ("trailing dot", "127.0.0.1.", "127.0.0.1"),
    ("metadata in hex", "0xA9FEA9FE", "169.254.169.254"),
    ("metadata decimal", "2852039166", "169.254.169.254"),
    ("metadata mixed", "169.254.43518", "169.254.169.254"),
    ("zero", "0", "0.0.0.0"),
    ("IPv6 loopback", "[::1]", "::1"),
    ("IPv6 loopback bare", "::1", "::1"),
    ("IPv6 long loopback", "[0:0:0:0:0:0:0:1]", "::1"),
    ("mapped", "[::ffff:127.0.0.1]", "::ffff:7f00:1"),
    ("mapped hex", "[::ffff:7f00:1]", "::ffff:7f00:1"),
    ("zone", "[fe80::1%25eth0]", "fe80::1%25eth0"),  # kept with its zone: still fe80::/10
]


@pytest.mark.parametrize(("name", "host", "expected"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_given_a_spelling_then_the_address_is_the_one_the_resolver_uses(name: str, host: str, expected: str | None):
    address = address_literal(host)
    assert (str(address) if address else None) == expected


@pytest.mark.parametrize("host", ["example.com", "1.2.3.4.5", "08.1.1.1", "0x", "127.0.0.1x", "", "[::1", "::g"])
def test_given_names_and_garbage_then_no_address(host: str):
    assert address_literal(host) is None or host == "0x"  # "0x" is inet_aton's 0.0.0.0, refused as such


def test_given_a_zone_then_the_address_stays_link_local():
    assert "link-local" in blocked_range(address_literal("[fe80::1%25eth0]"))


REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "this-network"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade"),
    ("169.254.169.254", "cloud metadata"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "reserved"),
    ("198.18.0.1", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::a9fe:a9fe", "metadata"),
    ("2002:7f00:1::1", "loopback"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("2001::1", "Teredo"),
    ("2001:db8::1", "documentation"),
    ("fec0::1", "site-local"),
]


@pytest.mark.parametrize(("text", "what"), REFUSED)
def test_given_a_special_purpose_address_then_it_is_refused_naming_the_range(text: str, what: str):
    found = blocked_range(ipaddress.ip_address(text))
    assert found is not None and what in found


@pytest.mark.parametrize(
    "text",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "172.32.0.1",
        "100.128.0.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ],
)
def test_given_a_public_address_then_it_is_allowed(text: str):
    assert EgressPolicy().problem(ipaddress.ip_address(text)) is None


def test_given_an_allowed_network_then_only_it_is_widened():
    policy = EgressPolicy.parse(["10.20.0.0/16", "fd00::/8"])
    assert policy.problem(ipaddress.ip_address("10.20.3.4")) is None
    assert policy.problem(ipaddress.ip_address("::ffff:10.20.3.4")) is None  # mapped: judged as the IPv4 address
    assert policy.problem(ipaddress.ip_address("fd00::5")) is None
    assert "private" in policy.problem(ipaddress.ip_address("10.21.0.1"))
    assert "loopback" in policy.problem(ipaddress.ip_address("127.0.0.1"))


def test_given_an_allowed_port_then_other_ports_of_that_address_stay_refused():
    policy = EgressPolicy.parse(["127.0.0.1:1935", "[::1]:8080"])
    assert policy.problem(ipaddress.ip_address("127.0.0.1"), port=1935) is None
    assert policy.problem(ipaddress.ip_address("127.0.0.1"), port=2379) is not None  # etcd stays out of reach
    assert policy.problem(ipaddress.ip_address("::1"), port=8080) is None
    assert policy.problem(ipaddress.ip_address("::1"), port=80) is not None


def test_given_an_allowed_host_name_then_its_addresses_pass_but_a_literal_never_matches_a_name():
    policy = EgressPolicy.parse(["media.corp", "*.cdn.corp:443"])
    private = ipaddress.ip_address("10.0.0.7")
    assert policy.problem(private, host="media.corp") is None
    assert policy.problem(private, host="MEDIA.corp.") is None
    assert policy.problem(private, host="edge.cdn.corp", port=443) is None
    assert policy.problem(private, host="edge.cdn.corp", port=80) is not None
    assert policy.problem(private, host="cdn.corp", port=443) is not None  # the wildcard is for subdomains
    assert policy.problem(private, host="evil-media.corp") is not None
    assert policy.problem(private, host="10.0.0.7") is not None


@pytest.mark.parametrize("entry", ["foo bar", "[::1]x", "1.2.3.4:0", "1.2.3.4:99999", "a:b:c:d", "http://x", "*"])
def test_given_a_bad_allow_entry_then_parse_names_it(entry: str):
    with pytest.raises(ValueError, match="egress allow entry"):
        EgressPolicy.parse([entry])
