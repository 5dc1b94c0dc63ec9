"""``client_address``: the caller's IP address, trusting forwarding headers only from
configured proxies (GW-15).

``X-Forwarded-For`` and ``X-Real-IP`` are written by whoever sends the request, so they
count only when the TCP peer is one of our proxies. The ``X-Forwarded-For`` chain is read
right to left: each entry was appended by the hop to its right, so the first entry that
is not a trusted proxy is the client; entries further left are the client's own claims::

    proxies = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])      # build once
    address = client_address(peer_ip, request.headers, proxies)
    decision = await limiter.acquire(f"ip:{address}")

The proxies must append to ``X-Forwarded-For`` (nginx ``$proxy_add_x_forwarded_for``)
or overwrite it, never pass a client's value through unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

__all__ = ["TrustedProxies", "client_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAX_ENTRY_CHARS = 64  # the longest IPv6 text with a port and a zone fits; refuse junk early


def _parse_ip(text: str) -> IPAddress | None:
    """An address from a header entry (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``)."""
    text = text.strip()
    if not text or len(text) > _MAX_ENTRY_CHARS:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has several colons
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # one key per client whatever the socket family
    return address


class TrustedProxies:
    """The addresses and networks of the reverse proxies in front of the gateway.

    Args:
        proxies: IPs or CIDR networks (``"10.0.0.0/8"``, ``"::1"``) or parsed networks.

    Raises:
        ValueError: an entry that is neither an IP address nor a network.
    """

    def __init__(self, proxies: Iterable[str | IPNetwork] = ()) -> None:
        if isinstance(proxies, str):
            proxies = [proxies]
        networks: list[IPNetwork] = []
        for proxy in proxies:
            try:
                networks.append(ipaddress.ip_network(proxy, strict=False))
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"trusted proxy {proxy!r} is not an IP address or network "
                    "(e.g. '10.0.0.5' or '10.0.0.0/8')"
                ) from error
        self.networks: tuple[IPNetwork, ...] = tuple(networks)

    def __contains__(self, address: object) -> bool:
        """Whether ``address`` (an address object or text) is one of the proxies."""
        if isinstance(address, str):
            address = _parse_ip(address)
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        return any(address in network for network in self.networks)

    def __bool__(self) -> bool:
        """Whether any proxy is configured."""
        return bool(self.networks)


def _header_values(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> list[str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [value for key, value in items if key.lower() == name]


def client_address(
    peer_ip: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    trusted_proxies: TrustedProxies | Iterable[str | IPNetwork],
) -> str:
    """The client's IP address for rate-limit keys and logs.

    Args:
        peer_ip: the address of the TCP peer (the socket's remote address).
        headers: request headers, as a mapping or as ``(name, value)`` pairs (several
            ``X-Forwarded-For`` headers are read in order, as one list).
        trusted_proxies: a :class:`TrustedProxies` (build it once) or its entries.

    Returns the peer unless the peer is a trusted proxy; then the right-most
    ``X-Forwarded-For`` entry that is not a trusted proxy, or ``X-Real-IP`` when there is
    no ``X-Forwarded-For``. A malformed entry stops the walk at the hop that forwarded it,
    so a forged value can never become a key. Addresses come back normalized
    (``::ffff:1.2.3.4`` → ``1.2.3.4``); an unparseable peer comes back as given.

    Raises:
        ValueError: an invalid trusted-proxy entry.
    """
    if not isinstance(trusted_proxies, TrustedProxies):
        trusted_proxies = TrustedProxies(trusted_proxies)
    peer = _parse_ip(peer_ip)
    if peer is None:
        return peer_ip
    if peer not in trusted_proxies:
        return str(peer)
    forwarded = _header_values(headers, "x-forwarded-for")
    if forwarded:
        hop = peer
        for entry in reversed(",".join(forwarded).split(",")):
            address = _parse_ip(entry)
            if address is None:
                return str(hop)
            if address not in trusted_proxies:
                return str(address)
            hop = address
        return str(hop)
    real_ip = _header_values(headers, "x-real-ip")
    if len(real_ip) == 1:
        address = _parse_ip(real_ip[0])
        if address is not None:
            return str(address)
    return str(peer)
