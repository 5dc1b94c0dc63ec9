"""Token-bucket rate limiting: the bucket math on a fake clock (LOAD-02), bounded memory
(LOAD-05), concurrency, and the Redis limiter shared by workers (LOAD-04) that fails
closed when Redis is down."""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
import sys
import threading
import time

import pytest
from _clock import Clock

from kailash_nb.middleware.ratelimit import (
    InProcessRateLimiter,
    RateDecision,
    RateLimiter,
    RateLimiterUnavailableError,
    RedisRateLimiter,
    rate_limiter_from_env,
)


async def saturate(limiters, clock, *, seconds, requests_per_second, key="tenant:a"):
    """Offer ``requests_per_second`` for ``seconds`` round-robin over ``limiters``."""
    decisions = []
    step = 1 / requests_per_second
    for i in range(int(seconds * requests_per_second)):
        decisions.append(await limiters[i % len(limiters)].acquire(key))
        clock.advance(step)
    return decisions


def check_saturation(decisions, *, rate, burst, seconds):
    admitted = sum(d.allowed for d in decisions)
    expected = burst + rate * seconds
    assert abs(admitted - expected) <= 0.02 * expected, (admitted, expected)
    for decision in decisions:
        if not decision.allowed:
            assert 0 < decision.retry_after <= 1 / rate + 1e-9
            assert decision.headers()["Retry-After"] == str(math.ceil(decision.retry_after))


# --- bucket math --------------------------------------------------------------------------


def test_burst_then_refusal_with_retry_after():
    clock = Clock()
    limiter = InProcessRateLimiter(requests_per_minute=120, burst=5, clock=clock)  # 2/s
    decisions = [limiter.try_acquire("k") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    refused = decisions[-1]
    assert refused == RateDecision(False, 0.5, 0, 5)
    assert refused.headers() == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "Retry-After": "1",
    }
    clock.advance(0.5)
    assert limiter.try_acquire("k").allowed
    assert not limiter.try_acquire("k").allowed


def test_retry_after_is_the_ceiling_of_the_wait():
    clock = Clock()
    limiter = InProcessRateLimiter(requests_per_minute=6, burst=1, clock=clock)  # 1 per 10 s
    assert limiter.try_acquire("k").allowed
    first = limiter.try_acquire("k")
    assert first.retry_after == pytest.approx(10.0)
    assert first.retry_after_seconds == 10
    clock.advance(2.5)
    later = limiter.try_acquire("k")
    assert later.retry_after == pytest.approx(7.5)
    assert later.headers()["Retry-After"] == "8"
    clock.advance(7.5)
    assert limiter.try_acquire("k").allowed


def test_allowed_decision_has_no_retry_after():
    decision = InProcessRateLimiter(60).try_acquire("k")
    assert decision.allowed and decision.retry_after == 0 and decision.retry_after_seconds == 0
    assert "Retry-After" not in decision.headers()


def test_saturated_key_is_admitted_rate_times_t_plus_burst():
    """LOAD-02: one key at 2x its limit for 60 s."""
    clock = Clock()
    limiter = InProcessRateLimiter(requests_per_minute=600, burst=20, clock=clock)  # 10/s
    decisions = asyncio.run(saturate([limiter], clock, seconds=60, requests_per_second=20))
    check_saturation(decisions, rate=10, burst=20, seconds=60)


def test_buckets_refill_only_up_to_the_burst():
    clock = Clock()
    limiter = InProcessRateLimiter(requests_per_minute=60, burst=3, clock=clock)
    assert limiter.try_acquire("k").allowed
    clock.advance(3600)
    assert [limiter.try_acquire("k").allowed for _ in range(4)] == [True, True, True, False]


def test_a_clock_stepping_back_refills_nothing():
    clock = Clock()
    limiter = InProcessRateLimiter(requests_per_minute=60, burst=1, clock=clock)
    assert limiter.try_acquire("k").allowed
    clock.advance(-100)
    assert not limiter.try_acquire("k").allowed
    clock.advance(101)
    assert limiter.try_acquire("k").allowed


def test_cost_takes_several_tokens():
    clock = Clock()
    limiter = InProcessRateLimiter(requests_per_minute=60, burst=5, clock=clock)
    assert limiter.try_acquire("k", cost=3).remaining == 2
    refused = limiter.try_acquire("k", cost=3)
    assert not refused.allowed and refused.retry_after == pytest.approx(1.0)
    for cost in (0, -1, 6, 1.5, True):
        with pytest.raises(ValueError, match="cost must be an int between 1 and the burst"):
            limiter.try_acquire("k", cost=cost)


def test_keys_have_independent_buckets():
    """A tenant draining its bucket does not touch another tenant's (LOAD-03)."""
    clock = Clock()
    limiter = InProcessRateLimiter(requests_per_minute=60, burst=2, clock=clock)
    assert [limiter.try_acquire("tenant:a").allowed for _ in range(5)] == [True] * 2 + [False] * 3
    assert limiter.try_acquire("tenant:b").allowed


def test_default_burst_is_one_minute_of_requests():
    limiter = InProcessRateLimiter(requests_per_minute=90)
    assert limiter.limit == 90
    assert InProcessRateLimiter(requests_per_minute=0.5).limit == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"requests_per_minute": 0}, "requests_per_minute must be > 0"),
        ({"requests_per_minute": -5}, "requests_per_minute must be > 0"),
        ({"requests_per_minute": float("nan")}, "requests_per_minute must be > 0"),
        ({"requests_per_minute": float("inf")}, "requests_per_minute must be > 0"),
        ({"requests_per_minute": 60, "burst": 0}, "burst must be an int >= 1"),
        ({"requests_per_minute": 60, "burst": 2.5}, "burst must be an int >= 1"),
        ({"requests_per_minute": 60, "max_keys": 0}, "max_keys must be an int >= 1"),
    ],
)
def test_invalid_configuration_is_refused(options, message):
    with pytest.raises(ValueError, match=message):
        InProcessRateLimiter(**options)


# --- bounded memory (LOAD-05) -----------------------------------------------------------


def test_100k_distinct_keys_stay_within_max_keys():
    clock = Clock()
    limiter = InProcessRateLimiter(requests_per_minute=60, burst=2, max_keys=10_000, clock=clock)
    limiter.try_acquire("victim")
    limiter.try_acquire("victim")
    for i in range(100_000):
        assert limiter.try_acquire(f"principal-{i}").allowed
        if i % 1000 == 0:
            assert not limiter.try_acquire("victim").allowed  # recently used: kept
    assert len(limiter) == 10_000
    # The least recently used keys were dropped and start again with a full bucket.
    assert limiter.try_acquire("principal-0").remaining == 1


def test_default_bound_is_100k_keys():
    limiter = InProcessRateLimiter(requests_per_minute=60, clock=Clock())
    for i in range(100_001):
        limiter.try_acquire(str(i))
    assert len(limiter) == 100_000


def test_long_keys_are_kept_by_digest():
    clock = Clock()
    limiter = InProcessRateLimiter(requests_per_minute=60, burst=1, clock=clock)
    long_a, long_b = "a" * 1_000_000, "a" * 999_999 + "b"
    assert limiter.try_acquire(long_a).allowed
    assert not limiter.try_acquire(long_a).allowed
    assert limiter.try_acquire(long_b).allowed  # a different bucket
    assert limiter.try_acquire("\ud800" * 200).allowed  # lone surrogates are fine
    stored = list(limiter._buckets)
    assert all(not isinstance(key, str) and len(key[0]) == 32 for key in stored)


# --- concurrency ------------------------------------------------------------------------


def test_many_asyncio_tasks_share_one_bucket_exactly():
    limiter = InProcessRateLimiter(requests_per_minute=60, burst=100, clock=Clock())

    async def main():
        return await asyncio.gather(*(limiter.acquire("k") for _ in range(1_000)))

    decisions = asyncio.run(main())
    assert sum(d.allowed for d in decisions) == 100


def test_threads_share_one_bucket_exactly():
    limiter = InProcessRateLimiter(requests_per_minute=60, burst=500, clock=Clock())
    admitted = []

    def worker():
        admitted.append(sum(limiter.try_acquire("k").allowed for _ in range(1_000)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 500


# --- choosing a backend -------------------------------------------------------------------


def test_rate_limiter_from_env_picks_redis_only_when_configured():
    in_process = rate_limiter_from_env(60, environ={})
    assert isinstance(in_process, InProcessRateLimiter)
    assert isinstance(
        rate_limiter_from_env(60, environ={"KAILASH_NB_REDIS_URL": " "}), InProcessRateLimiter
    )
    shared = rate_limiter_from_env(
        60, burst=7, environ={"KAILASH_NB_REDIS_URL": "redis://127.0.0.1:6379/0"}
    )
    assert isinstance(shared, RedisRateLimiter) and shared.limit == 7
    assert isinstance(in_process, RateLimiter) and isinstance(shared, RateLimiter)
    asyncio.run(shared.aclose())


# --- Redis ----------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redis_down_fails_closed_with_a_typed_error():
    url = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"

    async def main():
        limiter = RedisRateLimiter(url, requests_per_minute=60)
        started = time.perf_counter()
        with pytest.raises(RateLimiterUnavailableError, match="fail closed") as caught:
            await limiter.acquire("k")
        await limiter.aclose()
        return caught.value, time.perf_counter() - started

    error, elapsed = asyncio.run(main())
    assert elapsed < 2.5
    assert "hunter2" not in str(error) and "hunter2" not in error.url
    assert error.url.endswith(":***@127.0.0.1:" + url.rsplit(":", 1)[1])
    assert error.retry_after > 0


def test_redis_limiter_shared_by_two_workers_holds_the_limit(redis_url, redis_prefix):
    """Two limiter instances (two workers) at 2x the limit: one global bucket."""
    clock = Clock(1_700_000_000.0)

    async def main():
        workers = [
            RedisRateLimiter(redis_url, 600, burst=20, prefix=redis_prefix, clock=clock)
            for _ in range(2)
        ]
        decisions = await saturate(workers, clock, seconds=30, requests_per_second=20)
        for worker in workers:
            await worker.aclose()
        return decisions

    check_saturation(asyncio.run(main()), rate=10, burst=20, seconds=30)


def test_redis_limiter_matches_the_in_process_math(redis_url, redis_prefix):
    clock = Clock(1_700_000_000.0)

    async def main():
        async with RedisRateLimiter(
            redis_url, 120, burst=5, prefix=redis_prefix, clock=clock
        ) as limiter:
            decisions = [await limiter.acquire("k") for _ in range(6)]
            clock.advance(0.5)
            decisions.append(await limiter.acquire("k"))
            decisions.append(await limiter.acquire("other"))
            decisions.append(await limiter.acquire("k", cost=5))
            return decisions

    decisions = asyncio.run(main())
    assert [d.allowed for d in decisions] == [True] * 5 + [False, True, True, False]
    assert [d.remaining for d in decisions[:6]] == [4, 3, 2, 1, 0, 0]
    assert decisions[5].retry_after == pytest.approx(0.5)
    assert decisions[5].headers()["Retry-After"] == "1"
    assert decisions[8].retry_after == pytest.approx(2.5)


def test_redis_concurrent_tasks_share_one_bucket_exactly(redis_url, redis_prefix):
    clock = Clock(1_700_000_000.0)

    async def main():
        workers = [
            RedisRateLimiter(redis_url, 60, burst=100, prefix=redis_prefix, clock=clock)
            for _ in range(2)
        ]
        decisions = await asyncio.gather(*(workers[i % 2].acquire("k") for i in range(400)))
        for worker in workers:
            await worker.aclose()
        return decisions

    assert sum(d.allowed for d in asyncio.run(main())) == 100


def test_redis_buckets_expire_and_long_keys_are_hashed(redis_url, redis_prefix):
    import redis

    async def main():
        async with RedisRateLimiter(redis_url, 60, burst=10, prefix=redis_prefix) as limiter:
            await limiter.acquire("short")
            await limiter.acquire("x" * 100_000)
            return limiter.redis_key("short"), limiter.redis_key("x" * 100_000)

    short_key, long_key = asyncio.run(main())
    assert len(long_key) == len(redis_prefix) + 2 + 64
    client = redis.Redis.from_url(redis_url)
    try:
        for key in (short_key, long_key):
            # A bucket lives as long as it takes to refill (10 s), plus a second.
            assert 0 < client.pttl(key) <= 11_000
            assert float(client.hget(key, "tokens")) == pytest.approx(9, abs=0.01)
    finally:
        client.close()


def test_redis_limiter_reconnects_after_its_connection_is_dropped(redis_url, redis_prefix):
    """A Redis restart closes pooled connections; the next request retries once."""
    import redis

    async def main():
        async with RedisRateLimiter(redis_url, 60, burst=3, prefix=redis_prefix) as limiter:
            assert (await limiter.acquire("k")).allowed
            connection_id = await limiter._client.client_id()
            killer = redis.Redis.from_url(redis_url)
            try:
                assert killer.client_kill_filter(_id=connection_id) == 1
            finally:
                killer.close()
            decision = await limiter.acquire("k")
            assert decision.allowed and decision.remaining == 1
            assert await limiter._client.client_id() != connection_id

    asyncio.run(main())


WORKER = """
import asyncio, sys
from kailash_nb.middleware.ratelimit import RedisRateLimiter

url, prefix, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def main():
    # One token a minute: during the test the bucket only drains, so the number of
    # admitted requests across all processes must be exactly the burst, however the
    # processes interleave and however loaded the machine is.
    limiter = RedisRateLimiter(url, 1, burst=300, prefix=prefix)
    admitted = 0
    for _ in range(requests):
        admitted += (await limiter.acquire("global")).allowed
    await limiter.aclose()
    print(admitted)

asyncio.run(main())
"""


def test_four_worker_processes_hold_the_global_limit(redis_url, redis_prefix):
    """LOAD-04: 4 processes draw from one shared bucket; together they get exactly its
    tokens, never a bucket each."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_url, redis_prefix, "200"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    admitted = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        admitted.append(int(out))
    assert sum(admitted) == 300, admitted
    assert max(admitted) < 300 or sum(1 for count in admitted if count) == 1
