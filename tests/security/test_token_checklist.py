"""TokenService and KailashJWTAuth against the AUTH checklist items that need more than a
forged token: a real JWKS server on a loopback port (AUTH-17, AUTH-18), deployments on
RS256/ES256 keys made here with ``cryptography`` (AUTH-04, AUTH-05), role changes
server-side (AUTH-25) and the revocation checks a cache of verified tokens and the
WebSocket watch rely on (AUTH-15). The other token items are in ``test_tokens.py``
(``test_auth_03_...`` to ``test_auth_23_...``) and over HTTP in
``test_gateway_auth_checklist.py``.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from _clock import Clock
from _keys import private_pem, public_pem
from _tokens import TEST_JWT_SECRET, b64, claims, segment, sign_hs
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.security import AuthenticationError, SecurityConfig, TokenService

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def clock():
    return Clock(float(int(time.time())))


def refused(check, token, code: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        check(token)
    assert caught.value.code == code, f"{caught.value.code}: {caught.value}"
    return caught.value


# -- a real JWKS endpoint ----------------------------------------------------------------


class JWKSServer:
    """A JWKS document served on a free loopback port; records every request line."""

    def __init__(self, keys: dict[str, object], algorithm: str = "RS256") -> None:
        self.keys = keys
        self.algorithm = algorithm
        self.requests: list[str] = []
        self.status = 200
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.document() if server.status == 200 else b"{}"
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/.well-known/jwks.json"

    def document(self) -> bytes:
        entries = []
        for kid, key in self.keys.items():
            if isinstance(key, rsa.RSAPrivateKey):
                jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            else:
                jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            entries.append({**jwk, "kid": kid, "use": "sig", "alg": self.algorithm})
        return json.dumps({"keys": entries}).encode()

    def __enter__(self) -> JWKSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._http.shutdown()
        self._http.server_close()


def jwks_service(tmp_path, clock, url: str, *, cooldown: float = 60.0) -> TokenService:
    # development_mode only lets the test serve the JWKS over http on loopback.
    config = SecurityConfig(
        jwt_algorithm="RS256",
        jwks_url=url,
        jwks_refresh_cooldown=cooldown,
        development_mode=True,
    )
    return TokenService(config, f"sqlite:///{tmp_path / 'auth.db'}", clock=clock)


def test_auth_17_unknown_kid_flood_costs_one_jwks_request_per_cooldown(
    tmp_path, clock, rsa_key, attacker_rsa
):
    """AUTH-17: 1 000 distinct unknown kids -> 401 each, one request to the JWKS server
    for all of them (none per token); none more inside the cooldown; one after it."""
    with JWKSServer({"idp-1": rsa_key}) as server:
        service = jwks_service(tmp_path, clock, server.url, cooldown=60)
        payload = claims(clock.now)
        for index in range(1000):
            token = jwt.encode(payload, attacker_rsa, "RS256", headers={"kid": f"flood-{index}"})
            refused(service.verify_access, token, "token_invalid")
        assert len(server.requests) == 1
        genuine = jwt.encode(payload, rsa_key, "RS256", headers={"kid": "idp-1"})
        assert service.verify_access(genuine).sub == "user-1"  # from the one download
        clock.now += 59
        for index in range(200):
            token = jwt.encode(payload, attacker_rsa, "RS256", headers={"kid": f"again-{index}"})
            refused(service.verify_access, token, "token_invalid")
        assert len(server.requests) == 1
        clock.now += 2  # the cooldown has passed: one more download, then quiet again
        server.keys["idp-2"] = rsa_key
        rotated = jwt.encode(claims(clock.now), rsa_key, "RS256", headers={"kid": "idp-2"})
        assert service.verify_access(rotated).sub == "user-1"
        for index in range(200):
            token = jwt.encode(payload, attacker_rsa, "RS256", headers={"kid": f"late-{index}"})
            refused(service.verify_access, token, "token_invalid")
        assert len(server.requests) == 2


def test_auth_17_concurrent_unknown_kids_share_one_reload(tmp_path, clock, attacker_rsa, rsa_key):
    """AUTH-17: eight threads presenting 125 unknown kids each at once -> one request."""
    with JWKSServer({"idp-1": rsa_key}) as server:
        service = jwks_service(tmp_path, clock, server.url)
        payload = claims(clock.now)
        tokens = [
            jwt.encode(payload, attacker_rsa, "RS256", headers={"kid": f"t{index}"})
            for index in range(1000)
        ]
        start = threading.Barrier(8)
        codes: list[str] = []

        def present(batch: list[str]) -> None:
            start.wait()
            for token in batch:
                try:
                    service.verify_access(token)
                except AuthenticationError as error:
                    codes.append(error.code)

        threads = [
            threading.Thread(target=present, args=(tokens[i::8],), daemon=True) for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert codes == ["token_invalid"] * 1000
        assert len(server.requests) == 1


def test_auth_17_failing_jwks_endpoint_is_asked_once_per_cooldown(
    tmp_path, clock, attacker_rsa, rsa_key, caplog
):
    """AUTH-17: a JWKS endpoint answering 500 is not asked again per token; the failure
    is logged once, not once per token."""
    with JWKSServer({"idp-1": rsa_key}) as server:
        server.status = 500
        service = jwks_service(tmp_path, clock, server.url)
        with caplog.at_level(logging.WARNING, "kailash_nb.security"):
            for index in range(300):
                token = jwt.encode(
                    claims(clock.now), attacker_rsa, "RS256", headers={"kid": f"k{index}"}
                )
                refused(service.verify_access, token, "token_invalid")
        assert len(server.requests) == 1
        assert len([r for r in caplog.records if "JWKS" in r.getMessage()]) == 1


HOSTILE_KIDS = [
    "../../dev/null",
    "' OR 1=1--",
    "../../../../etc/passwd%00",
    "https://attacker.example/key.pem?x=",
    "evil\r\nINFO kailash_nb forged log line",
    "\x1b[31mred\x1b[0m",
    "k" * 128,
]


@pytest.mark.parametrize("kid", HOSTILE_KIDS)
def test_auth_18_hostile_kid_never_reaches_a_url_and_is_logged_escaped(
    tmp_path, clock, attacker_rsa, rsa_key, caplog, kid
):
    """AUTH-18: a hostile kid -> 401; the only URL ever requested is the configured JWKS
    URL, unchanged (no kid in its path or query); the refusal is logged with the kid
    escaped (repr) and cut to 32 characters, on one line."""
    with JWKSServer({"idp-1": rsa_key}) as server:
        service = jwks_service(tmp_path, clock, server.url)
        token = jwt.encode(claims(clock.now), attacker_rsa, "RS256", headers={"kid": kid})
        with caplog.at_level(logging.DEBUG, "kailash_nb.security"):
            refused(service.verify_access, token, "token_invalid")
        assert server.requests == ["/.well-known/jwks.json"]
    messages = [record.getMessage() for record in caplog.records if "kid=" in record.getMessage()]
    assert messages, caplog.text
    shown = repr(kid[:32])
    for message in messages:
        assert shown in message
        assert "\n" not in message and "\r" not in message and "\x1b" not in message
        assert kid[:33] not in message or len(kid) <= 32


@pytest.mark.parametrize("kid", [7, 1.5, None, True, ["kid"], {"kid": "x"}, "", "k" * 129])
def test_auth_18_non_string_or_oversized_kid_refused_and_logged_by_type(
    tmp_path, clock, attacker_rsa, rsa_key, caplog, kid
):
    """AUTH-18: a non-string, empty or over-long kid is refused from the header alone (no
    JWKS request); a non-string one is logged by its type name, never its value."""
    with JWKSServer({"idp-1": rsa_key}) as server:
        service = jwks_service(tmp_path, clock, server.url)
        header = {"alg": "RS256", "typ": "JWT", "kid": kid}
        token = f"{segment(header)}.{segment(claims(clock.now))}.{b64(b'x' * 256)}"
        with caplog.at_level(logging.DEBUG, "kailash_nb.security"):
            refused(service.verify_access, token, "token_invalid")
        assert server.requests == []
    logged = caplog.text
    assert "token refused (token_invalid)" in logged
    if not isinstance(kid, str):  # refused by the header parser: named, never shown
        assert "non-string kid" in logged and "kid=" not in logged
    assert "k" * 33 not in logged


def test_auth_18_ten_kilobyte_kid_is_never_logged(tmp_path, clock, attacker_rsa, caplog):
    """AUTH-18: a 10 KB kid makes the token oversized: refused before decoding, and not a
    character of the kid reaches the log."""
    service = TokenService(
        SecurityConfig(jwt_secret=TEST_JWT_SECRET), f"sqlite:///{tmp_path / 'a.db'}"
    )
    kid = "Z" * 10_240
    token = sign_hs({"alg": "HS256", "kid": kid}, claims(clock.now), TEST_JWT_SECRET)
    with caplog.at_level(logging.DEBUG, "kailash_nb"):
        refused(service.verify_access, token, "token_malformed")
    assert "ZZZZ" not in caplog.text


# -- AUTH-04 / AUTH-05 on asymmetric deployments -------------------------------------------


@pytest.mark.parametrize(
    "fmt", [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1]
)
def test_auth_04_hmac_keyed_with_the_servers_public_pem_rejected_on_rs256_and_es256(
    tmp_path, clock, rsa_key, ec_key, fmt
):
    """AUTH-04: an HS256 token whose HMAC key is the server's own public PEM is refused
    by an RS256 deployment and by an ES256 one (the algorithm is pinned)."""
    for algorithm, key in (("RS256", rsa_key), ("ES256", ec_key)):
        if algorithm == "ES256" and fmt is serialization.PublicFormat.PKCS1:
            fmt = serialization.PublicFormat.SubjectPublicKeyInfo  # PKCS1 is RSA-only
        config = SecurityConfig(jwt_algorithm=algorithm, jwt_private_key=private_pem(key))
        service = TokenService(config, f"sqlite:///{tmp_path / f'{algorithm}.db'}", clock=clock)
        assert service.verify_access(service.issue("u", tenant_id="acme", roles=[]).access_token)
        pem = public_pem(key, fmt)
        for hmac_key in (pem, pem.strip(), pem.encode()):
            header = {"alg": "HS256", "typ": "JWT", "kid": config.key_id}
            token = sign_hs(header, claims(clock.now), hmac_key)
            error = refused(service.verify_access, token, "token_invalid")
            assert "algorithm is not allowed" in str(error)


def test_auth_05_asymmetric_tokens_rejected_by_an_hs256_or_other_curve_deployment(
    tmp_path, clock, rsa_key, ec_key
):
    """AUTH-05: RS256 and ES256 tokens (keys made here) sent to an HS256 deployment are
    refused, and each asymmetric deployment refuses the other algorithm."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    hs = TokenService(SecurityConfig(jwt_secret=TEST_JWT_SECRET), url, clock=clock)
    rs = TokenService(
        SecurityConfig(jwt_algorithm="RS256", jwt_private_key=private_pem(rsa_key)),
        url,
        clock=clock,
    )
    es = TokenService(
        SecurityConfig(jwt_algorithm="ES256", jwt_private_key=private_pem(ec_key)), url, clock=clock
    )
    rs_token = rs.issue("u", tenant_id="acme", roles=[]).access_token
    es_token = es.issue("u", tenant_id="acme", roles=[]).access_token
    for token in (rs_token, es_token):
        assert "algorithm" in str(refused(hs.verify_access, token, "token_invalid"))
    refused(rs.verify_access, es_token, "token_invalid")
    refused(es.verify_access, rs_token, "token_invalid")
    # Relabelled with the HS256 deployment's kid, they still fail on the algorithm.
    for key, algorithm in ((rsa_key, "RS256"), (ec_key, "ES256")):
        relabelled = jwt.encode(
            claims(clock.now), key, algorithm, headers={"kid": hs.config.key_id}
        )
        refused(hs.verify_access, relabelled, "token_invalid")


# -- AUTH-25: roles removed server-side ----------------------------------------------------


def clocked_auth(tmp_path, clock, **options) -> KailashJWTAuth:
    """A KailashJWTAuth whose token service reads ``clock`` (same config and store)."""
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    auth = KailashJWTAuth(
        jwt_secret=TEST_JWT_SECRET, store_url=url, password_hasher=FAST, **options
    )
    auth.tokens = TokenService(auth.config, url, clock=clock)
    return auth


def test_auth_25_removed_role_ends_within_the_access_token_ttl(tmp_path, clock):
    """AUTH-25, the stated rule: roles are read from the token, not per request, so a role
    removed server-side keeps working until the access token's exp (access_token_ttl, 15
    min by default) and not a second longer; the next refresh re-reads the roles."""
    auth = clocked_auth(tmp_path, clock)
    ttl = auth.config.access_token_ttl
    assert ttl <= timedelta(minutes=15)
    auth.add_user("alice", PASSWORD, tenant_id="acme", roles=["admin", "analyst"])
    pair = auth.login("alice", PASSWORD)
    assert "admin" in auth.verify_token(pair.access_token).roles

    auth.users.set_roles("alice", ["analyst"])
    clock.now += ttl.total_seconds() - 1
    assert "admin" in auth.verify_token(pair.access_token).roles  # inside the stated window
    clock.now += 1
    refused(auth.verify_token, pair.access_token, "token_expired")  # the window is over

    renewed = auth.refresh_tokens(pair.refresh_token)
    assert auth.verify_token(renewed.access_token).roles == ["analyst"]


def test_auth_25_removed_user_loses_access_at_expiry_or_at_once_on_refresh(tmp_path, clock):
    """AUTH-25: a removed user's token works at most until its exp; the first refresh
    attempt revokes the session, which ends the access token at once."""
    auth = clocked_auth(tmp_path, clock, access_token_ttl=timedelta(minutes=5))
    auth.add_user("bob", PASSWORD, tenant_id="acme", roles=["admin"])
    pair = auth.login("bob", PASSWORD)
    assert auth.users.remove_user("bob")
    assert auth.verify_token(pair.access_token).sub  # stateless until exp or revocation
    refused(auth.refresh_tokens, pair.refresh_token, "token_revoked")
    refused(auth.verify_token, pair.access_token, "token_revoked")
    other = auth.issue_tokens("svc", tenant_id="acme", roles=["admin"])
    clock.now += 5 * 60
    refused(auth.verify_token, other.access_token, "token_expired")


# -- AUTH-15: the revocation checks the gateway relies on ----------------------------------


def test_auth_15_is_revoked_mirrors_verify_access_within_the_bound(tmp_path, database_url):
    """AUTH-15: ``is_revoked(claims)`` answers what ``verify_access`` would about the
    session: a revocation by this service at once, by another process within the 1 s
    bound; without session checks it is always False (tokens then end at exp)."""
    mono = Clock(1000.0)
    local = TokenService(SecurityConfig(jwt_secret=TEST_JWT_SECRET), database_url)
    local._state._cache_clock = mono
    other = TokenService(SecurityConfig(jwt_secret=TEST_JWT_SECRET), database_url)
    stateless = TokenService(
        SecurityConfig(jwt_secret=TEST_JWT_SECRET), database_url, check_sessions=False
    )

    pair = local.issue("user-1", tenant_id="acme", roles=[])
    verified = local.verify_access(pair.access_token)
    assert local.is_revoked(verified) is False
    other.revoke_session(pair.session_id)
    mono.now += 1.0
    assert local.is_revoked(verified) is True
    refused(local.verify_access, pair.access_token, "token_revoked")
    assert stateless.is_revoked(verified) is False
    assert stateless.revoked_sessions([pair.session_id]) == set()

    mine = local.issue("user-2", tenant_id="acme", roles=[])
    claims_ = local.verify_access(mine.access_token)
    local.revoke(mine.access_token)
    assert local.is_revoked(claims_) is True  # same instant


def test_auth_15_revoked_sessions_reads_many_sessions_uncached(database_url):
    """AUTH-15: ``revoked_sessions`` reads the store now (no cache), for more sessions
    than one IN list holds."""
    service = TokenService(SecurityConfig(jwt_secret=TEST_JWT_SECRET), database_url)
    other = TokenService(SecurityConfig(jwt_secret=TEST_JWT_SECRET), database_url)
    sessions = [uuid.uuid4().hex for _ in range(1200)]
    assert service.revoked_sessions(sessions) == set()
    assert service.revoked_sessions([]) == set()
    for session in [*sessions[::300], sessions[-1]]:
        other.revoke_session(session)
    assert service.revoked_sessions(sessions + sessions[:5]) == set(
        [*sessions[::300], sessions[-1]]
    )
