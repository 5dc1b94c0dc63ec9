"""AUTH-26: failed sign-ins are counted per account and per client address in the store
(shared by workers, kept across restarts); a locked account answers 429 with
``Retry-After`` whatever the password and source address, identically for known and
unknown usernames (AUTH-27 keeps holding). Runs on SQLite and PostgreSQL, against a
real gateway on loopback; source addresses rotate over 127.0.0.0/8."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from _clock import Clock
from _gateway_server import ServedGateway
from argon2 import PasswordHasher
from pydantic import ValidationError

from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.security import SecurityConfig
from kailash_nb.security.errors import AuthenticationError
from kailash_nb.security.lockout import (
    LoginLockedError,
    LoginThrottle,
    ThrottleKey,
    ThrottlePolicy,
)
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import auth_login_throttle

PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PROBLEM_BASE = "https://kailash-nb.dev/problems/"
START = 1_800_000_000.0


def new_name(prefix: str = "alice") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_gateway(clocked_auth):
    """Factory: ``make_gateway(url, clock, **security)``, a gateway signing in on ``clock``."""

    def make(url: str, clock: Clock, **security):
        auth = clocked_auth(url, clock, **security)
        gateway = create_gateway(title="lockout", security_config=auth.config, database_url=url)
        gateway.auth = auth
        return gateway

    return make


def post_token(server: ServedGateway, body: dict, *, source: str = "127.0.0.1", headers=None):
    """``POST /auth/token`` from the loopback address ``source``."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=server.url, transport=transport, timeout=15) as client:
        return client.post("/auth/token", json=body, headers=headers)


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == PROBLEM_BASE + code and body["code"] == code
    assert body["status"] == status and body["detail"] and len(body["error_id"]) == 32
    return body


def without_error_id(response) -> dict:
    return {key: value for key, value in response.json().items() if key != "error_id"}


def test_auth26_account_locks_after_failures_from_rotating_ips(make_gateway, auth_store_url, clock):
    with ServedGateway(make_gateway(auth_store_url, clock, login_max_failures=3)) as server:
        username = new_name()
        server.gateway.auth.add_user(username, PASSWORD, tenant_id="acme", roles=[])
        for last in (2, 3, 4):
            wrong = post_token(
                server, {"username": username, "password": WRONG}, source=f"127.0.0.{last}"
            )
            assert_problem(wrong, 401, "invalid_credentials")
        for last in (5, 6):
            locked = post_token(
                server, {"username": username, "password": PASSWORD}, source=f"127.0.0.{last}"
            )
            assert_problem(locked, 429, "login_locked")
            assert locked.headers["Retry-After"] == "300"
        # Another spelling of the same account is the same account.
        locked = post_token(server, {"username": username.upper(), "password": PASSWORD})
        assert_problem(locked, 429, "login_locked")
        clock.advance(300)
        assert post_token(server, {"username": username, "password": PASSWORD}).status_code == 200


def test_auth26_locked_unknown_and_known_users_answer_identically(
    make_gateway, auth_store_url, clock
):
    with ServedGateway(make_gateway(auth_store_url, clock, login_max_failures=2)) as server:
        known, unknown = new_name(), new_name()
        server.gateway.auth.add_user(known, PASSWORD, tenant_id="acme", roles=[])
        answers = {}
        for username in (known, unknown):
            failures = [
                post_token(server, {"username": username, "password": WRONG}) for _ in range(2)
            ]
            locked = post_token(server, {"username": username, "password": PASSWORD})
            answers[username] = (failures, locked)
        (known_failures, known_locked), (unknown_failures, unknown_locked) = answers.values()
        for known_answer, unknown_answer in zip(known_failures, unknown_failures, strict=True):
            assert_problem(known_answer, 401, "invalid_credentials")
            assert without_error_id(known_answer) == without_error_id(unknown_answer)
        assert_problem(known_locked, 429, "login_locked")
        assert without_error_id(known_locked) == without_error_id(unknown_locked)
        for name in ("Retry-After", "Content-Type", "WWW-Authenticate"):
            assert known_locked.headers.get(name) == unknown_locked.headers.get(name)


def test_auth26_lock_doubles_up_to_the_longest_and_decays(clocked_auth, auth_store_url, clock):
    auth = clocked_auth(
        auth_store_url,
        clock,
        login_max_failures=2,
        login_lockout=timedelta(minutes=5),
        login_max_lockout=timedelta(minutes=15),
    )
    username = new_name()
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=[])

    def lock_length() -> int:
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                auth.login(username, WRONG)
        with pytest.raises(LoginLockedError) as locked:
            auth.login(username, PASSWORD)
        return locked.value.retry_after

    assert lock_length() == 300
    clock.advance(300)
    assert lock_length() == 600
    clock.advance(600)
    assert lock_length() == 900  # 1200 capped at login_max_lockout
    clock.advance(899)
    with pytest.raises(LoginLockedError) as still:
        auth.login(username, PASSWORD)
    assert still.value.retry_after == 1
    # Quiet for login_max_lockout after the lock: the doubling starts over.
    clock.advance(1 + 900)
    assert lock_length() == 300


def test_auth26_successful_login_resets_the_account_count(clocked_auth, auth_store_url, clock):
    auth = clocked_auth(auth_store_url, clock, login_max_failures=3)
    username = new_name()
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=[])
    for _ in range(3):
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                auth.login(username, WRONG, client_ip="10.1.2.3")
        assert auth.login(username, PASSWORD, client_ip="10.1.2.3").access_token
    # Failures spread wider than the window never lock either.
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            auth.login(username, WRONG)
        clock.advance(15 * 60 / 2)
    assert auth.login(username, PASSWORD).access_token


def test_auth26_per_address_limit_ignores_forwarding_headers(make_gateway, auth_store_url, clock):
    security = {"login_max_failures": 10, "login_max_failures_per_ip": 3}
    with ServedGateway(make_gateway(auth_store_url, clock, **security)) as server:
        username = new_name()
        server.gateway.auth.add_user(username, PASSWORD, tenant_id="acme", roles=[])
        for _ in range(3):
            wrong = post_token(
                server, {"username": new_name("nobody"), "password": WRONG}, source="127.0.0.7"
            )
            assert_problem(wrong, 401, "invalid_credentials")
        body = {"username": username, "password": PASSWORD}
        locked = post_token(server, body, source="127.0.0.7")
        assert_problem(locked, 429, "login_locked")
        assert locked.headers["Retry-After"] == "300"
        # A forged X-Forwarded-For from an untrusted peer changes nothing.
        forged = post_token(
            server, body, source="127.0.0.7", headers={"X-Forwarded-For": "203.0.113.9"}
        )
        assert_problem(forged, 429, "login_locked")
        # Another address signs in to the same account: only the address was locked.
        assert post_token(server, body, source="127.0.0.8").status_code == 200
        # A success does not clear the address's count.
        assert_problem(post_token(server, body, source="127.0.0.7"), 429, "login_locked")


_WORKER = """
import json, sys
from argon2 import PasswordHasher
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.security.errors import AuthenticationError
url, username, count, secret = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
auth = KailashJWTAuth(
    config=None, store_url=url, jwt_secret=secret, login_max_failures=3,
    password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
)
codes = []
for _ in range(count):
    try:
        auth.login(username, "not the password at all", client_ip="192.0.2.10")
    except AuthenticationError as error:
        codes.append(error.code)
print(json.dumps(codes))
"""


def test_auth26_count_is_shared_by_processes_and_survives_a_restart(
    clocked_auth, jwt_secret, auth_store_url
):
    # Real time here: the other process has its own clock.
    auth = clocked_auth(auth_store_url, time.time, login_max_failures=3)
    username = new_name()
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=[])
    worker = subprocess.run(
        [sys.executable, "-c", _WORKER, auth_store_url, username, "3", jwt_secret],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(worker.stdout) == ["invalid_credentials"] * 3
    # This process never saw a failure; a fresh instance (a restarted worker) sees the lock.
    restarted = clocked_auth(auth_store_url, time.time, login_max_failures=3)
    with pytest.raises(LoginLockedError) as locked:
        restarted.login(username, PASSWORD, client_ip="198.51.100.7")
    assert 290 <= locked.value.retry_after <= 300


def test_auth26_concurrent_failures_are_all_counted(auth_store_url, clock):
    throttle = LoginThrottle(get_engine(auth_store_url), clock=clock)
    key = ThrottleKey("account", new_name())
    policy = ThrottlePolicy(max_failures=1000, window=900, lockout=300, max_lockout=3600)
    errors: list[BaseException] = []

    def fail() -> None:
        try:
            throttle.record_failure([(key, policy)])
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=fail) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with get_engine(auth_store_url).connect() as connection:
        failures = connection.execute(
            sa.select(auth_login_throttle.c.failures).where(auth_login_throttle.c.key == key.digest)
        ).scalar_one()
    assert failures == 12


def test_auth26_store_holds_digests_not_usernames_or_addresses(clocked_auth, auth_store_url, clock):
    auth = clocked_auth(auth_store_url, clock)
    username = new_name("carol")
    with pytest.raises(AuthenticationError):
        auth.login(username, WRONG, client_ip="192.0.2.44")
    with get_engine(auth_store_url).connect() as connection:
        rows = connection.execute(sa.select(auth_login_throttle)).all()
    assert {row.scope for row in rows} == {"account", "ip"}
    stored = json.dumps([list(row) for row in rows])
    assert username not in stored and "192.0.2.44" not in stored
    assert all(len(row.key) == 64 for row in rows)


@pytest.mark.parametrize(
    "options",
    [
        {"login_max_failures": 0},
        {"login_max_failures_per_ip": 0},
        {"login_failure_window": timedelta(0)},
        {"login_failure_window": timedelta(hours=25)},
        {"login_lockout": timedelta(0)},
        {"login_lockout": timedelta(hours=2), "login_max_lockout": timedelta(hours=1)},
        {"login_max_lockout": timedelta(hours=25)},
        {"totp_max_failures": 0},
        {"totp_failure_window": timedelta(0)},
        {"totp_issuer": "acme:corp"},
        {"totp_issuer": ""},
    ],
)
def test_auth26_limits_are_validated(jwt_secret, options):
    with pytest.raises(ValidationError):
        SecurityConfig(jwt_secret=jwt_secret, **options)


def test_auth26_defaults_are_documented_values(jwt_secret):
    config = SecurityConfig(jwt_secret=jwt_secret)
    assert (config.login_max_failures, config.login_max_failures_per_ip) == (10, 100)
    assert config.login_failure_window == timedelta(minutes=15)
    assert (config.login_lockout, config.login_max_lockout) == (
        timedelta(minutes=5),
        timedelta(hours=1),
    )
    assert (config.totp_max_failures, config.totp_failure_window) == (6, timedelta(minutes=5))


def test_auth26_openapi_documents_the_429(make_gateway, auth_store_url, clock):
    with ServedGateway(make_gateway(auth_store_url, clock)) as server:
        document = server.client.get("/openapi.json").json()
    responses = document["paths"]["/auth/token"]["post"]["responses"]
    name = responses["429"]["$ref"].rpartition("/")[2]  # a shared problem answer
    locked = document["components"]["responses"][name]
    assert "login_locked" in locked["description"]
    assert locked["headers"]["Retry-After"]["required"] is True


def test_auth26_prune_drops_only_rows_that_no_longer_matter(auth_store_url, clock):
    throttle = LoginThrottle(get_engine(auth_store_url), clock=clock)
    quick = ThrottlePolicy(max_failures=5, window=900, lockout=300, max_lockout=3600)
    locking = ThrottlePolicy(max_failures=1, window=900, lockout=7200, max_lockout=7200)
    old, locked = ThrottleKey("account", new_name()), ThrottleKey("account", new_name())
    throttle.record_failure([(old, quick), (locked, locking)])
    clock.advance(3600)
    assert throttle.prune(1800) == 1  # the locked one stays until its lock ends
    with pytest.raises(LoginLockedError):
        throttle.check([old, locked])
    throttle.check([old])
