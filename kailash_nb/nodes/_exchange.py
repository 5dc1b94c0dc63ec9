"""Driving a request exchange, sync or async.

The HTTP nodes and the LLM providers write a request's life once, as a generator that
yields what to do next (an ``httpx.Request`` to send, or seconds to wait) and returns
the result; the driver sends the reply back, or throws the transport's error in::

    result = drive(node._exchange(client, options), client.send)
    result = await adrive(provider._exchange(request), provider._asend_bound)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

import anyio
import httpx

from kailash_nb.nodes._ssrf import DestinationNotAllowedError

__all__ = ["Exchange", "adrive", "drive"]

Result = TypeVar("Result")
#: Yields a request to send or seconds to wait; is sent the reply (``None`` after a wait).
Exchange = Generator["httpx.Request | float", Any, Result]
# What sending may raise that the exchange decides about (retry, or fail with a message).
_SEND_ERRORS = (httpx.HTTPError, DestinationNotAllowedError)


def drive(exchange: Exchange[Result], send: Callable[[httpx.Request], Any]) -> Result:
    """Run ``exchange`` to its end, sending requests with ``send`` and waiting with
    ``time.sleep``; returns what the exchange returns."""
    try:
        step = next(exchange)
        while True:
            if isinstance(step, httpx.Request):
                try:
                    reply = send(step)
                except _SEND_ERRORS as exc:
                    step = exchange.throw(exc)
                    continue
            else:
                time.sleep(step)
                reply = None
            step = exchange.send(reply)
    except StopIteration as finished:
        return finished.value


async def adrive(
    exchange: Exchange[Result], send: Callable[[httpx.Request], Awaitable[Any]]
) -> Result:
    """The async twin of :func:`drive`: ``send`` is awaited, waits hold no thread."""
    try:
        step = next(exchange)
        while True:
            if isinstance(step, httpx.Request):
                try:
                    reply = await send(step)
                except _SEND_ERRORS as exc:
                    step = exchange.throw(exc)
                    continue
            else:
                await anyio.sleep(step)
                reply = None
            step = exchange.send(reply)
    except StopIteration as finished:
        return finished.value
