"""client_address: forwarding headers count only from configured proxies, read right to
left (GW-15)."""

from __future__ import annotations

import pytest

from kailash_nb.middleware.client_address import TrustedProxies, client_address

PROXIES = TrustedProxies(["10.0.0.0/8", "127.0.0.1", "fd00::/8"])


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-For": "1.2.3.4"},
        {"X-Real-IP": "1.2.3.4"},
        {"x-forwarded-for": "1.2.3.4, 10.0.0.1"},
        [("X-Forwarded-For", "1.2.3.4"), ("X-Real-IP", "5.6.7.8")],
    ],
)
def test_headers_from_an_untrusted_peer_are_ignored(headers):
    assert client_address("203.0.113.9", headers, PROXIES) == "203.0.113.9"
    assert client_address("203.0.113.9", headers, []) == "203.0.113.9"


def test_no_trusted_proxies_means_the_peer_even_from_loopback():
    assert client_address("127.0.0.1", {"X-Forwarded-For": "1.2.3.4"}, ()) == "127.0.0.1"


def test_trusted_proxy_forwarded_address_is_used():
    headers = {"X-Forwarded-For": "198.51.100.7"}
    assert client_address("10.1.2.3", headers, PROXIES) == "198.51.100.7"


def test_the_chain_is_read_right_to_left_skipping_trusted_proxies():
    # The client forged the first two entries; our proxies appended the rest.
    headers = {"X-Forwarded-For": "6.6.6.6, 7.7.7.7, 198.51.100.7, 10.0.0.2, 10.0.0.1"}
    assert client_address("127.0.0.1", headers, PROXIES) == "198.51.100.7"


def test_several_forwarded_for_headers_form_one_chain():
    headers = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-For", "198.51.100.7, 10.0.0.9"),
    ]
    assert client_address("10.0.0.1", headers, PROXIES) == "198.51.100.7"


def test_a_chain_of_only_trusted_hops_gives_the_leftmost():
    headers = {"X-Forwarded-For": "10.0.0.3, 10.0.0.2"}
    assert client_address("10.0.0.1", headers, PROXIES) == "10.0.0.3"


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        ("spoofed-key", "10.0.0.1"),
        ("1.2.3.4, garbage", "10.0.0.1"),
        ("garbage, 10.0.0.5", "10.0.0.5"),
        ("1.2.3.4, ", "10.0.0.1"),
        ("1.2.3.4\r\nX: y", "10.0.0.1"),
        ("9" * 10_000, "10.0.0.1"),
        ("unknown", "10.0.0.1"),
    ],
)
def test_malformed_entries_never_become_the_address(chain, expected):
    assert client_address("10.0.0.1", {"X-Forwarded-For": chain}, PROXIES) == expected


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("198.51.100.7:5555", "198.51.100.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        (" 198.51.100.7 ", "198.51.100.7"),
    ],
)
def test_entries_are_normalized(entry, expected):
    assert client_address("10.0.0.1", {"X-Forwarded-For": entry}, PROXIES) == expected


def test_x_real_ip_is_used_only_without_forwarded_for_and_only_once():
    assert client_address("10.0.0.1", {"X-Real-IP": "198.51.100.7"}, PROXIES) == "198.51.100.7"
    assert client_address("10.0.0.1", {"X-Real-IP": "nonsense"}, PROXIES) == "10.0.0.1"
    two = [("X-Real-IP", "198.51.100.7"), ("X-Real-IP", "6.6.6.6")]
    assert client_address("10.0.0.1", two, PROXIES) == "10.0.0.1"
    both = {"X-Forwarded-For": "198.51.100.8", "X-Real-IP": "6.6.6.6"}
    assert client_address("10.0.0.1", both, PROXIES) == "198.51.100.8"


def test_ipv6_and_mapped_peers():
    assert client_address("fd00::1", {"X-Forwarded-For": "2001:db8::7"}, PROXIES) == "2001:db8::7"
    assert client_address("::ffff:10.0.0.1", {"X-Forwarded-For": "1.2.3.4"}, PROXIES) == "1.2.3.4"
    assert client_address("::ffff:203.0.113.9", {}, PROXIES) == "203.0.113.9"


def test_no_forwarding_headers_from_a_proxy_gives_the_proxy():
    assert client_address("10.0.0.1", {}, PROXIES) == "10.0.0.1"


def test_an_unparseable_peer_is_returned_as_given_and_not_trusted():
    assert client_address("unix:/run/gw.sock", {"X-Forwarded-For": "1.2.3.4"}, PROXIES) == (
        "unix:/run/gw.sock"
    )


def test_trusted_proxies_accept_strings_and_refuse_junk():
    proxies = TrustedProxies("192.168.1.1")
    assert "192.168.1.1" in proxies and "192.168.1.2" not in proxies and bool(proxies)
    assert "junk" not in proxies and 42 not in proxies
    assert not TrustedProxies()
    with pytest.raises(ValueError, match="not an IP address or network"):
        TrustedProxies(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="not an IP address or network"):
        client_address("10.0.0.1", {}, ["proxy.internal"])
