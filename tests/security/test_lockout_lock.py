"""``LoginThrottle.lock``: a key locked from outside (threat detection) for a while; a
longer lock already in force stays."""

from __future__ import annotations

import uuid

import pytest
from _clock import Clock

from kailash_nb.security import LoginLockedError
from kailash_nb.security.lockout import LoginThrottle, ThrottleKey, ThrottlePolicy
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import migrate


@pytest.fixture
def throttle(database_url):
    engine = get_engine(database_url)
    migrate(engine)
    return LoginThrottle(engine, clock=Clock())


def test_lock_refuses_until_it_ends_and_keeps_a_longer_lock(throttle):
    key = ThrottleKey("ip", f"192.0.2.{uuid.uuid4().int % 250}-{uuid.uuid4().hex}")
    throttle.check([key])
    assert throttle.lock(key, 60) == throttle.clock() + 60
    with pytest.raises(LoginLockedError) as caught:
        throttle.check([key])
    assert caught.value.retry_after == 60
    assert throttle.lock(key, 10) == throttle.clock() + 60  # the longer one stays
    throttle.clock.advance(61)
    throttle.check([key])
    # A locked key still counts failures as before.
    policy = ThrottlePolicy(max_failures=2, window=60, lockout=30, max_lockout=60)
    assert throttle.record_failure([(key, policy)]) == 0
    assert throttle.record_failure([(key, policy)]) == 30


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), "60"])
def test_lock_needs_a_positive_duration(throttle, seconds):
    with pytest.raises(ValueError, match="more than 0 seconds"):
        throttle.lock(ThrottleKey("ip", "192.0.2.1"), seconds)
