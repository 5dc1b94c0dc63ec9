"""The verified-access-token cache of ``TokenService``: a hit skips decoding, never
outlives the token's ``exp`` or the 1 s revocation bound, and never hides a revocation
or a retired key."""

from __future__ import annotations

import pytest
from _clock import Clock

from kailash_nb.security import AuthenticationError, SecurityConfig, TokenService
from kailash_nb.security._verified_cache import VerifiedTokenCache

SECRET = "kailash-nb-verified-cache-tests-0123456789"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path, clock) -> TokenService:
    config = SecurityConfig(jwt_secret=SECRET, access_token_ttl=60)
    return TokenService(config, f"sqlite:///{tmp_path / 'auth.db'}", clock=clock)


def test_second_verification_is_a_cache_hit_with_the_same_claims(service):
    token = service.issue("alice", tenant_id="acme", roles=["analyst"]).access_token
    first = service.verify_access(token)
    assert len(service._verified) == 1
    second = service.verify_access(token)
    assert second is first


def test_hit_is_refused_once_the_token_expires(service, clock):
    token = service.issue("alice", tenant_id="acme", roles=[]).access_token
    claims = service.verify_access(token)
    clock.now = claims.exp  # exp is exclusive: a token at exp is expired
    with pytest.raises(AuthenticationError) as caught:
        service.verify_access(token)
    assert caught.value.code == "token_expired"


def test_revoked_session_is_refused_on_a_cache_hit(service):
    pair = service.issue("alice", tenant_id="acme", roles=[])
    service.verify_access(pair.access_token)
    service.revoke_session(pair.session_id)
    with pytest.raises(AuthenticationError) as caught:
        service.verify_access(pair.access_token)
    assert caught.value.code == "token_revoked"


def test_a_verification_is_reused_for_at_most_one_second(service, clock):
    token = service.issue("alice", tenant_id="acme", roles=[]).access_token
    service.verify_access(token)
    cache = service._verified
    assert cache.get(token) is not None
    clock.now += 1.0
    assert cache.get(token) is None
    assert len(cache) == 0


def test_tampered_token_is_never_served_from_the_cache(service):
    token = service.issue("alice", tenant_id="acme", roles=[]).access_token
    service.verify_access(token)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}AA"
    with pytest.raises(AuthenticationError):
        service.verify_access(forged)


def test_refresh_token_never_enters_the_access_cache(service):
    pair = service.issue("alice", tenant_id="acme", roles=[])
    with pytest.raises(AuthenticationError) as caught:
        service.verify_access(pair.refresh_token)
    assert caught.value.code == "wrong_token_type"
    assert len(service._verified) == 0


def test_cache_memory_is_bounded_under_many_distinct_tokens(service, clock):
    """LOAD-05: distinct principals never grow the cache past its capacity."""
    cache = VerifiedTokenCache(1.0, capacity=50, clock=clock)
    claims = service.verify_access(service.issue("a", tenant_id="t", roles=[]).access_token)
    for index in range(500):
        cache.put(f"token-{index}", claims)
    assert len(cache) == 50
    assert cache.get("token-499") is claims
    assert cache.get("token-0") is None


def test_zero_reuse_disables_the_cache(tmp_path, clock):
    config = SecurityConfig(jwt_secret=SECRET)
    service = TokenService(
        config, f"sqlite:///{tmp_path / 'a.db'}", clock=clock, revocation_cache_seconds=0
    )
    token = service.issue("alice", tenant_id="acme", roles=[]).access_token
    service.verify_access(token)
    assert len(service._verified) == 0
