"""Test helper: a gateway served on a free 127.0.0.1 port from its own event loop thread.

``gateway.start()`` and ``gateway.stop()`` are awaited inside that loop, so tests talk
to a real server with a plain synchronous ``httpx.Client``. Tests get served gateways
from the ``serve_gateway``/``serve_module_gateway`` fixtures of ``conftest.py``; a test
that stops its server itself, mid-test, uses the class directly.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx


class ServedGateway:
    """Context manager: start ``gateway`` on a free loopback port, stop it on exit."""

    def __init__(self, gateway: Any, host: str = "127.0.0.1") -> None:
        self.gateway = gateway
        self.host = host
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self.client: httpx.Client | None = None

    def call(self, coroutine: Any, timeout: float = 15) -> Any:
        """Run ``coroutine`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def submit(self, coroutine: Any) -> Any:
        """Schedule ``coroutine`` on the server's loop; return its concurrent future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def access_token(
        self,
        subject: str | None = None,
        *,
        tenant: str = "acme",
        roles: Sequence[str] = ("analyst",),
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """An access token the gateway's auth issues for ``subject`` (a fresh user when None),
        carrying ``claims`` as its other claims."""
        pair = self.gateway.auth.issue_tokens(
            subject or f"user-{uuid.uuid4().hex[:8]}",
            tenant_id=tenant,
            roles=list(roles),
            extra=claims,
        )
        return pair.access_token

    def bearer_headers(
        self,
        subject: str | None = None,
        *,
        tenant: str = "acme",
        roles: Sequence[str] = ("analyst",),
        claims: Mapping[str, Any] | None = None,
        **extra: str,
    ) -> dict[str, str]:
        """``Authorization: Bearer`` headers of a new access token (with ``claims``), plus
        ``extra`` headers."""
        token = self.access_token(subject, tenant=tenant, roles=roles, claims=claims)
        return {"Authorization": f"Bearer {token}", **extra}

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ServedGateway:
        self._thread.start()
        self.port = self.call(self.gateway.start(self.host, 0))
        self.client = httpx.Client(base_url=self.url, timeout=15)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.client is not None:
            self.client.close()
        try:
            self.call(self.gateway.stop(timeout=10), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
