"""TokenService against hostile tokens: one test (or more) per AUTH checklist item, named
after its id, with tokens forged by pyjwt or by hand.

Store-backed behaviour (refresh rotation, reuse detection, revocation) runs on SQLite and
PostgreSQL through ``database_url``; pure verification runs on a SQLite file.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import sqlalchemy as sa
from _clock import Clock
from _keys import private_pem, public_pem
from _tokens import DELETE, TEST_JWT_SECRET, b64, claims, segment, sign_hs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kailash_nb.security import (
    RESERVED_CLAIMS,
    AuthenticationError,
    ClaimsError,
    RetiredKey,
    SecurityConfig,
    SecurityConfigurationError,
    TokenService,
)
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import (
    SCHEMA_VERSION,
    auth_used_refresh_tokens,
    runs,
    schema_table,
)

ISSUER = "https://auth.example.com"
AUDIENCE = "kailash-api"


# -- keys and clocks -----------------------------------------------------------------


@pytest.fixture(scope="module")
def old_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock():
    return Clock(float(int(time.time())))


_SERVICE_OPTIONS = (
    "refresh_tokens",
    "check_sessions",
    "audit",
    "jwks_fetcher",
    "revocation_cache_seconds",
)


@pytest.fixture
def make_service(sqlite_url, clock):
    """``make_service(url=None, **config_and_service_options) -> TokenService``."""

    def make(url=None, **options):
        service_options = {name: options.pop(name) for name in _SERVICE_OPTIONS if name in options}
        if options.get("jwt_algorithm", "HS256") == "HS256":
            options.setdefault("jwt_secret", TEST_JWT_SECRET)
        return TokenService(
            SecurityConfig(**options), url or sqlite_url, clock=clock, **service_options
        )

    return make


@pytest.fixture
def service(make_service):
    return make_service()


# -- forging ----------------------------------------------------------------------


def raw_token(header, payload, signature: bytes = b"") -> str:
    return f"{segment(header)}.{segment(payload)}.{b64(signature)}"


def forge(service, payload, *, key=TEST_JWT_SECRET, algorithm="HS256", **headers) -> str:
    """A pyjwt-signed token with the service's kid unless ``kid`` is given."""
    headers.setdefault("kid", service.config.key_id)
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def refused(check, token, code: str) -> AuthenticationError:
    """Assert ``check(token)`` raises ``AuthenticationError(code)`` without echoing it."""
    with pytest.raises(AuthenticationError) as caught:
        check(token)
    error = caught.value
    assert error.code == code, f"{error.code}: {error}"
    if isinstance(token, str):
        for part in token.split("."):
            if len(part) >= 8:
                assert part not in str(error) and part not in repr(error)
    return error


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every outbound connection attempt made from Python."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is not allowed in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


# -- the happy path -------------------------------------------------------------------


def test_issue_and_verify_round_trip(make_service, clock):
    service = make_service(issuer=ISSUER, audience=AUDIENCE)
    pair = service.issue("user-1", tenant_id="acme", roles=["analyst"], extra={"team": "blue"})
    claims_ = service.verify_access(pair.access_token)
    assert (claims_.sub, claims_.tenant_id, claims_.roles) == ("user-1", "acme", ["analyst"])
    assert claims_.token_type == "access" and claims_.extra == {"team": "blue"}
    assert (claims_.iss, claims_.aud) == (ISSUER, AUDIENCE)
    assert claims_.iat == claims_.nbf == int(clock.now)
    assert claims_.exp == int(clock.now) + 900 and pair.expires_in == 900
    header = jwt.get_unverified_header(pair.access_token)
    assert header == {"alg": "HS256", "kid": service.config.key_id, "typ": "JWT"}
    refresh = service.verify_refresh(pair.refresh_token)
    assert refresh.token_type == "refresh" and refresh.family == claims_.family == pair.session_id
    assert refresh.jti != claims_.jti
    assert refresh.exp == int(clock.now) + 8 * 3600 == int(clock.now) + pair.refresh_expires_in
    assert "eyJ" not in repr(pair)  # tokens stay out of reprs and logs


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_asymmetric_round_trip_and_verify_only_service(make_service, rsa_key, ec_key, algorithm):
    key = rsa_key if algorithm == "RS256" else ec_key
    issuer = make_service(jwt_algorithm=algorithm, jwt_private_key=private_pem(key))
    pair = issuer.issue("svc", tenant_id="acme", roles=[])
    verifier = make_service(jwt_algorithm=algorithm, jwt_public_key=public_pem(key))
    assert verifier.verify_access(pair.access_token).sub == "svc"
    with pytest.raises(SecurityConfigurationError, match="jwt_private_key"):
        verifier.issue("svc", tenant_id="acme", roles=[])


def test_forged_baseline_token_is_accepted(service, clock):
    """The forging helpers make valid tokens, so each refusal below is the hostile part's."""
    assert service.verify_access(forge(service, claims(clock.now))).sub == "user-1"
    assert service.verify_access(sign_hs(_header(service), claims(clock.now))).sub == "user-1"


def _header(service, **fields):
    return {"alg": "HS256", "typ": "JWT", "kid": service.config.key_id, **fields}


# -- AUTH-03 .. AUTH-11: signature, algorithm and registered claims ---------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", [b"", b"forged-signature"])
def test_auth_03_alg_none_variants_rejected(make_service, rsa_key, clock, alg, signature):
    """AUTH-03: alg "none" variants rejected."""
    hs = make_service()
    rs = make_service(jwt_algorithm="RS256", jwt_private_key=private_pem(rsa_key))
    for service in (hs, rs):
        header = {"alg": alg, "typ": "JWT", "kid": service.config.key_id}
        token = raw_token(header, claims(clock.now), signature)
        error = refused(service.verify_access, token, "token_invalid")
        assert "algorithm" in str(error)
    if alg == "none" and not signature:
        pyjwt_token = jwt.encode(claims(clock.now), None, algorithm="none")
        refused(hs.verify_access, pyjwt_token, "token_invalid")
    no_alg = raw_token({"typ": "JWT", "kid": hs.config.key_id}, claims(clock.now), signature)
    refused(hs.verify_access, no_alg, "token_invalid")


@pytest.mark.parametrize(
    "fmt", [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1]
)
def test_auth_04_hs256_signed_with_the_rsa_public_pem_rejected(make_service, rsa_key, clock, fmt):
    """AUTH-04: HS256 signed with the RSA public PEM rejected."""
    service = make_service(jwt_algorithm="RS256", jwt_private_key=private_pem(rsa_key))
    pem = public_pem(rsa_key, fmt)
    for key in (pem, pem.strip()):
        header = {"alg": "HS256", "typ": "JWT", "kid": service.config.key_id}
        token = sign_hs(header, claims(clock.now), key)
        assert "algorithm is not allowed" in str(
            refused(service.verify_access, token, "token_invalid")
        )
        # The same HMAC under an RS256 header only fails the RSA signature check.
        relabelled = sign_hs({**header, "alg": "RS256"}, claims(clock.now), key)
        assert "signature" in str(refused(service.verify_access, relabelled, "token_invalid"))


def test_auth_05_rs256_and_es256_tokens_rejected_by_an_hs256_service(
    service, attacker_rsa, ec_key, clock
):
    """AUTH-05: RS256 and ES256 tokens rejected by an HS256 service."""
    for key, algorithm in ((attacker_rsa, "RS256"), (ec_key, "ES256")):
        token = forge(service, claims(clock.now), key=key, algorithm=algorithm)
        assert "algorithm" in str(refused(service.verify_access, token, "token_invalid"))


@pytest.mark.parametrize(
    "claim", ["exp", "iat", "nbf", "sub", "jti", "token_type", "tenant_id", "roles", "family"]
)
def test_auth_06_token_without_a_required_claim_rejected(service, clock, claim):
    """AUTH-06: token without a required claim rejected."""
    for value in (DELETE, None):
        token = forge(service, claims(clock.now, **{claim: value}))
        error = refused(service.verify_access, token, "token_invalid")
        assert claim in str(error)


def test_auth_07_exp_enforced_at_the_second_without_leeway(make_service, clock):
    """AUTH-07: exp enforced at the second without leeway."""
    service = make_service(leeway=10)
    now = int(clock.now)
    for exp in (now, now - 10 - 1):
        token = forge(service, claims(now, iat=now - 60, nbf=now - 60, exp=exp))
        assert "expired" in str(refused(service.verify_access, token, "token_expired"))
    token = forge(service, claims(now, exp=now + 1))
    assert service.verify_access(token).exp == now + 1
    clock.now += 1
    refused(service.verify_access, token, "token_expired")


def test_auth_08_nbf_or_iat_beyond_leeway_in_the_future_rejected(make_service, clock):
    """AUTH-08: nbf or iat beyond leeway in the future rejected."""
    service = make_service(leeway=10)
    now = int(clock.now)
    for overrides in ({"nbf": now + 11}, {"iat": now + 11}, {"iat": now + 11, "nbf": now + 11}):
        token = forge(service, claims(now, exp=now + 300, **overrides))
        assert "not valid yet" in str(refused(service.verify_access, token, "token_invalid"))
    within = forge(service, claims(now, iat=now + 10, nbf=now + 10, exp=now + 300))
    assert service.verify_access(within).nbf == now + 10


@pytest.mark.parametrize(
    "exp",
    [
        "9999999999",
        "tomorrow",
        float("nan"),
        float("inf"),
        10**30,
        [4102444800],
        {"t": 1},
        True,
        1e10 + 0.5,
    ],
)
def test_auth_09_exp_type_confusion_rejected(service, clock, exp):
    """AUTH-09: exp type confusion rejected."""
    token = forge(service, claims(clock.now, exp=exp))
    refused(service.verify_access, token, "token_invalid")


@pytest.mark.parametrize(
    "iss",
    [
        DELETE,
        None,
        "https://evil.example.com",
        "auth.example.com",  # substring
        "https://auth.example",  # prefix
        "https://auth.example.com.evil.io",  # ours as a prefix
        "https://auth.example.com/",
        "HTTPS://AUTH.EXAMPLE.COM",
        "",
        [ISSUER],
        {"iss": ISSUER},
    ],
)
def test_auth_10_issuer_must_match_exactly(make_service, clock, iss):
    """AUTH-10: issuer must match exactly."""
    service = make_service(issuer=ISSUER)
    assert service.verify_access(forge(service, claims(clock.now, issuer=ISSUER))).iss == ISSUER
    token = sign_hs(_header(service), claims(clock.now, iss=iss))  # pyjwt refuses non-str iss
    refused(service.verify_access, token, "token_invalid")


@pytest.mark.parametrize(
    "aud", [DELETE, None, "other-api", "kailash", "kailash-api-2", [], ["other", "x"], 7]
)
def test_auth_11_audience_must_name_this_service(make_service, clock, aud):
    """AUTH-11: audience must name this service."""
    service = make_service(audience=AUDIENCE)
    token = forge(service, claims(clock.now, aud=aud))
    refused(service.verify_access, token, "token_invalid")
    listed = forge(service, claims(clock.now, aud=["other", AUDIENCE]))
    assert AUDIENCE in service.verify_access(listed).aud


def test_auth_11_token_with_an_audience_refused_by_a_service_without_one(service, clock):
    """AUTH-11: token with an audience refused by a service without one."""
    token = forge(service, claims(clock.now, aud=AUDIENCE))
    assert "audience" in str(refused(service.verify_access, token, "token_invalid"))


# -- AUTH-12 .. AUTH-14: token types and refresh rotation --------------------------------


def test_auth_12_refresh_token_rejected_as_access(make_service, database_url):
    """AUTH-12: refresh token rejected as access."""
    service = make_service(database_url)
    pair = service.issue("user-1", tenant_id="acme", roles=["analyst"])
    error = refused(service.verify_access, pair.refresh_token, "wrong_token_type")
    assert "refresh token was presented where an access token is required" in str(error)


def test_auth_13_access_token_rejected_by_refresh(make_service, database_url):
    """AUTH-13: access token rejected by refresh."""
    service = make_service(database_url)
    pair = service.issue("user-1", tenant_id="acme", roles=["analyst"])
    refused(service.refresh, pair.access_token, "wrong_token_type")
    refused(service.verify_refresh, pair.access_token, "wrong_token_type")
    access_jti = service.verify_access(pair.access_token).jti
    with get_engine(database_url).connect() as connection:
        used = connection.execute(
            sa.select(auth_used_refresh_tokens).where(auth_used_refresh_tokens.c.jti == access_jti)
        ).first()
    assert used is None  # nothing was recorded, the session goes on
    assert service.refresh(pair.refresh_token).session_id == pair.session_id


def test_auth_14_refresh_reuse_revokes_the_whole_family(make_service, database_url, clock):
    """AUTH-14: refresh reuse revokes the whole family."""
    service = make_service(database_url)
    first = service.issue("user-1", tenant_id="acme", roles=["analyst"])
    other = service.issue("user-2", tenant_id="acme", roles=[])
    clock.now += 60
    second = service.refresh(first.refresh_token)
    assert second.session_id == first.session_id
    assert service.verify_access(second.access_token).sub == "user-1"
    clock.now += 60
    third = service.refresh(second.refresh_token)

    error = refused(service.refresh, first.refresh_token, "token_revoked")  # the reuse
    assert "already used" in str(error)
    for token in (second.refresh_token, third.refresh_token):  # the newest included
        refused(service.refresh, token, "token_revoked")
    for token in (first.access_token, second.access_token, third.access_token):
        refused(service.verify_access, token, "token_revoked")

    events = service.audit_events(event="refresh_reuse_detected", session_id=first.session_id)
    assert len(events) == 1 and events[0].subject == "user-1" and events[0].tenant_id == "acme"
    assert events[0].detail["session_revoked_now"] is True
    assert TEST_JWT_SECRET not in json.dumps(events[0].detail)
    assert service.verify_access(other.access_token).sub == "user-2"  # other sessions live on
    assert service.refresh(other.refresh_token).session_id == other.session_id


def test_auth_14_reuse_is_detected_across_processes(make_service, database_url):
    """AUTH-14: reuse is detected across processes."""
    service = make_service(database_url, check_sessions=True)
    first = service.issue("user-1", tenant_id="acme", roles=[])
    second = service.refresh(first.refresh_token)
    script = textwrap.dedent(
        """
        import sys
        from kailash_nb.security import AuthenticationError, SecurityConfig, TokenService
        url, secret, token = sys.argv[1], sys.argv[2], sys.stdin.read()
        service = TokenService(SecurityConfig(jwt_secret=secret), url)
        try:
            service.refresh(token)
        except AuthenticationError as error:
            print(error.code)
        else:
            print("accepted")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, database_url, TEST_JWT_SECRET],
        input=first.refresh_token,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "token_revoked", result.stderr
    # The other process's revocation holds here.
    refused(service.refresh, second.refresh_token, "token_revoked")
    refused(service.verify_access, second.access_token, "token_revoked")


def test_auth_14_concurrent_uses_of_one_refresh_token_mint_at_most_once(make_service, database_url):
    """Eight simultaneous uses of one refresh token: the store lets exactly one claim it;
    the other seven are reuses, so the session is revoked. The claimant may or may not
    get its pair out before the revocation lands; either way no usable pair survives."""
    service = make_service(database_url)
    pair = service.issue("user-1", tenant_id="acme", roles=[])
    jti = service.verify_refresh(pair.refresh_token).jti
    barrier = threading.Barrier(8)
    outcomes: list[object] = []

    def use() -> None:
        barrier.wait()
        try:
            outcomes.append(service.refresh(pair.refresh_token))
        except AuthenticationError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [outcome for outcome in outcomes if not isinstance(outcome, str)]
    assert len(outcomes) == 8 and len(winners) <= 1
    assert [outcome for outcome in outcomes if isinstance(outcome, str)] == ["token_revoked"] * (
        8 - len(winners)
    )
    with get_engine(database_url).connect() as connection:
        claimed = connection.execute(
            sa.select(sa.func.count()).where(auth_used_refresh_tokens.c.jti == jti)
        ).scalar_one()
    assert claimed == 1
    for winner in winners:
        refused(service.refresh, winner.refresh_token, "token_revoked")
        refused(service.verify_access, winner.access_token, "token_revoked")
    refused(service.verify_access, pair.access_token, "token_revoked")


def test_refresh_keeps_the_session_end_and_claims(make_service, database_url, clock):
    service = make_service(database_url)
    pair = service.issue("user-1", tenant_id="acme", roles=["a"], extra={"team": "blue"})
    session_end = service.verify_refresh(pair.refresh_token).exp
    clock.now += 3600
    rotated = service.refresh(pair.refresh_token, roles=["b"])
    refreshed = service.verify_refresh(rotated.refresh_token)
    access = service.verify_access(rotated.access_token)
    assert refreshed.exp == session_end  # rotation never extends a session
    assert rotated.refresh_expires_in == session_end - int(clock.now)
    assert access.roles == ["b"] and access.extra == {"team": "blue"}
    clock.now = session_end - 60  # the last access token ends with the session
    last = service.refresh(rotated.refresh_token)
    assert service.verify_access(last.access_token).exp == session_end
    clock.now = session_end
    refused(service.refresh, last.refresh_token, "token_expired")


def test_logout_revokes_the_session_now_or_at_access_expiry(make_service, database_url, clock):
    stateful = make_service(database_url)
    pair = stateful.issue("user-1", tenant_id="acme", roles=[])
    assert stateful.revoke(pair.access_token) is True
    assert stateful.revoke_session(pair.session_id) is False  # already revoked
    refused(stateful.verify_access, pair.access_token, "token_revoked")
    refused(stateful.refresh, pair.refresh_token, "token_revoked")
    assert stateful.audit_events(event="session_revoked", session_id=pair.session_id)

    stateless = make_service(database_url, check_sessions=False)
    pair = stateless.issue("user-1", tenant_id="acme", roles=[])
    assert stateless.revoke(pair.refresh_token) is True
    assert stateless.verify_access(pair.access_token).sub == "user-1"  # until it expires
    refused(stateless.refresh, pair.refresh_token, "token_revoked")
    clock.now += 900
    refused(stateless.verify_access, pair.access_token, "token_expired")


def test_refresh_disabled_issues_no_refresh_token(make_service):
    service = make_service(refresh_tokens=False)
    pair = service.issue("user-1", tenant_id="acme", roles=[])
    assert pair.refresh_token is None and pair.refresh_expires_in is None
    refused(service.refresh, pair.access_token, "refresh_disabled")


def test_audit_can_be_turned_off(make_service, database_url):
    service = make_service(database_url, audit=False)
    pair = service.issue("user-1", tenant_id="acme", roles=[])
    service.refresh(pair.refresh_token)
    refused(service.refresh, pair.refresh_token, "token_revoked")
    assert service.audit_events(session_id=pair.session_id) == []


def test_purge_drops_only_rows_whose_tokens_expired(make_service, clock):
    service = make_service()
    pair = service.issue("user-1", tenant_id="acme", roles=[])
    service.refresh(pair.refresh_token)
    service.revoke_session(pair.session_id)
    assert service.purge_expired() == 0
    clock.now += 8 * 3600 + 1
    assert service.purge_expired() == 3  # the used token, the revocation, the session


# -- AUTH-16 .. AUTH-22: keys, headers, shapes and claim types ---------------------------


@pytest.mark.parametrize("algorithm", ["HS256", "RS256"])
def test_auth_16_previous_key_accepted_in_grace_window_then_rejected(
    make_service, clock, rsa_key, old_rsa_key, algorithm
):
    """AUTH-16: previous key accepted in grace window then rejected."""
    grace_end = datetime.fromtimestamp(clock.now + 60, UTC)
    if algorithm == "HS256":
        old_key, signing_key = "previous-secret-0123456789-abcdefghij", None
        retired = RetiredKey(kid="old-key", secret=old_key, accept_until=grace_end)
        current = {"jwt_secret": TEST_JWT_SECRET}
    else:
        old_key, signing_key = old_rsa_key, rsa_key
        retired = RetiredKey(
            kid="old-key", public_key=public_pem(old_rsa_key), accept_until=grace_end
        )
        current = {"jwt_private_key": private_pem(signing_key)}
    options = {"jwt_algorithm": algorithm, "previous_keys": [retired], **current}
    service = make_service(**options)
    old_token = forge(
        service,
        claims(clock.now, exp=int(clock.now) + 600),
        key=old_key,
        algorithm=algorithm,
        kid="old-key",
    )
    assert service.verify_access(old_token).sub == "user-1"  # inside the grace window
    new = service.issue("user-1", tenant_id="acme", roles=[])
    assert jwt.get_unverified_header(new.access_token)["kid"] == service.config.key_id != "old-key"

    clock.now += 61  # the window has closed; the token itself has not expired
    error = refused(service.verify_access, old_token, "token_invalid")
    assert "unknown or retired" in str(error)
    assert service.verify_access(new.access_token).sub == "user-1"
    # A retired key's kid on a token signed with the current key does not verify either.
    swapped = forge(
        service,
        claims(clock.now),
        key=signing_key or TEST_JWT_SECRET,
        algorithm=algorithm,
        kid="old-key",
    )
    refused(service.verify_access, swapped, "token_invalid")


def test_auth_17_unknown_kids_cost_no_network_and_no_reload(service, clock, no_network):
    """AUTH-17: unknown kids cost no network and no reload."""
    for index in range(1000):
        token = forge(service, claims(clock.now), kid=f"unknown-{index}")
        refused(service.verify_access, token, "token_invalid")
    assert no_network == []


def test_auth_17_jwks_loaded_at_most_once_per_cooldown(
    make_service, clock, rsa_key, attacker_rsa, no_network
):
    """AUTH-17: JWKS loaded at most once per cooldown."""
    url = "https://idp.example.com/.well-known/jwks.json"
    published = {"idp-1": rsa_key}
    fetches: list[str] = []

    def fetch(requested: str) -> bytes:
        fetches.append(requested)
        keys = []
        for kid, key in published.items():
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        keys.append(
            {"kty": "oct", "kid": "hmac", "k": b64(TEST_JWT_SECRET.encode())}
        )  # never usable
        return json.dumps({"keys": keys}).encode()

    service = make_service(
        jwt_algorithm="RS256", jwks_url=url, jwks_fetcher=fetch, jwks_refresh_cooldown=300
    )
    payload = claims(clock.now, exp=int(clock.now) + 900)
    for index in range(1000):
        token = forge(service, payload, key=attacker_rsa, algorithm="RS256", kid=f"kid-{index}")
        refused(service.verify_access, token, "token_invalid")
    assert fetches == [url]  # one download for a thousand unknown kids
    published_token = forge(service, payload, key=rsa_key, algorithm="RS256", kid="idp-1")
    assert service.verify_access(published_token).sub == "user-1"
    refused(
        service.verify_access,
        forge(service, payload, key=TEST_JWT_SECRET, kid="hmac"),
        "token_invalid",
    )
    assert fetches == [url]

    published["idp-2"] = rsa_key  # the issuer rotates
    rotated = forge(service, payload, key=rsa_key, algorithm="RS256", kid="idp-2")
    refused(service.verify_access, rotated, "token_invalid")  # still inside the cooldown
    clock.now += 301
    assert service.verify_access(rotated).sub == "user-1"
    for index in range(100):
        token = forge(service, payload, key=attacker_rsa, algorithm="RS256", kid=f"again-{index}")
        refused(service.verify_access, token, "token_invalid")
    assert fetches == [url, url] and no_network == []


def test_auth_17_failing_jwks_download_is_not_retried_per_token(make_service, clock, rsa_key):
    """AUTH-17: failing JWKS download is not retried per token."""
    attempts = []

    def fetch(url: str) -> bytes:
        attempts.append(url)
        raise OSError("connection refused")

    service = make_service(
        jwt_algorithm="RS256", jwks_url="https://idp.example.com/jwks", jwks_fetcher=fetch
    )
    for index in range(50):
        token = forge(service, claims(clock.now), key=rsa_key, algorithm="RS256", kid=f"k{index}")
        refused(service.verify_access, token, "token_invalid")
    assert len(attempts) == 1


@pytest.mark.parametrize(
    "kid",
    [
        "../../dev/null",
        "/etc/passwd",
        "' OR 1=1--",
        "x'; DROP TABLE kailash_nb_auth_users; --",
        "https://attacker.example/key.pem",
        "evil\nINFO forged log line",
        "k" * 129,
        "",
        123,
        1.5,
        None,
        True,
        ["kid"],
        {"kid": "x"},
    ],
)
def test_auth_18_hostile_kid_rejected_without_io(
    service, clock, sqlite_url, monkeypatch, caplog, kid
):
    """AUTH-18: hostile kid rejected without I/O."""
    token = sign_hs({"alg": "HS256", "typ": "JWT", "kid": kid}, claims(clock.now))
    statements = []
    engine = get_engine(sqlite_url)
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        with monkeypatch.context() as patch, caplog.at_level(logging.DEBUG, "kailash_nb.security"):
            patch.setattr(builtins, "open", _no_io)
            patch.setattr(os, "open", _no_io)
            refused(service.verify_access, token, "token_invalid")
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert statements == []  # the kid never reaches a query
    logged = caplog.text
    assert "\nINFO forged" not in logged and "k" * 33 not in logged
    assert token.split(".")[2] not in logged


def test_auth_18_ten_kilobyte_kid_rejected_before_decoding(service, clock):
    """AUTH-18: ten kilobyte kid rejected before decoding."""
    token = sign_hs({"alg": "HS256", "kid": "A" * 10240}, claims(clock.now))
    refused(service.verify_access, token, "token_malformed")


def _no_io(*args, **kwargs):
    raise AssertionError(f"file access during token verification: {args!r}")


def test_auth_19_jku_x5u_jwk_headers_ignored(
    make_service, clock, rsa_key, attacker_rsa, no_network
):
    """AUTH-19: jku/x5u/jwk headers ignored."""
    service = make_service(jwt_algorithm="RS256", jwt_private_key=private_pem(rsa_key))
    attacker_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(attacker_rsa.public_key(), as_dict=True)
    ours = service.config.key_id
    hostile_headers = [
        {"kid": ours, "jku": "https://attacker.example/jwks.json"},
        {"kid": ours, "x5u": "https://attacker.example/cert.pem"},
        {"kid": ours, "jwk": attacker_jwk},
        {"kid": "attacker", "jwk": {**attacker_jwk, "kid": "attacker"}},
        {"kid": ours, "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]},
    ]
    for headers in hostile_headers:
        token = forge(service, claims(clock.now), key=attacker_rsa, algorithm="RS256", **headers)
        refused(service.verify_access, token, "token_invalid")
    no_kid = raw_token({"alg": "RS256", "jwk": attacker_jwk}, claims(clock.now), b"x" * 256)
    refused(service.verify_access, no_kid, "token_invalid")
    # A genuine token that carries a jku is verified with our key; the jku is never fetched.
    genuine = forge(
        service,
        claims(clock.now),
        key=rsa_key,
        algorithm="RS256",
        jku="https://attacker.example/jwks.json",
    )
    assert service.verify_access(genuine).sub == "user-1"
    assert no_network == []


@pytest.mark.parametrize(
    "extension",
    [
        {"crit": ["exp"]},
        {"crit": ["b64"], "b64": False},
        {"crit": ["kailash-ext"], "kailash-ext": 1},
        {"crit": []},
        {"crit": "exp"},
        {"b64": False},
    ],
)
def test_auth_20_crit_extensions_rejected(service, clock, extension):
    """AUTH-20: crit extensions rejected."""
    header = _header(service, **extension)
    if extension.get("b64") is False:
        # RFC 7797 detached form: empty payload segment, signature over the raw payload.
        payload = json.dumps(claims(clock.now)).encode()
        signing_input = segment(header).encode() + b"." + payload
        signature = hmac.new(TEST_JWT_SECRET.encode(), signing_input, hashlib.sha256).digest()
        token = f"{segment(header)}..{b64(signature)}"
    else:
        token = sign_hs(header, claims(clock.now))
    error = refused(service.verify_access, token, "token_invalid")
    assert "critical header extension" in str(error)


def test_auth_21_malformed_tokens_rejected(service, clock, monkeypatch):
    """AUTH-21: malformed tokens rejected."""
    good = forge(service, claims(clock.now))
    head, body, signature = good.split(".")
    malformed = [
        f"{head}.{body}",  # two segments
        f"{head}.{body}.{signature}.{signature}",  # four segments
        "a.b",
        "...",
        f"!!!!.{body}.{signature}",  # bad base64
        f"{head}.%%%%.{signature}",
        f"{head}.{body}.****",
        f"{b64(b'not json')}.{body}.{signature}",  # non-JSON header
        f"{b64(b'[1, 2]')}.{body}.{signature}",
        f"{b64(b'7')}.{body}.{signature}",
        f"{head}.{body}.{signature}é",  # not ASCII
        good + "A" * (8 * 1024 - len(good) + 1),  # one byte over the limit
        "eyJ" + "A" * (1024 * 1024),  # 1 MB
        b"bytes.are.refused",
        12345,
        ["a", "b", "c"],
    ]
    real_header = jwt.get_unverified_header
    oversize_decoded = []

    def watch(token):
        if len(token) > 8 * 1024:
            oversize_decoded.append(len(token))
        return real_header(token)

    monkeypatch.setattr(jwt, "get_unverified_header", watch)
    for token in malformed:
        with pytest.raises(AuthenticationError) as caught:
            service.verify_access(token)
        assert caught.value.code in ("token_malformed", "token_invalid"), token[:40]
    assert oversize_decoded == []  # oversize tokens are refused before any decoding
    for empty in (None, ""):
        refused(service.verify_access, empty, "token_missing")
    refused(service.verify_access, "eyJ" + "A" * (1024 * 1024), "token_malformed")
    assert oversize_decoded == []


def test_auth_21_signed_garbage_payload_rejected(service):
    """AUTH-21: signed garbage payload rejected."""
    signing_input = f"{segment(_header(service))}.{b64(b'not json at all')}"
    signature = hmac.new(TEST_JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    refused(service.verify_access, f"{signing_input}.{b64(signature)}", "token_invalid")
    array = sign_hs(_header(service), ["sub", "user-1"])
    refused(service.verify_access, array, "token_invalid")


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": 42},
        {"sub": ["user-1"]},
        {"sub": {"id": "user-1"}},
        {"sub": ""},
        {"roles": "admin"},
        {"roles": [1, 2]},
        {"roles": [["admin"]]},
        {"roles": {"admin": True}},
        {"tenant_id": ["acme", "globex"]},
        {"tenant_id": 7},
        {"tenant_id": {"id": "acme"}},
        {"token_type": "ACCESS"},
        {"token_type": "admin"},
        {"family": 12},
        {"jti": 12},
        {"iat": "0"},
        {"nbf": 1.5},
    ],
)
def test_auth_22_claim_type_confusion_rejected(service, clock, overrides):
    """AUTH-22: claim type confusion rejected."""
    token = forge(service, claims(clock.now, **overrides))
    refused(service.verify_access, token, "token_invalid")


# -- AUTH-23: minting ------------------------------------------------------------------


@pytest.mark.parametrize("claim", sorted(RESERVED_CLAIMS))
def test_auth_23_minting_refuses_reserved_claims(service, claim):
    """AUTH-23: minting refuses reserved claims."""
    with pytest.raises(ClaimsError, match=f"reserved claims {claim}"):
        service.issue("user-1", tenant_id="acme", roles=["analyst"], extra={claim: "admin"})


def test_auth_23_minting_refuses_bad_arguments(service):
    """AUTH-23: minting refuses bad arguments."""
    bad_calls = [
        ({"subject": 42}, "subject"),
        ({"subject": ""}, "subject"),
        ({"tenant_id": ["acme"]}, "tenant_id"),
        ({"roles": "admin"}, "not one string"),
        ({"roles": [1]}, "roles"),
        ({"extra": {1: "x"}}, "names must be strings"),
        ({"extra": {"when": object()}}, "JSON"),
        ({"extra": {"score": float("nan")}}, "JSON"),
        ({"extra": ["sub", "admin"]}, "mapping"),
        ({"extra": {"blob": "x" * 9000}}, "8192 bytes"),
    ]
    for overrides, message in bad_calls:
        arguments = {"subject": "user-1", "tenant_id": "acme", "roles": ["analyst"], **overrides}
        subject = arguments.pop("subject")
        with pytest.raises(ClaimsError, match=message):
            service.issue(subject, **arguments)


def test_auth_23_extra_claims_never_change_identity(service):
    """AUTH-23: extra claims never change identity."""
    pair = service.issue(
        "user-1", tenant_id="acme", roles=["viewer"], extra={"is_admin": True, "Roles": ["admin"]}
    )
    claims_ = service.verify_access(pair.access_token)
    assert claims_.roles == ["viewer"] and claims_.extra == {"is_admin": True, "Roles": ["admin"]}


# -- plumbing -------------------------------------------------------------------------


def test_error_codes_are_stable_and_messages_never_hold_the_token(service, clock):
    pair = service.issue("user-1", tenant_id="acme", roles=[])
    tampered = pair.access_token[:-4] + (
        "AAAA" if not pair.access_token.endswith("AAAA") else "BBBB"
    )
    error = refused(service.verify_access, tampered, "token_invalid")
    assert repr(error).startswith("AuthenticationError(code='token_invalid'")
    with pytest.raises(ValueError, match="unknown authentication error code"):
        AuthenticationError("nope", "x")


def test_token_service_needs_a_security_config(sqlite_url):
    with pytest.raises(TypeError, match="SecurityConfig"):
        TokenService({"jwt_secret": TEST_JWT_SECRET}, sqlite_url)


def test_store_migrates_from_version_1(tmp_path):
    from kailash_nb.store.schema import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'v1.db'}"
    engine = get_engine(url)
    with engine.begin() as connection:
        schema_table.create(connection)
        MIGRATIONS[0][1](connection)
        connection.execute(schema_table.insert().values(id=1, version=1))
        connection.execute(
            runs.insert().values(
                run_id="r1", run_seq=1, workflow_name="w", status="completed", started_at=1.0
            )
        )
    service = TokenService(SecurityConfig(jwt_secret=TEST_JWT_SECRET), url)
    service.issue("user-1", tenant_id="acme", roles=[])
    with engine.connect() as connection:
        assert (
            connection.execute(sa.select(schema_table.c.version)).scalar_one()
            == SCHEMA_VERSION
            >= 2
        )
        assert connection.execute(sa.select(runs.c.run_id)).scalar_one() == "r1"
    assert timedelta(seconds=service.config.leeway) < timedelta(minutes=1)


def test_jwks_download_is_bounded_and_follows_no_redirect(rsa_key):
    import http.server

    import httpx

    from kailash_nb.security._keys import fetch_jwks, parse_jwks

    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    documents = {
        "/jwks": json.dumps(
            {
                "keys": [
                    {**jwk, "kid": "good"},
                    {**jwk, "kid": "enc", "use": "enc"},
                    {**jwk, "kid": "other-alg", "alg": "RS512"},
                    {**jwk, "kid": 7},
                    {"kty": "RSA", "kid": "broken", "n": "AA", "e": "AQAB"},
                    "not a key",
                ]
            }
        ).encode(),
        "/big": b'{"keys": [' + b" " * (65 * 1024) + b"]}",
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/jwks")
                self.end_headers()
                return
            body = documents.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        keys = parse_jwks(fetch_jwks(f"{base}/jwks"), "RS256")
        assert sorted(keys) == ["good"]
        with pytest.raises(ValueError, match="larger than"):
            fetch_jwks(f"{base}/big")
        with pytest.raises(httpx.HTTPStatusError):
            fetch_jwks(f"{base}/redirect")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ValueError, match="keys"):
        parse_jwks(b'["not", "a", "jwks"]', "RS256")


def test_auth_15_revocation_cache_bound_across_services_and_immediate_locally(
    make_service, database_url
):
    """AUTH-15: "not revoked" answers of ``verify_access`` are cached for at most 1 s
    (the stated propagation bound). Another TokenService on the same store (standing in
    for another process) revokes: honoured once the bound has passed. A revocation
    through the caching service itself: honoured at once. The clock is pinned, no sleeps.
    """
    from kailash_nb.security import REVOCATION_CACHE_SECONDS

    assert REVOCATION_CACHE_SECONDS <= 1.0
    local = make_service(database_url)
    other = make_service(database_url)
    monotonic = Clock(1000.0)
    local._state._cache_clock = monotonic

    remote_pair = local.issue("user-1", tenant_id="acme", roles=[])
    assert local.verify_access(remote_pair.access_token).sub == "user-1"  # cached: not revoked
    assert other.revoke_session(remote_pair.session_id) is True
    monotonic.now += REVOCATION_CACHE_SECONDS  # the bound has passed
    refused(local.verify_access, remote_pair.access_token, "token_revoked")
    refused(local.verify_refresh, remote_pair.refresh_token, "token_revoked")

    local_pair = local.issue("user-2", tenant_id="acme", roles=[])
    assert local.verify_access(local_pair.access_token).sub == "user-2"  # cached
    assert local.revoke(local_pair.access_token) is True
    refused(local.verify_access, local_pair.access_token, "token_revoked")  # same instant

    reused = local.issue("user-3", tenant_id="acme", roles=[])
    local.verify_access(reused.access_token)  # cached
    local.refresh(reused.refresh_token)
    refused(local.refresh, reused.refresh_token, "token_revoked")  # reuse revokes
    refused(local.verify_access, reused.access_token, "token_revoked")  # at once


def test_revocation_cache_is_bounded_and_can_be_turned_off(make_service, database_url):
    from kailash_nb.security import AuthState

    state = AuthState(database_url, revocation_cache_size=2)
    for family in ("a", "b", "c"):
        assert state.is_revoked(family, cached=True) is False
    assert list(state._not_revoked) == ["b", "c"]
    uncached = make_service(database_url, revocation_cache_seconds=0)
    other = make_service(database_url)
    pair = uncached.issue("user-1", tenant_id="acme", roles=[])
    uncached.verify_access(pair.access_token)
    other.revoke_session(pair.session_id)
    refused(uncached.verify_access, pair.access_token, "token_revoked")
    with pytest.raises(ValueError):
        AuthState(database_url, revocation_cache_seconds=5)
