"""The HTTP server the gateway binds, and address helpers."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import tornado.httpserver

__all__ = ["CappedHTTPServer", "address_family", "is_loopback"]


class CappedHTTPServer(tornado.httpserver.HTTPServer):
    """An ``HTTPServer`` that closes connections beyond ``max_connections`` at once."""

    max_connections: int = 1000

    def handle_stream(self, stream: Any, address: tuple) -> None:
        """Serve the new connection, or close it when ``max_connections`` are open."""
        if len(self._connections) >= self.max_connections:
            stream.close()
            return
        super().handle_stream(stream, address)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address_family(host: str) -> socket.AddressFamily:
    """The socket family to bind ``host`` with."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_UNSPEC
