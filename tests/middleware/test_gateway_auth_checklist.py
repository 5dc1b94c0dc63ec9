"""The AUTH token items as a client sees them: a real gateway on a free loopback port,
called over HTTP. Every refused token answers the same 401 (problem+json, identical
body apart from its error id, ``WWW-Authenticate: Bearer``); malformed Authorization
headers answer 401 or 400, never 500.

Unit-level checks of the same items (error codes, clocks, key sets) are in
``test_tokens.py`` and ``test_token_checklist.py``; oversized headers (431) are GW-18's.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time

import jwt
import pytest
from _gateway_server import ServedGateway
from _keys import private_pem
from _tokens import DELETE, b64, segment, sign_hs
from _tokens import claims as token_claims
from cryptography.hazmat.primitives import serialization
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from kailash_nb import WorkflowBuilder
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.security import SecurityConfig, TokenService

ISSUER = "https://auth.example.com"
AUDIENCE = "kailash-api"


def double(x: int) -> int:
    """Twice x."""
    return x * 2


@pytest.fixture(scope="module")
def hs_config(security_config):
    """Factory: this module's HS256 ``SecurityConfig`` (an issuer, an audience, 10 s leeway)."""

    def make(**overrides):
        return security_config(
            **{"issuer": ISSUER, "audience": AUDIENCE, "leeway": 10, **overrides}
        )

    return make


@pytest.fixture(scope="module")
def serve(secured_gateway, serve_module_gateway):
    """Factory: ``serve(url, config)``, a served gateway on ``url`` whose auth uses ``config``
    and that serves the ``dbl`` workflow."""

    def make(url: str, config: SecurityConfig) -> ServedGateway:
        gateway = secured_gateway(url, config)
        builder = WorkflowBuilder()
        builder.add_node(PythonCodeNode.from_function(double), "double")
        gateway.register_workflow("dbl", builder.build())
        return serve_module_gateway(gateway)

    return make


@pytest.fixture(scope="module")
def served(serve, hs_config, make_sqlite_url):
    """The HS256 gateway of most tests (its store URL as ``db_url``)."""
    url = make_sqlite_url("authgw")
    server = serve(url, hs_config())
    server.db_url = url
    return server


@pytest.fixture(scope="module")
def rs_served(serve, security_config, make_sqlite_url, rsa_key):
    """A gateway signing with the deployment's RSA key (RS256)."""
    config = security_config(
        jwt_secret=None,
        jwt_algorithm="RS256",
        jwt_private_key=private_pem(rsa_key),
        issuer=ISSUER,
    )
    return serve(make_sqlite_url("authrs"), config)


# -- forging --------------------------------------------------------------------------


def claims(now: float | None = None, **overrides):
    """A valid payload of this gateway's issuer and audience, issued now unless ``now``."""
    return token_claims(
        time.time() if now is None else now, issuer=ISSUER, audience=AUDIENCE, **overrides
    )


def header(served, **fields):
    return {"alg": "HS256", "typ": "JWT", "kid": served.gateway.auth.config.key_id, **fields}


def forged(served, **overrides) -> str:
    """A token signed with the gateway's own secret, with the given claims changed."""
    return sign_hs(header(served), claims(**overrides))


def get(served, token: str | None, path: str = "/workflows"):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return served.client.get(path, headers=headers)


def uniform_401(response) -> tuple:
    """Assert a uniform 401 and return what must be identical across refusals."""
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    body = response.json()
    assert len(body.pop("error_id")) == 32 and body.pop("instance")
    assert "Traceback" not in response.text
    return challenge, tuple(sorted(body.items()))


def raw_request(port: int, head: str) -> str:
    """Send a hand-written request head (httpx refuses these) and read the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head.encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer.decode("latin-1")


def test_forged_baseline_is_accepted(served):
    """The forging helpers make tokens the gateway accepts, so each 401 below is caused
    by the one hostile part."""
    assert get(served, forged(served)).status_code == 200


# -- AUTH-01 / AUTH-02: missing and malformed Authorization ------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/workflows"),
        ("GET", "/workflows/dbl"),
        ("POST", "/workflows/dbl/execute"),
        ("GET", "/runs/00000000-0000-0000-0000-000000000000"),
        ("GET", "/runs/00000000-0000-0000-0000-000000000000/events"),
        ("GET", "/sessions"),
        ("GET", "/sessions/abc"),
        ("GET", "/ws"),
    ],
)
def test_auth_01_no_authorization_on_a_protected_route_is_401_with_bearer(served, method, path):
    """AUTH-01: no Authorization header on any protected route -> 401 with
    ``WWW-Authenticate: Bearer`` (no ``error`` attribute: nothing was presented)."""
    response = served.client.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="kailash_nb"'
    assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize(
    "lines",
    [
        ["Authorization: Bearer "],
        ["Authorization: Bearer"],
        ["Authorization: Bearer     "],
        ["Authorization: Bearer \t"],
        ["Authorization: "],
        ["Authorization: Basic dXNlcjpwYXNz"],
        ["Authorization: Bearer a b c"],
        ["Authorization: Bearer \xff\xfe\xfd"],
        ["Authorization: Bearer x, Bearer y"],
        ["Authorization: Token abc"],
    ],
)
def test_auth_02_empty_or_garbage_bearer_is_401_never_500(served, lines):
    """AUTH-02: ``Bearer `` with an empty token (and other unusable values) -> 401 with a
    Bearer challenge, never 500."""
    head = "GET /workflows HTTP/1.1\r\nHost: t\r\n" + "".join(f"{x}\r\n" for x in lines) + "\r\n"
    answer = raw_request(served.port, head)
    assert answer.startswith("HTTP/1.1 401"), answer[:200]
    assert "\r\nwww-authenticate: bearer" in answer.lower()


@pytest.mark.parametrize("path", ["/workflows", "/ws"])
def test_auth_02_two_authorization_headers_are_400_never_500(served, path):
    """AUTH-02: two Authorization headers (both valid, one empty, two different) -> 400
    ``duplicate_authorization``, on HTTP routes and the WebSocket handshake alike."""
    good = f"Bearer {forged(served)}"
    for pair in ([good, good], [good, "Bearer "], ["Bearer ", "Bearer "], [good, "Basic eA=="]):
        lines = "".join(f"Authorization: {value}\r\n" for value in pair)
        answer = raw_request(served.port, f"GET {path} HTTP/1.1\r\nHost: t\r\n{lines}\r\n")
        assert answer.startswith("HTTP/1.1 400"), answer[:200]
        assert "duplicate_authorization" in answer


# -- uniform 401 for every refused token ----------------------------------------------------


def hostile_tokens(served, other: TokenService, attacker, curve) -> dict[str, str]:
    """One refused token per checklist item, all presented to the same route (``other``
    issues tokens under another secret)."""
    now = int(time.time())
    key_id = served.gateway.auth.config.key_id
    good = forged(served)
    head, body, signature = good.split(".")
    session = served.gateway.auth.issue_tokens("revoked", tenant_id="acme", roles=[])
    served.gateway.auth.logout(session.access_token)
    jku = "http://127.0.0.1:9/jwks.json"
    return {
        "AUTH-03 alg none": f"{segment({'alg': 'none', 'kid': key_id})}.{body}.",
        "AUTH-03 alg nOnE": f"{segment({'alg': 'nOnE', 'kid': key_id})}.{body}.",
        "AUTH-05 RS256": jwt.encode(claims(), attacker, "RS256", headers={"kid": key_id}),
        "AUTH-05 ES256": jwt.encode(claims(), curve, "ES256", headers={"kid": key_id}),
        "AUTH-06 no exp": forged(served, exp=DELETE),
        "AUTH-06 no sub": forged(served, sub=DELETE),
        "AUTH-07 exp now": forged(served, exp=now, iat=now - 60, nbf=now - 60),
        "AUTH-07 exp past leeway": forged(served, exp=now - 11, iat=now - 60, nbf=now - 60),
        "AUTH-08 nbf future": forged(served, nbf=now + 60),
        "AUTH-08 iat future": forged(served, iat=now + 60),
        "AUTH-09 exp string": forged(served, exp=str(now + 300)),
        "AUTH-09 exp NaN": forged(served, exp=float("nan")),
        "AUTH-09 exp 10**30": forged(served, exp=10**30),
        "AUTH-09 exp list": forged(served, exp=[now + 300]),
        "AUTH-10 no iss": forged(served, iss=DELETE),
        "AUTH-10 wrong iss": forged(served, iss="https://evil.example.com"),
        "AUTH-10 iss substring": forged(served, iss="auth.example.com"),
        "AUTH-10 iss prefix": forged(served, iss="https://auth.example"),
        "AUTH-10 ours as prefix": forged(served, iss=ISSUER + ".evil.io"),
        "AUTH-11 other aud": forged(served, aud="other-api"),
        "AUTH-12 refresh token": session.refresh_token,
        "AUTH-15 revoked session": session.access_token,
        "AUTH-16 unknown key": other.issue("mallory", tenant_id="acme", roles=[]).access_token,
        "AUTH-17 unknown kid": sign_hs(header(served, kid="kid-unknown"), claims()),
        "AUTH-18 path kid": sign_hs(header(served, kid="../../dev/null"), claims()),
        "AUTH-18 sql kid": sign_hs(header(served, kid="' OR 1=1--"), claims()),
        "AUTH-18 int kid": sign_hs(header(served, kid=7), claims()),
        "AUTH-19 jku": jwt.encode(claims(), attacker, "RS256", headers={"kid": key_id, "jku": jku}),
        "AUTH-20 crit": sign_hs(header(served, crit=["exp"]), claims()),
        "AUTH-21 two segments": f"{head}.{body}",
        "AUTH-21 four segments": f"{good}.{signature}",
        "AUTH-21 bad base64": f"!!!!.{body}.{signature}",
        "AUTH-21 non-JSON header": f"{b64(b'not json')}.{body}.{signature}",
        "AUTH-21 9 KiB token": good + "A" * (9 * 1024),
        "AUTH-22 roles string": forged(served, roles="admin"),
        "AUTH-22 tenant list": forged(served, tenant_id=["acme", "globex"]),
        "bad signature": f"{head}.{body}.{b64(b'x' * 32)}",
    }


def test_auth_every_refused_token_gets_the_same_401(
    attacker_rsa, attacker_ec, served, hs_config, sqlite_url
):
    """AUTH-03..12, 15..22 over HTTP: each refused token answers 401 with one and the same
    body and challenge, so the answer says nothing about why (no oracle); never 500."""
    other = TokenService(
        hs_config(jwt_secret="another-secret-that-is-long-enough-0123456789"), sqlite_url
    )
    answers = {
        name: uniform_401(get(served, token))
        for name, token in hostile_tokens(served, other, attacker_rsa, attacker_ec).items()
    }
    distinct = set(answers.values())
    assert len(distinct) == 1, distinct
    challenge, body = distinct.pop()
    assert challenge == 'Bearer realm="kailash_nb", error="invalid_token"'
    assert dict(body)["code"] == "unauthorized"


def test_auth_07_exp_now_plus_one_is_accepted_then_refused(served):
    """AUTH-07: ``exp = now + 1`` -> 200; one second later the same token -> 401 (exp is
    enforced without leeway)."""
    while time.time() % 1 > 0.3:  # start early in a second, so now + 1 is still ahead
        time.sleep(0.05)
    now = int(time.time())
    token = forged(served, exp=now + 1, iat=now, nbf=now)
    assert get(served, token).status_code == 200
    time.sleep(max(0.0, now + 1 - time.time()) + 0.05)
    uniform_401(get(served, token))


def test_auth_13_access_token_at_the_refresh_route_is_401(served):
    """AUTH-13: an access token presented to ``/auth/refresh`` -> 401 with a Bearer
    challenge; the session is not used up (its refresh token still rotates)."""
    pair = served.gateway.auth.issue_tokens("user-13", tenant_id="acme", roles=[])
    response = served.client.post("/auth/refresh", json={"refresh_token": pair.access_token})
    assert response.status_code == 401 and response.json()["code"] == "invalid_refresh_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    rotated = served.client.post("/auth/refresh", json={"refresh_token": pair.refresh_token})
    assert rotated.status_code == 200


def test_auth_15_revocation_by_another_worker_is_401_within_the_bound(served):
    """AUTH-15: a session revoked by another worker on the same store: its access token,
    accepted a moment before, answers 401 within the 1 s revocation bound (also for a
    token the gateway has just verified and may reuse)."""
    other_worker = TokenService(served.gateway.auth.config, served.db_url)
    pair = served.gateway.auth.issue_tokens("user-15", tenant_id="acme", roles=[])
    for _ in range(3):
        assert get(served, pair.access_token).status_code == 200
    assert other_worker.revoke_session(pair.session_id)
    revoked_at = time.monotonic()
    while True:
        sent = time.monotonic()  # the server decides after this instant
        response = get(served, pair.access_token)
        if response.status_code != 200:
            break
        assert sent - revoked_at < 1.0, "still accepted after the revocation bound"
        time.sleep(0.02)
    uniform_401(response)


def test_auth_19_jku_x5u_jwk_are_never_fetched(served, attacker_rsa):
    """AUTH-19: tokens whose ``jku``/``x5u`` point at an attacker's server, or that embed a
    ``jwk``, signed with the attacker's key -> 401; the attacker's server gets no request."""
    requests: list[str] = []

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    attacker = attacker_rsa
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    key_id = served.gateway.auth.config.key_id
    try:
        for extra in ({"jku": f"{base}/jwks.json"}, {"x5u": f"{base}/cert.pem"}, {"jwk": jwk}):
            for algorithm in ("RS256", "HS256"):
                key = attacker if algorithm == "RS256" else b"attacker-secret" * 3
                token = jwt.encode(claims(), key, algorithm, headers={"kid": key_id, **extra})
                uniform_401(get(served, token))
        time.sleep(0.1)
        assert requests == []
    finally:
        server.shutdown()
        server.server_close()


# -- AUTH-04 / AUTH-05 on an RS256 deployment ------------------------------------------------


@pytest.mark.parametrize(
    "fmt", [serialization.PublicFormat.SubjectPublicKeyInfo, serialization.PublicFormat.PKCS1]
)
def test_auth_04_hs256_keyed_with_the_servers_rsa_public_pem_is_401(rs_served, rsa_key, fmt):
    """AUTH-04: on an RS256 gateway, an HS256 token whose HMAC key is the server's own
    RSA public PEM -> 401 (only RS256 is allowed); a genuine RS256 token -> 200."""
    auth = rs_served.gateway.auth
    genuine = auth.issue_tokens("user-4", tenant_id="acme", roles=[]).access_token
    assert get(rs_served, genuine).status_code == 200
    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, fmt)
    payload = claims(aud=DELETE)
    for key in (pem, pem.strip()):
        token = sign_hs({"alg": "HS256", "typ": "JWT", "kid": auth.config.key_id}, payload, key)
        uniform_401(get(rs_served, token))


def test_auth_05_es256_and_hs256_tokens_at_an_rs256_gateway_are_401(rs_served, ec_key):
    """AUTH-05 (and its mirror): an ES256 token, and an HS256 one signed with the other
    deployment's secret, sent to the RS256 gateway -> 401."""
    key_id = rs_served.gateway.auth.config.key_id
    payload = claims(aud=DELETE)
    for token in (
        jwt.encode(payload, ec_key, "ES256", headers={"kid": key_id}),
        sign_hs({"alg": "HS256", "typ": "JWT", "kid": key_id}, payload),
    ):
        uniform_401(get(rs_served, token))


def test_auth_05_rs256_token_at_the_websocket_of_an_hs256_gateway_is_401(served, rsa_key):
    """AUTH-05 on ``WS /ws``: the handshake with an RS256 token answers 401 before any
    upgrade, whether the token comes in the header or the query."""
    token = jwt.encode(
        claims(), rsa_key, "RS256", headers={"kid": served.gateway.auth.config.key_id}
    )

    async def handshake(query: bool) -> int:
        url = f"ws://127.0.0.1:{served.port}/ws" + (f"?token={token}" if query else "")
        headers = {} if query else {"Authorization": f"Bearer {token}"}
        try:
            await websocket_connect(HTTPRequest(url, headers=headers, connect_timeout=5))
        except Exception as error:
            return getattr(error, "code", 0)
        return 101

    assert served.call(handshake(False)) == 401
    assert served.call(handshake(True)) == 401
