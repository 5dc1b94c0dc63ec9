"""Where the HTTP nodes may connect (security checklist WF-09).

A request may only reach public addresses. The host name is resolved once per
connection, every address it resolves to is checked, and the socket is opened to an
address that passed, so a name cannot re-resolve to an internal address between the
check and the connect (DNS rebinding). The check sits in the httpx transport's
network backend: TLS and the ``Host`` header still use the URL's own name, and each
redirect hop that opens a new connection is checked again::

    client = httpx.Client(transport=guarded_transport(DestinationPolicy()))
    client.get("http://169.254.169.254/latest/meta-data/")  # DestinationNotAllowedError

Internal destinations are allowed on purpose in three ways, all default off:

- ``DestinationPolicy(allow_private_network=True)`` (an HTTP node's
  ``allow_private_network`` config, set by the workflow author; never an input) allows
  loopback, private (RFC 1918), shared (CGNAT 100.64.0.0/10) and unique-local
  (fc00::/7) addresses;
- ``DestinationPolicy(allow_loopback=True)`` allows loopback only: clients of a
  service that runs on this machine by design (the Ollama LLM provider);
- the ``KAILASH_NB_HTTP_ALLOW_NETWORKS`` environment variable, a comma-separated list
  of networks (``10.2.0.0/16, 169.254.169.254/32``), allows any address in them, for
  the whole deployment.

Because the transport is given explicitly, httpx ignores ``HTTP_PROXY``-style
environment proxies: a proxy would resolve names itself, past the check.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import httpcore
import httpx

from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeExecutionError

__all__ = [
    "ALLOW_NETWORKS_ENV",
    "DestinationNotAllowedError",
    "DestinationPolicy",
    "async_guarded_transport",
    "guarded_transport",
    "refusal_reason",
]

ALLOW_NETWORKS_ENV = "KAILASH_NB_HTTP_ALLOW_NETWORKS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolver(host, port)`` -> the addresses ``host`` resolves to, as strings.
Resolver = Callable[[str, int], list[str]]

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# Most specific first; the reason names what the address is.
_BLOCKED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (_V4("0.0.0.0/8"), "an unspecified ('this network') address"),
    (_V4("127.0.0.0/8"), "a loopback address"),
    (_V4("169.254.0.0/16"), "a link-local address (cloud metadata services live here)"),
    (_V4("10.0.0.0/8"), "a private (RFC 1918) address"),
    (_V4("172.16.0.0/12"), "a private (RFC 1918) address"),
    (_V4("192.168.0.0/16"), "a private (RFC 1918) address"),
    (_V4("100.64.0.0/10"), "a shared (CGNAT) address"),
    (_V4("192.0.0.0/24"), "an IETF protocol address"),
    (_V4("198.18.0.0/15"), "a benchmarking address"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("240.0.0.0/4"), "a reserved or broadcast address"),
    (_V6("::/128"), "an unspecified address"),
    (_V6("::1/128"), "a loopback address"),
    (_V6("fe80::/10"), "a link-local address"),
    (_V6("fec0::/10"), "a site-local address"),
    (_V6("fc00::/7"), "a unique-local address"),
    (_V6("ff00::/8"), "a multicast address"),
    (_V6("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (_V6("100::/64"), "a discard-only address"),
)
# What ``allow_private_network=True`` lets through: the organisation's own networks.
_PRIVATE_NETWORK_REASONS = frozenset(
    {
        "a loopback address",
        "a private (RFC 1918) address",
        "a shared (CGNAT) address",
        "a unique-local address",
    }
)
# IPv6 forms that carry an IPv4 address, which decides.
_NAT64 = _V6("64:ff9b::/96")
_IPV4_COMPATIBLE = _V6("::/96")


class DestinationNotAllowedError(NodeExecutionError):
    """A request aimed at an address HTTP nodes may not reach; nothing was sent.

    Attributes:
        host: the host name or address of the URL (or redirect) refused.
        address: the address it is or resolved to that is not allowed.
        reason: what that address is (``"a loopback address"``).
    """

    def __init__(self, message: str, *, host: str, address: str, reason: str) -> None:
        super().__init__(message)
        self.host = host
        self.address = address
        self.reason = reason

    @property
    def private_network(self) -> bool:
        """The address is on the organisation's own networks (loopback, RFC 1918, CGNAT,
        unique-local): ``allow_private_network=True`` would let the request through."""
        return self.reason.partition(" (as ")[0] in _PRIVATE_NETWORK_REASONS


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or ``None`` when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address in _IPV4_COMPATIBLE and int(address) > 1:
            embedded = ipaddress.IPv4Address(int(address))
        if embedded is not None:
            inner = refusal_reason(embedded)
            return f"{inner} (as {embedded}, inside an IPv6 address)" if inner else None
        address = ipaddress.IPv6Address(address.compressed.partition("%")[0])
    for network, reason in _BLOCKED:
        if address.version == network.version and address in network:
            return reason
    if not address.is_global:
        return "an address that is not globally routable"
    return None


@functools.lru_cache(maxsize=8)
def _allowed_networks(
    text: str,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise NodeConfigurationError(
                f"{ALLOW_NETWORKS_ENV} entry {entry!r} is not a network; use addresses or "
                "CIDR networks separated by commas, e.g. '10.2.0.0/16, 192.168.1.5'"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class DestinationPolicy:
    """Which addresses a request may reach; see the module docstring.

    Args:
        allow_private_network: also allow loopback, RFC 1918, CGNAT and unique-local
            addresses (not link-local, multicast or unspecified ones).
        allow_loopback: also allow loopback addresses only (this machine), for clients
            of services that run locally by design (an Ollama server).
    """

    allow_private_network: bool = False
    allow_loopback: bool = False

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Raise ``DestinationNotAllowedError`` unless every address of ``host`` is allowed.

        Raises:
            DestinationNotAllowedError: an address is not allowed (named with why).
            NodeConfigurationError: ``KAILASH_NB_HTTP_ALLOW_NETWORKS`` is malformed.
        """
        allowed = _allowed_networks(os.environ.get(ALLOW_NETWORKS_ENV, ""))
        for text in addresses:
            address = ipaddress.ip_address(text.partition("%")[0])
            reason = refusal_reason(address)
            if reason is None or any(
                address.version == network.version and address in network for network in allowed
            ):
                continue
            kind = reason.partition(" (as ")[0]
            if self.allow_private_network and kind in _PRIVATE_NETWORK_REASONS:
                continue
            if self.allow_loopback and kind == "a loopback address":
                continue
            said = f"is {text}" if _same_address(host, text) else f"resolves to {text}"
            raise DestinationNotAllowedError(
                f"host {host!r} {said}, {reason}",
                host=host,
                address=text,
                reason=reason,
            )


def _same_address(host: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")) == ipaddress.ip_address(
            address.partition("%")[0]
        )
    except ValueError:
        return False


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to through the system resolver, in its order.

    Raises:
        httpcore.ConnectError: the name does not resolve (retried like any failed connect).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from None
    addresses: list[str] = []
    for *_, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    return addresses


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check, then connect to a checked address (never the name again)."""

    def __init__(self, policy: DestinationPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._resolver(host, port)
        self._policy.check(host, addresses)
        failure: Exception = httpcore.ConnectError(f"{host!r} resolved to no address")
        for address in addresses:
            try:
                return self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("HTTP nodes do not connect to Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """The async twin of ``_GuardedBackend``; resolution runs in a worker thread."""

    def __init__(self, policy: DestinationPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await anyio.to_thread.run_sync(self._resolver, host, port)
        self._policy.check(host, addresses)
        failure: Exception = httpcore.ConnectError(f"{host!r} resolved to no address")
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("HTTP nodes do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


# httpx's own defaults (httpx.Limits() as HTTPTransport uses them).
_LIMITS = {"max_connections": 100, "max_keepalive_connections": 20, "keepalive_expiry": 5.0}


@functools.lru_cache(maxsize=4)
def _ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # httpx's default context (certifi, or SSL_CERT_FILE/SSL_CERT_DIR), built once: it
    # takes ~20 ms and is safe to share between clients.
    return httpx.create_ssl_context()


def _default_ssl_context() -> ssl.SSLContext:
    return _ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, policy: DestinationPolicy, resolver: Resolver) -> None:
        context = _default_ssl_context()
        super().__init__(verify=context)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context, network_backend=_GuardedBackend(policy, resolver), **_LIMITS
        )


class _AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: DestinationPolicy, resolver: Resolver) -> None:
        context = _default_ssl_context()
        super().__init__(verify=context)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            network_backend=_AsyncGuardedBackend(policy, resolver),
            **_LIMITS,
        )


def guarded_transport(
    policy: DestinationPolicy, resolver: Resolver | None = None
) -> httpx.HTTPTransport:
    """An ``httpx`` transport that connects only where ``policy`` allows.

    ``resolver`` replaces the system resolver (``system_resolver``), e.g. to pin names.
    Sending through it raises ``DestinationNotAllowedError`` before any byte is sent.
    """
    return _GuardedTransport(policy, resolver or system_resolver)


def async_guarded_transport(
    policy: DestinationPolicy, resolver: Resolver | None = None
) -> httpx.AsyncHTTPTransport:
    """The async twin of ``guarded_transport``."""
    return _AsyncGuardedTransport(policy, resolver or system_resolver)
