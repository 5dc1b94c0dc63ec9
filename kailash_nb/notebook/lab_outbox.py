"""Ordered delivery of the lab sidebar's messages, without a lock held while sending.

Messages are posted from any thread (engine threads, timers, the kernel's) in the order
they were made; whichever thread finds the outbox idle sends everything queued, so each
connection receives the messages in that order and a slow or re-entrant send blocks no
one else's lock::

    outbox = Outbox()
    outbox.add(connection)                      # has .sink, .closed and .close()
    outbox.post({"type": "node", ...})          # to every connection
    outbox.post(reply, to=connection)           # to one
    outbox.drain()

A connection whose sink raises is logged and closed; the others go on.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Connection", "Outbox"]

logger = logging.getLogger(__name__)


class Connection(Protocol):
    """A receiver of messages: ``sink(message)`` sends one, and raises when it cannot."""

    closed: bool
    sink: Callable[[dict[str, Any]], object]

    def close(self) -> None:
        """Stop receiving (the outbox calls it when ``sink`` raised)."""


class Outbox:
    """The connections, and the messages queued for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: list[Connection] = []
        self._queue: collections.deque[tuple[Connection | None, dict[str, Any]]] = (
            collections.deque()
        )
        self._draining = False

    @property
    def connected(self) -> bool:
        """True when at least one connection receives messages."""
        return bool(self._connections)

    def add(self, connection: Connection) -> None:
        """Send every message posted from now on to ``connection`` too."""
        with self._lock:
            self._connections.append(connection)

    def remove(self, connection: Connection) -> None:
        """Stop sending to ``connection`` (messages already queued for it are dropped)."""
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)

    def clear(self) -> list[Connection]:
        """Remove every connection; return them."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._queue.clear()
        return connections

    def post(self, message: dict[str, Any], to: Connection | None = None) -> None:
        """Queue ``message`` for ``to``, or for every connection (none: dropped)."""
        with self._lock:
            if to is not None or self._connections:
                self._queue.append((to, message))

    def drain(self) -> None:
        """Send the queued messages, unless another thread is sending them already."""
        with self._lock:
            if self._draining:
                return
            self._draining = True
        try:
            while True:
                with self._lock:
                    if not self._queue:
                        self._draining = False
                        return
                    batch = list(self._queue)
                    self._queue.clear()
                    connections = list(self._connections)
                for target, message in batch:
                    for connection in connections if target is None else [target]:
                        _deliver(connection, message)
        except BaseException:
            with self._lock:
                self._draining = False
            raise


def _deliver(connection: Connection, message: dict[str, Any]) -> None:
    if connection.closed:
        return
    try:
        connection.sink(message)
    except Exception:
        logger.warning(
            "the lab sidebar connection %r could not send a %r message; it is closed",
            connection.sink,
            message.get("type"),
            exc_info=True,
        )
        connection.close()
