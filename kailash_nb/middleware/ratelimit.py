"""Token-bucket rate limiting per identity key (a tenant, a user, a client address).

Each key owns a bucket holding at most ``burst`` tokens that refills at
``requests_per_minute / 60`` tokens a second; a request takes ``cost`` tokens or is
refused with the wait until they are back. Over ``t`` seconds of saturation a key is
admitted ``burst + rate * t`` requests (LOAD-02).

Two backends behind one protocol:

* :class:`InProcessRateLimiter`: a bounded LRU of buckets in this process. With several
  worker processes each enforces the limit on its own (N workers admit N times the rate).
* :class:`RedisRateLimiter`: one bucket per key in Redis, updated by one atomic script,
  so every worker shares the limit (LOAD-04). It fails closed.

Pick one from the environment and use it on every request::

    limiter = rate_limiter_from_env(requests_per_minute=600)
    decision = await limiter.acquire(f"tenant:{tenant_id}")
    if not decision.allowed:
        return 429, decision.headers()   # includes Retry-After
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Protocol, runtime_checkable

from kailash_nb.middleware._ratelimit_core import (
    MAX_KEY_CHARS,
    RateDecision,
    RateLimiterUnavailableError,
    bucket_parameters,
    check_cost,
    long_key_digest,
)
from kailash_nb.middleware._ratelimit_redis import RedisRateLimiter

__all__ = [
    "REDIS_URL_ENV",
    "InProcessRateLimiter",
    "RateDecision",
    "RateLimiter",
    "RateLimiterUnavailableError",
    "RedisRateLimiter",
    "rate_limiter_from_env",
]

REDIS_URL_ENV = "KAILASH_NB_REDIS_URL"


@runtime_checkable
class RateLimiter(Protocol):
    """What a rate limiter must do: decide one request for one key, and close."""

    async def acquire(self, key: str, cost: int = 1) -> RateDecision:
        """Take ``cost`` tokens from ``key``'s bucket, or refuse with the wait.

        Raises:
            ValueError: ``cost`` below 1 or above the burst.
            RateLimiterUnavailableError: a shared store cannot be reached (fail closed).
        """
        ...

    async def aclose(self) -> None:
        """Release connections; the limiter is not used afterwards."""
        ...


class InProcessRateLimiter:
    """Token buckets in this process's memory, at most ``max_keys`` of them.

    Args:
        requests_per_minute: the sustained rate each key is allowed.
        burst: the bucket's capacity, the most requests a key makes at once
            (default: one minute's worth, ``requests_per_minute``).
        max_keys: the most buckets kept; beyond it the least recently used key is
            dropped (LOAD-05). A dropped key starts again with a full bucket, which only
            matters when ``max_keys`` distinct keys arrive within one refill period.
        clock: seconds from a monotonic clock (tests inject a fake one).

    Thread-safe: one short lock per call, no I/O, no ``await``. ``try_acquire`` is the
    same decision for synchronous callers::

        limiter = InProcessRateLimiter(requests_per_minute=60, burst=10)
        assert limiter.try_acquire("10.0.0.7").allowed

    Raises:
        ValueError: a rate that is not positive, a burst or ``max_keys`` below 1.
    """

    def __init__(
        self,
        requests_per_minute: float,
        burst: int | None = None,
        max_keys: int = 100_000,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate, self._capacity = bucket_parameters(requests_per_minute, burst)
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"max_keys must be an int >= 1, got {max_keys!r}")
        self._max_keys = max_keys
        self._clock = clock
        # key -> [tokens, last refill time]; ordered from least to most recently used.
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        """The bucket capacity (burst) every key gets."""
        return self._capacity

    def __len__(self) -> int:
        """How many keys currently hold a bucket."""
        return len(self._buckets)

    async def acquire(self, key: str, cost: int = 1) -> RateDecision:
        """Take ``cost`` tokens from ``key``'s bucket, or refuse with the wait.

        Raises:
            ValueError: ``cost`` below 1 or above the burst.
        """
        return self.try_acquire(key, cost)

    def try_acquire(self, key: str, cost: int = 1) -> RateDecision:
        """The synchronous twin of :meth:`acquire`."""
        check_cost(cost, self._capacity)
        bucket_key: Hashable = key if len(key) <= MAX_KEY_CHARS else (long_key_digest(key),)
        capacity = self._capacity
        with self._lock:
            now = self._clock()
            state = self._buckets.get(bucket_key)
            if state is None:
                tokens = float(capacity)
                state = self._buckets[bucket_key] = [tokens, now]
                if len(self._buckets) > self._max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(bucket_key)
                tokens = state[0]
                elapsed = now - state[1]
                if elapsed > 0:  # a clock that steps back refills nothing
                    tokens = min(capacity, tokens + elapsed * self._rate)
                    state[1] = now
            if tokens >= cost:
                state[0] = tokens - cost
                return RateDecision(True, 0.0, int(tokens - cost), capacity)
            state[0] = tokens
            return RateDecision(False, (cost - tokens) / self._rate, int(tokens), capacity)

    async def aclose(self) -> None:
        """Forget every bucket."""
        with self._lock:
            self._buckets.clear()


def rate_limiter_from_env(
    requests_per_minute: float,
    burst: int | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> RateLimiter:
    """A :class:`RedisRateLimiter` when ``KAILASH_NB_REDIS_URL`` is set, else in-process.

    An empty value counts as unset. With the in-process limiter each worker process
    enforces the limit on its own; set the variable when running several workers.

    Args:
        requests_per_minute: the sustained rate per key.
        burst: the bucket capacity (default: ``requests_per_minute``).
        environ: the environment to read (default: ``os.environ``).

    Raises:
        ValueError: an invalid rate or burst, or a malformed Redis URL.
        ImportError: the variable is set but the ``redis`` package is not installed.
    """
    env = os.environ if environ is None else environ
    url = env.get(REDIS_URL_ENV, "").strip()
    if url:
        return RedisRateLimiter(url, requests_per_minute, burst)
    return InProcessRateLimiter(requests_per_minute, burst)
