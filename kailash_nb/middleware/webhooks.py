"""Webhooks: agent-UI events POSTed to external URLs, signed with a shared secret.

Each delivery is one HTTP POST of a JSON body::

    {"webhook_id": ..., "delivery_id": ..., "timestamp": 1700000000, "event": {...}}

with the headers ``X-Kailash-Webhook-Id``, ``X-Kailash-Delivery-Id``,
``X-Kailash-Timestamp`` and, for a webhook registered with a secret,
``X-Kailash-Signature: sha256=<hex>``: the HMAC-SHA256, keyed with the secret, of
``"<timestamp>." + body`` (the exact bytes received). A receiver checks it with
:func:`verify_webhook_signature`.

Requests go through ``AsyncHTTPRequestNode``: only public addresses are reached unless
``allow_private_network=True`` (loopback and private networks; WF-09), redirects are
not followed, and a connection error or a 5xx/429 is retried. A delivery succeeds only
on a 2xx answer; anything else is counted and reported as a failure.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kailash_nb.middleware.agent_events import AgentEvent, EventFilter
from kailash_nb.nodes.api import AsyncHTTPRequestNode

__all__ = ["WebhookManager", "sign_webhook", "verify_webhook_signature"]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Kailash-Signature"
TIMESTAMP_HEADER = "X-Kailash-Timestamp"
_RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        "X-Kailash-Webhook-Id",
        "X-Kailash-Delivery-Id",
        "Content-Type",
        "Content-Length",
        "Host",
        "Transfer-Encoding",
    )
)
_MAX_URL_CHARS = 2048
#: Delivery results kept for ``recent_deliveries``.
RECENT_DELIVERIES = 100


def sign_webhook(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The ``X-Kailash-Signature`` value of ``body`` sent at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_webhook_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: int | str,
    signature: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` with ``secret``, and the
    timestamp is within ``tolerance`` seconds of ``now`` (replays are refused)."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        return False
    return hmac.compare_digest(sign_webhook(secret, sent, body), str(signature))


@dataclass
class Webhook:
    """A registered endpoint (its secret is never shown in ``repr`` or stats)."""

    webhook_id: str
    url: str
    secret: str | None = field(repr=False)
    event_filter: EventFilter
    headers: dict[str, str]
    created_at: float = field(default_factory=time.time)
    deliveries: int = 0
    failures: int = 0
    active: bool = True

    def describe(self) -> dict[str, Any]:
        """The webhook without its secret or headers (which may hold credentials)."""
        return {
            "webhook_id": self.webhook_id,
            "url": self.url,
            "signed": self.secret is not None,
            "deliveries": self.deliveries,
            "failures": self.failures,
            "active": self.active,
            "created_at": self.created_at,
        }


class WebhookManager:
    """Registered webhooks and their deliveries.

    Args:
        max_retries: retries of a delivery after a connection error, 5xx or 429.
        timeout_seconds: per connect, read or write.
        allow_private_network: also deliver to loopback and private addresses.
    """

    def __init__(
        self,
        max_retries: int = 3,
        timeout_seconds: float = 10,
        *,
        allow_private_network: bool = False,
    ) -> None:
        self.max_retries = max_retries
        self.timeout_seconds = timeout_seconds
        self.allow_private_network = allow_private_network
        self.webhooks: dict[str, Webhook] = {}
        self.delivery_stats = {
            "total_attempts": 0,
            "successful_deliveries": 0,
            "failed_deliveries": 0,
        }
        self.recent_deliveries: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=RECENT_DELIVERIES
        )
        self._http = AsyncHTTPRequestNode(
            name="webhook_delivery",
            method="POST",
            retries=max_retries,
            timeout=float(timeout_seconds),
            follow_redirects=False,
            response_format="bytes",
            allow_private_network=allow_private_network,
        )

    def register_webhook(
        self,
        webhook_id: str,
        url: str,
        secret: str | None = None,
        event_filter: EventFilter | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Webhook:
        """Register (or replace) ``webhook_id``; return it.

        Raises:
            ValueError: an empty id, a URL that is not ``http(s)://host...``, an empty
                secret, or a header that is reserved or holds a line break.
        """
        if not isinstance(webhook_id, str) or not webhook_id or len(webhook_id) > 256:
            raise ValueError("webhook_id must be a non-empty string of at most 256 characters")
        _check_url(url)
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ValueError("secret must be a non-empty string (or None for unsigned)")
        checked = _check_headers(headers or {})
        webhook = Webhook(webhook_id, url, secret, event_filter or EventFilter(), checked)
        self.webhooks[webhook_id] = webhook
        logger.info("registered webhook %r", webhook_id)
        return webhook

    def unregister_webhook(self, webhook_id: str) -> bool:
        """Remove ``webhook_id``; ``True`` if it was registered."""
        return self.webhooks.pop(webhook_id, None) is not None

    async def deliver_event(self, event: AgentEvent) -> list[dict[str, Any]]:
        """POST ``event`` to every active webhook whose filter matches; return one
        result per delivery: ``webhook_id``, ``delivery_id``, ``success``,
        ``status_code`` (``None`` when no answer came) and ``error``."""
        targets = [
            webhook
            for webhook in list(self.webhooks.values())
            if webhook.active and webhook.event_filter.matches(event)
        ]
        if not targets:
            return []
        return list(await asyncio.gather(*(self._deliver(webhook, event) for webhook in targets)))

    async def aclose(self) -> None:
        """Release the delivery connections of the running event loop."""
        await self._http.aclose()

    async def _deliver(self, webhook: Webhook, event: AgentEvent) -> dict[str, Any]:
        delivery_id = str(uuid.uuid4())
        timestamp = int(time.time())
        body = json.dumps(
            {
                "webhook_id": webhook.webhook_id,
                "delivery_id": delivery_id,
                "timestamp": timestamp,
                "event": event.to_dict(),
            },
            separators=(",", ":"),
            default=str,
        ).encode()
        headers = {
            **webhook.headers,
            "Content-Type": "application/json",
            "X-Kailash-Webhook-Id": webhook.webhook_id,
            "X-Kailash-Delivery-Id": delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if webhook.secret is not None:
            headers[SIGNATURE_HEADER] = sign_webhook(webhook.secret, timestamp, body)
        self.delivery_stats["total_attempts"] += 1
        result: dict[str, Any] = {
            "webhook_id": webhook.webhook_id,
            "delivery_id": delivery_id,
            "event_type": event.type.value,
            "success": False,
            "status_code": None,
            "error": None,
        }
        try:
            answer = await self._http.execute_async(url=webhook.url, data=body, headers=headers)
        except Exception as exc:  # refused destination, connection error, timeout
            result["error"] = f"{type(exc).__name__}: {exc}"
        else:
            result["status_code"] = answer.get("status_code")
            result["success"] = bool(answer.get("success"))
            if not result["success"]:
                result["error"] = f"HTTP {result['status_code']}"
        if result["success"]:
            webhook.deliveries += 1
            self.delivery_stats["successful_deliveries"] += 1
        else:
            webhook.failures += 1
            self.delivery_stats["failed_deliveries"] += 1
            logger.warning(
                "webhook %r delivery %s failed: %s",
                webhook.webhook_id,
                delivery_id,
                result["error"],
            )
        self.recent_deliveries.append(result)
        return result


def _check_url(url: object) -> None:
    if not isinstance(url, str) or not url or len(url) > _MAX_URL_CHARS:
        raise ValueError(f"url must be a string of 1-{_MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL with a host")
    if any(char in url for char in "\r\n\t "):
        raise ValueError("url must not contain whitespace or line breaks")


def _check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name:
            raise ValueError("webhook headers must map non-empty strings to strings")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by the webhook delivery itself")
        if any(char in name + value for char in "\r\n\0"):
            raise ValueError(f"header {name!r} must not contain line breaks or NUL")
        checked[name] = value
    return checked
