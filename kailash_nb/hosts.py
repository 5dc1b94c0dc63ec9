"""Host names and addresses, as the gateway and its clients judge them.

``is_loopback`` decides whether a gateway may serve without authentication (loopback
only); the CLI and notebook publishing ask it too before talking to a gateway.
``address_family`` is the socket family the gateway binds a host with.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["address_family", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address_family(host: str) -> socket.AddressFamily:
    """The socket family to bind ``host`` with (``AF_UNSPEC`` for a host name)."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_UNSPEC
