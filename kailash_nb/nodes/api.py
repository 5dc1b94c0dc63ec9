"""HTTP nodes: ``HTTPRequestNode`` and its async twin ``AsyncHTTPRequestNode``.

Each run sends one request through a connection pool kept on the node, retries
transient failures and decodes the body::

    fetch = HTTPRequestNode(url="https://api.example.com/items", params={"page": 2})
    outputs = fetch.execute()
    outputs["status_code"], outputs["content"]  # 200, [...the parsed JSON...]

Every response is an output, whatever its status: a 404, or a 500 still there after
the retries, comes back with ``success=False`` (as in Kailash) so a workflow can
branch on it. Only a request that got no usable response raises ``NodeExecutionError``.

Both nodes run the same retry loop, written once as a generator
(``HTTPRequestCore._exchange``) that yields what to do next: a request to send or
seconds to wait. The sync node drives it with ``httpx.Client`` and ``time.sleep``,
the async node with ``httpx.AsyncClient`` and ``anyio.sleep``.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from typing import Any, ClassVar

import httpx

from kailash_nb.nodes._exchange import adrive, drive
from kailash_nb.nodes._http import HTTPRequestCore
from kailash_nb.nodes._ssrf import (
    async_guarded_transport,
    guarded_transport,
)
from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.node import Node
from kailash_nb.nodes.registry import register_node

__all__ = ["AsyncHTTPRequestNode", "HTTPRequestNode"]


@register_node()
class HTTPRequestNode(HTTPRequestCore, Node):
    """Send one HTTP request and return the response.

    Usage::

        builder.add_node("HTTPRequestNode", "create", {"url": api_url, "method": "POST"})
        # connect a payload to "create"'s "json" input; read "content" and "success"

    Parameters: ``url`` (required), ``method`` (GET, POST, PUT, PATCH, DELETE, HEAD,
    OPTIONS; default GET), ``headers``, ``params`` (merged into the URL's own query, a
    name in both taking its value from ``params``), a body as ``json`` or as
    ``data`` (a dict is sent as form fields, str/bytes as is), ``timeout`` (seconds per
    connect, read or write; default 30), ``retries`` (default 2), ``backoff_factor``
    (default 0.5), ``max_retry_wait`` (default 60), ``follow_redirects`` (default
    True), ``max_redirects`` (default 5) and ``response_format``: ``"auto"`` (JSON
    when the content type says so, else text), ``"json"``, ``"text"`` or ``"bytes"``.

    Retries: a connection error, a timeout, a 5xx other than 501/505 or a 429 is
    tried again up to ``retries`` times, waiting ``backoff_factor * 2**n`` seconds
    before retry ``n`` (from 0), or what a 429/503 ``Retry-After`` asks, up to
    ``max_retry_wait``. Every method is retried, POST included: set ``retries=0`` for
    requests that must never be sent twice.

    Outputs: ``status_code``, ``headers`` (lower-case names), ``content`` (the decoded
    body; ``None`` for an empty JSON body), ``url`` (the final URL after redirects,
    without user or password), ``success`` (status 2xx), ``elapsed`` (seconds from
    the first attempt to the final response, waits included) and ``attempts``.

    A 4xx or 5xx response is returned with ``success=False``, never raised; branch on
    ``success`` or ``status_code``. Connections are pooled per node across runs;
    ``close()`` releases them.

    Destinations (WF-09): only public addresses are reached. A loopback, private,
    CGNAT, link-local (cloud metadata), unique-local, multicast or unspecified address,
    or a name resolving to one, is refused before anything is sent, redirects
    included; the checked address is the one connected to. The workflow author allows
    internal services with the config ``allow_private_network=True`` (loopback,
    RFC 1918, CGNAT, unique-local; config only, never an input); a deployment allows
    networks with ``KAILASH_NB_HTTP_ALLOW_NETWORKS`` (see ``kailash_nb.nodes._ssrf``).
    Environment proxies (``HTTP_PROXY``) are not used.

    Raises:
        NodeConfigurationError: an unsupported method or response format, a negative
            count or wait, or both ``json`` and ``data`` (at build).
        NodeValidationError: the same problems in inputs given at run time.
        DestinationNotAllowedError: the URL or a redirect aims at an address that is not
            allowed (a ``NodeExecutionError`` naming the host and why; not retried).
        NodeExecutionError: an invalid URL, a connection error or timeout that outlasted
            the retries, too many redirects, or a 2xx body ``"json"`` cannot parse. The
            message names the node, the method and the URL, without credentials.
    """

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Send the request; see the class docstring for outputs and errors."""
        options = self._checked(kwargs)
        client = self._client(options["max_redirects"])
        follow = options["follow_redirects"]
        return drive(
            self._exchange(client, options),
            functools.partial(client.send, follow_redirects=follow),
        )

    def close(self) -> None:
        """Close the node's pooled connections; a later run opens new ones."""
        with self._lock:
            _close_clients(self._clients)

    def _client(self, max_redirects: int) -> httpx.Client:
        with self._lock:
            client = self._clients.get(max_redirects)
            if client is None:
                if not self._clients:
                    # A node dropped without close() (a workflow built per request)
                    # releases its sockets when collected.
                    weakref.finalize(self, _close_clients, self._clients)
                client = self._clients[max_redirects] = httpx.Client(
                    max_redirects=max_redirects, transport=guarded_transport(self._policy)
                )
            return client


def _close_clients(clients: dict[int, httpx.Client]) -> None:
    for client in clients.values():
        client.close()
    clients.clear()


@register_node()
class AsyncHTTPRequestNode(HTTPRequestCore, AsyncNode):
    """The async twin of ``HTTPRequestNode``: same parameters, outputs and errors.

    Waiting for the server does not hold a thread, so many requests wait together.
    Connections are pooled per node and per event loop (an ``httpx.AsyncClient``
    belongs to the loop it was created on); ``await node.aclose()`` releases the
    current loop's.

    Usage::

        node = AsyncHTTPRequestNode(url="https://api.example.com/items")
        outputs = await node.execute_async()
    """

    # Loops are weak keys so a finished loop (asyncio.run) takes its clients with it.
    _client_store: ClassVar[type] = weakref.WeakKeyDictionary

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        """Send the request; see ``HTTPRequestNode`` for outputs and errors."""
        options = self._checked(kwargs)
        client = self._client(options["max_redirects"])
        follow = options["follow_redirects"]
        return await adrive(
            self._exchange(client, options),
            functools.partial(client.send, follow_redirects=follow),
        )

    async def aclose(self) -> None:
        """Close the pooled connections of the running event loop."""
        with self._lock:
            clients = self._clients.pop(asyncio.get_running_loop(), {})
        for client in clients.values():
            await client.aclose()

    def _client(self, max_redirects: int) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._clients.setdefault(loop, {})
            client = clients.get(max_redirects)
            if client is None:
                client = clients[max_redirects] = httpx.AsyncClient(
                    max_redirects=max_redirects, transport=async_guarded_transport(self._policy)
                )
            return client
