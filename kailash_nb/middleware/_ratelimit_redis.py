"""``RedisRateLimiter``: token buckets shared by every worker through one Lua script."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from kailash_nb.middleware._ratelimit_core import (
    MAX_KEY_CHARS,
    RateDecision,
    RateLimiterUnavailableError,
    bucket_parameters,
    check_cost,
    long_key_digest,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisRateLimiter"]

# Read, refill, take and write in one script: Redis runs it atomically, so workers never
# interleave between reading a bucket and writing it back. Numbers leave Lua as strings
# because Redis truncates Lua numbers to integers. ARGV: rate (tokens/s), capacity, cost,
# now (seconds; "" = the Redis server's clock, one clock for every worker), ttl (ms).
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[4])
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
elseif now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'ts', string.format('%.17g', ts))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {allowed, string.format('%.17g', tokens), string.format('%.17g', wait)}
"""


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class RedisRateLimiter:
    """Token buckets in Redis, so all worker processes share each key's limit.

    Each key's bucket is a Redis hash (``tokens``, ``ts``) that expires once it would
    have refilled anyway; one Lua script reads, refills and takes atomically. Time comes
    from the Redis server's clock, so workers on different hosts agree.

    Args:
        url: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
        requests_per_minute: the sustained rate per key.
        burst: the bucket capacity (default: ``requests_per_minute``).
        prefix: namespace of the Redis keys.
        timeout: seconds to connect or answer before the request is refused; this is on
            every request's path, so keep it short.
        max_connections: connections per limiter; more concurrent requests queue for
            one (at most ``timeout`` seconds, then fail closed).
        clock: seconds since the epoch from a clock shared by all workers, instead of the
            Redis server's (tests inject a fake one).

    Fails closed: when Redis cannot be reached or answers with an error, ``acquire``
    raises :class:`RateLimiterUnavailableError` (answer 503 with ``Retry-After``)::

        limiter = RedisRateLimiter("redis://127.0.0.1:6379/0", requests_per_minute=600)
        try:
            decision = await limiter.acquire(f"user:{user_id}")
        except RateLimiterUnavailableError as error:
            return 503, {"Retry-After": str(math.ceil(error.retry_after))}

    The client binds to the event loop it is first used on; create one limiter per loop.

    Raises:
        ValueError: an invalid rate, burst or URL.
        ImportError: the ``redis`` package is not installed.
    """

    def __init__(
        self,
        url: str,
        requests_per_minute: float,
        burst: int | None = None,
        prefix: str = "kailash_nb:rl:",
        *,
        timeout: float = 1.0,
        max_connections: int = 50,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._rate, self._capacity = bucket_parameters(requests_per_minute, burst)
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError as error:  # pragma: no cover - depends on the install
            raise ImportError(
                "RedisRateLimiter needs the 'redis' package: pip install 'redis>=5'"
            ) from error
        self.url = _hide_password(url)
        self._store_errors = RedisError
        self._clock = clock
        self._prefix = prefix.encode("utf-8")
        # Once a bucket would be full again it is the same as no bucket: let Redis drop it.
        self._ttl_ms = math.ceil(self._capacity / self._rate * 1000) + 1000
        # Requests beyond max_connections wait for a free connection up to `timeout`
        # rather than failing at once. One immediate retry covers a pooled connection
        # that Redis closed (a restart); more would hold every request while Redis is down.
        self._pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._client: Redis = Redis(connection_pool=self._pool)
        self._script = self._client.register_script(_BUCKET_SCRIPT)

    @property
    def limit(self) -> int:
        """The bucket capacity (burst) every key gets."""
        return self._capacity

    def redis_key(self, key: str) -> bytes:
        """The Redis key holding ``key``'s bucket (long keys are stored by digest)."""
        if len(key) <= MAX_KEY_CHARS:
            return self._prefix + b"k:" + key.encode("utf-8", "surrogatepass")
        return self._prefix + b"h:" + long_key_digest(key).hex().encode("ascii")

    async def acquire(self, key: str, cost: int = 1) -> RateDecision:
        """Take ``cost`` tokens from ``key``'s shared bucket, or refuse with the wait.

        Raises:
            ValueError: ``cost`` below 1 or above the burst.
            RateLimiterUnavailableError: Redis is unreachable, too slow or failing.
        """
        check_cost(cost, self._capacity)
        now = "" if self._clock is None else repr(float(self._clock()))
        args: list[str | int] = [repr(self._rate), self._capacity, cost, now, self._ttl_ms]
        try:
            reply: Any = await self._script(keys=[self.redis_key(key)], args=args)
        except self._store_errors as error:
            raise RateLimiterUnavailableError(
                f"rate limiter store {self.url} is unavailable ({type(error).__name__}: "
                f"{error}); the request is refused (fail closed); check that Redis is "
                "running and reachable",
                url=self.url,
            ) from error
        allowed, tokens, wait = int(reply[0]), float(reply[1]), float(reply[2])
        return RateDecision(allowed == 1, wait, int(tokens), self._capacity)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
        await self._pool.disconnect()

    async def __aenter__(self) -> RedisRateLimiter:
        """Use the limiter in ``async with``; it is closed on exit."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the connection pool."""
        await self.aclose()
