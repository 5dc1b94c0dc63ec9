"""Fixtures for the gateway's service tests: the Redis server named by
``KAILASH_NB_TEST_REDIS_URL`` (``tools/ensure_redis.sh`` prints one).

Import them into a test module (``from gateway_fixtures import redis_prefix, redis_url``).
Without the variable the Redis tests are skipped, except under CI (``CI`` set), where a
missing Redis URL is an error, not a skip. Tests never flush the server: each one works
under its own key prefix, deleted afterwards.
"""

from __future__ import annotations

import os
import uuid

import pytest

REDIS_ENV = "KAILASH_NB_TEST_REDIS_URL"


@pytest.fixture(scope="session")
def redis_url():
    """URL of the test Redis server (skips without one, fails under CI)."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{REDIS_ENV} must be set in CI: the Redis suite may not be skipped")
        pytest.skip(f"Redis suite skipped: set {REDIS_ENV}=redis://127.0.0.1:6379/0")
    return url


@pytest.fixture
def redis_prefix(redis_url):
    """A key prefix private to this test; its keys are deleted when the test ends."""
    import redis

    prefix = f"kailash_nb_test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
