"""Token-bucket pieces shared by the in-process and the Redis rate limiters."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from kailash_nb.sdk_exceptions import RuntimeException

__all__ = ["RateDecision", "RateLimiterUnavailableError"]

# Identity keys longer than this are stored by digest, so a caller-chosen 1 MB key costs
# the limiter (and Redis) 32 bytes, not 1 MB (LOAD-05).
MAX_KEY_CHARS = 128


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The answer to one ``acquire``: admit the request or refuse it with a wait.

    Attributes:
        allowed: ``True`` when the request may proceed (its tokens were taken).
        retry_after: seconds until enough tokens are back for this request's cost;
            ``0.0`` when allowed.
        remaining: whole tokens left in the key's bucket after this decision.
        limit: the bucket's capacity (the burst): the most requests a key can make at once.

    A refused request answers 429 with ``decision.headers()``::

        decision = await limiter.acquire(f"tenant:{tenant_id}")
        if not decision.allowed:
            return 429, decision.headers()
    """

    allowed: bool
    retry_after: float
    remaining: int
    limit: int

    @property
    def retry_after_seconds(self) -> int:
        """The ``Retry-After`` value: whole seconds, rounded up, at least 1 when refused."""
        if self.allowed:
            return 0
        # Rounding to microseconds first keeps float noise (2.0000000001) from adding a second.
        return max(1, math.ceil(round(self.retry_after, 6)))

    @property
    def refusal(self) -> str:
        """What a refused caller is told: the limit and the wait."""
        return (
            f"rate limit of {self.limit} requests reached; retry after {self.retry_after_seconds} s"
        )

    def headers(self) -> dict[str, str]:
        """Response headers: the limit and what remains, plus ``Retry-After`` when refused."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers


class RateLimiterUnavailableError(RuntimeException):
    """The shared rate-limit store cannot be reached, so the request is refused.

    Rate limiting fails closed: answer 503 with ``Retry-After: <retry_after>`` and check
    the store (``url``, password hidden) rather than admitting unlimited traffic.

    Attributes:
        url: the store's URL without its password.
        retry_after: seconds a client should wait before trying again.
    """

    def __init__(self, message: str, *, url: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.url = url
        self.retry_after = retry_after


def bucket_parameters(requests_per_minute: float, burst: int | None) -> tuple[float, int]:
    """Validate the configuration; return ``(tokens per second, bucket capacity)``.

    Raises:
        ValueError: a rate that is not a positive finite number, or a burst below 1.
    """
    if isinstance(requests_per_minute, bool) or not isinstance(requests_per_minute, int | float):
        raise TypeError(f"requests_per_minute must be a number, got {requests_per_minute!r}")
    if not math.isfinite(requests_per_minute) or requests_per_minute <= 0:
        raise ValueError(f"requests_per_minute must be > 0, got {requests_per_minute!r}")
    capacity = burst if burst is not None else max(1, math.ceil(requests_per_minute))
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"burst must be an int >= 1, got {burst!r}")
    return requests_per_minute / 60.0, capacity


def check_cost(cost: int, capacity: int) -> None:
    """Refuse a cost that no bucket could ever grant.

    Raises:
        ValueError: ``cost`` below 1 or above the bucket's capacity (the burst).
    """
    if isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= capacity:
        raise ValueError(
            f"cost must be an int between 1 and the burst ({capacity}), got {cost!r}; "
            "raise the burst or lower the cost"
        )


def long_key_digest(key: str) -> bytes:
    """SHA-256 of an over-long identity key (lone surrogates allowed)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
