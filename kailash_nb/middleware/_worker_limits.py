"""The gateway's rate limiter, for one worker process or several (LOAD-04).

``SecurityConfig.max_requests_per_minute`` is a budget per caller (tenant and subject,
or client address when anonymous). How it holds depends on where buckets live:

* ``KAILASH_NB_REDIS_URL`` set: one :class:`RedisRateLimiter` bucket per caller shared
  by every worker process (and every host using that Redis). The configured limit is
  global, whatever the number of workers; Redis unreachable answers 503 (fail closed).
* not set, one worker: an in-process bucket with the configured limit.
* not set, ``N`` workers: each worker holds its own bucket per caller with ``1/N`` of
  the limit: a burst of ``max_requests_per_minute // N`` and a refill of
  ``max_requests_per_minute / N`` per minute.

Why split rather than give each worker the whole limit: the limit is a ceiling an
operator sets to protect the service, and with the whole limit per worker a caller
spreading over ``N`` connections would be admitted ``N`` times it. Split, the callers'
total over all workers never exceeds the configured limit, exactly. The cost is on the
other side: a caller whose requests all land on one worker (one keep-alive connection)
is held to ``1/N`` of the limit. Set ``KAILASH_NB_REDIS_URL`` for the exact global
limit; a limit below ``N`` cannot be split and is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.middleware.ratelimit import (
    REDIS_URL_ENV,
    InProcessRateLimiter,
    RateLimiter,
    rate_limiter_from_env,
)
from kailash_nb.security.config import SecurityConfig

__all__ = ["gateway_rate_limiter"]

logger = logging.getLogger(__name__)


def gateway_rate_limiter(
    config: SecurityConfig | None,
    workers: int = 1,
    *,
    environ: Mapping[str, str] | None = None,
) -> RateLimiter | None:
    """The limiter for a gateway served by ``workers`` processes, or ``None`` when
    rate limiting is off (no ``security_config`` or ``enable_rate_limiting=False``).

    Created before the workers fork: neither limiter opens a connection or a thread
    until its first request, which each worker makes on its own event loop.

    Raises:
        GatewayConfigurationError: several workers, no Redis, and a limit below the
            number of workers (it cannot be split).
        ImportError: ``KAILASH_NB_REDIS_URL`` is set but ``redis`` is not installed.
    """
    if config is None or not config.enable_rate_limiting:
        return None
    rate = config.max_requests_per_minute
    limiter = rate_limiter_from_env(rate, environ=environ)
    if workers == 1 or not isinstance(limiter, InProcessRateLimiter):
        return limiter
    share = rate // workers
    if share < 1:
        raise GatewayConfigurationError(
            f"max_requests_per_minute={rate} cannot be split over worker_processes={workers} "
            f"(each worker enforces its share without {REDIS_URL_ENV}); set {REDIS_URL_ENV} "
            "to share one limit through Redis, raise the limit or use fewer workers"
        )
    logger.warning(
        "rate limit split over %d workers: each worker admits %d requests per caller and "
        "minute (%d in total); set %s to enforce one global limit through Redis",
        workers,
        share,
        share * workers,
        REDIS_URL_ENV,
    )
    return InProcessRateLimiter(rate / workers, burst=share)
