"""TOTP second factors: AUTH-28 (a code works once), AUTH-29 (window ±1 step),
AUTH-30 (6 wrong codes lock, durably across restarts and workers) and AUTH-31
(backup codes are single-use and stored hashed). Codes come from pyotp at times set
by an injected clock; runs on SQLite and PostgreSQL, mostly against a real gateway."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid

import jwt
import pyotp
import pytest
import sqlalchemy as sa
from _clock import Clock
from _gateway_server import ServedGateway
from argon2 import PasswordHasher

from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.security.errors import AuthenticationError, SecurityConfigurationError
from kailash_nb.security.lockout import LoginLockedError
from kailash_nb.security.totp import SecondFactorError
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import auth_backup_codes, auth_totp

PASSWORD = "correct horse battery staple"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PROBLEM_BASE = "https://kailash-nb.dev/problems/"
START = 1_800_000_000.0  # the first second of a 30 s step
STEP = 30


@pytest.fixture
def served(clocked_auth, auth_store_url, clock):
    auth = clocked_auth(auth_store_url, clock)
    gateway = create_gateway(title="totp", security_config=auth.config, database_url=auth_store_url)
    gateway.auth = auth
    with ServedGateway(gateway) as server:
        yield server


def enrolled(auth: KailashJWTAuth) -> tuple[str, pyotp.TOTP, tuple[str, ...]]:
    """A new user enrolled in TOTP: its name, its authenticator and its backup codes."""
    username = f"alice-{uuid.uuid4().hex[:8]}"
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=["analyst"])
    enrollment = auth.enroll_totp(username)
    return username, pyotp.TOTP(enrollment.secret), enrollment.backup_codes


def login(server, username: str, **factor):
    return server.client.post(
        "/auth/token", json={"username": username, "password": PASSWORD, **factor}
    )


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == PROBLEM_BASE + code and body["code"] == code
    assert body["status"] == status and body["detail"] and len(body["error_id"]) == 32
    return body


def methods(response) -> list[str]:
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    return claims["amr"]


def code_at(totp: pyotp.TOTP, clock: Clock, steps: int = 0) -> str:
    return totp.at(clock.now + steps * STEP)


def wrong_code(totp: pyotp.TOTP, clock: Clock) -> str:
    """A well-formed code that none of the accepted steps has."""
    valid = {code_at(totp, clock, steps) for steps in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)


# -- AUTH-28: single use --------------------------------------------------------------


def test_auth28_code_is_accepted_once_and_replay_in_the_same_step_is_refused(served, clock):
    username, totp, _codes = enrolled(served.gateway.auth)
    code = code_at(totp, clock)
    assert methods(login(served, username, totp=code)) == ["pwd", "otp"]
    assert_problem(login(served, username, totp=code), 401, "invalid_second_factor")
    clock.advance(STEP - 1)  # still the same step
    assert_problem(login(served, username, totp=code), 401, "invalid_second_factor")
    clock.advance(1)
    assert methods(login(served, username, totp=code_at(totp, clock))) == ["pwd", "otp"]


def test_auth28_after_a_later_step_is_used_earlier_codes_are_refused(
    clocked_auth, auth_store_url, clock
):
    auth = clocked_auth(auth_store_url, clock)
    username, totp, _codes = enrolled(auth)
    auth.login(username, PASSWORD, totp=code_at(totp, clock, +1))
    with pytest.raises(SecondFactorError) as refused:
        auth.login(username, PASSWORD, totp=code_at(totp, clock))
    assert refused.value.code == "invalid_second_factor"


def test_auth28_concurrent_replay_across_workers_succeeds_once(clocked_auth, auth_store_url, clock):
    workers = [clocked_auth(auth_store_url, clock) for _ in range(4)]
    username, totp, _codes = enrolled(workers[0])
    code = code_at(totp, clock)
    outcomes: list[str] = []
    barrier = threading.Barrier(len(workers))

    def attempt(auth: KailashJWTAuth) -> None:
        barrier.wait(10)
        try:
            auth.login(username, PASSWORD, totp=code)
            outcomes.append("ok")
        except AuthenticationError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=attempt, args=(auth,)) for auth in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["invalid_second_factor"] * 3 + ["ok"]


# -- AUTH-29: window ------------------------------------------------------------------


def test_auth29_window_is_one_step_either_side(clocked_auth, auth_store_url, clock):
    auth = clocked_auth(auth_store_url, clock)
    username, totp, _codes = enrolled(auth)
    for steps in (-2, +2, -3):
        with pytest.raises(SecondFactorError):
            auth.login(username, PASSWORD, totp=code_at(totp, clock, steps))
    assert auth.login(username, PASSWORD, totp=code_at(totp, clock, -1)).access_token
    assert auth.login(username, PASSWORD, totp=code_at(totp, clock, +1)).access_token


def test_auth29_step_boundaries_follow_the_clock(clocked_auth, auth_store_url, clock):
    auth = clocked_auth(auth_store_url, clock)
    username, totp, _codes = enrolled(auth)
    old = code_at(totp, clock)
    clock.advance(2 * STEP - 1)  # the code's step is now t-1: still accepted
    assert auth.login(username, PASSWORD, totp=old).access_token
    username, totp, _codes = enrolled(auth)
    old = code_at(totp, clock, -1)
    clock.advance(STEP)  # that code's step is now t-2
    with pytest.raises(SecondFactorError):
        auth.login(username, PASSWORD, totp=old)


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "１２３４５６", 123456])
def test_auth29_malformed_codes_are_refused(clocked_auth, auth_store_url, clock, code):
    auth = clocked_auth(auth_store_url, clock)
    username, _totp, _codes = enrolled(auth)
    with pytest.raises(SecondFactorError):
        auth.login(username, PASSWORD, totp=code)


# -- AUTH-30: wrong codes lock ------------------------------------------------------------


def test_auth30_six_wrong_codes_lock_even_the_right_code(served, clock):
    username, totp, backup_codes = enrolled(served.gateway.auth)
    wrong = wrong_code(totp, clock)
    for _ in range(6):
        assert_problem(login(served, username, totp=wrong), 401, "invalid_second_factor")
    for factor in ({"totp": code_at(totp, clock)}, {"backup_code": backup_codes[0]}):
        locked = login(served, username, **factor)
        assert_problem(locked, 429, "login_locked")
        assert locked.headers["Retry-After"] == "300"
    # The lock is behind the password: without it nothing says the account is locked.
    without = served.client.post(
        "/auth/token", json={"username": username, "password": "wrong password!"}
    )
    assert_problem(without, 401, "invalid_credentials")
    clock.advance(300)
    assert methods(login(served, username, totp=code_at(totp, clock))) == ["pwd", "otp"]


def test_auth30_wrong_codes_spread_over_more_than_five_minutes_do_not_lock(
    clocked_auth, auth_store_url, clock
):
    auth = clocked_auth(auth_store_url, clock)
    username, totp, _codes = enrolled(auth)
    for _ in range(11):  # one every 61 s: never 6 within 5 minutes
        with pytest.raises(SecondFactorError):
            auth.login(username, PASSWORD, totp=wrong_code(totp, clock))
        clock.advance(61)
    assert auth.login(username, PASSWORD, totp=code_at(totp, clock)).access_token


_WORKER = """
import json, sys
from argon2 import PasswordHasher
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.security.errors import AuthenticationError
url, username, count, secret = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
auth = KailashJWTAuth(
    store_url=url, jwt_secret=secret,
    password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
)
codes = []
for _ in range(count):
    try:
        auth.login(username, "correct horse battery staple", totp="abcdef")
    except AuthenticationError as error:
        codes.append(error.code)
print(json.dumps(codes))
"""


def test_auth30_count_is_shared_by_processes_and_survives_a_restart(
    clocked_auth, jwt_secret, auth_store_url
):
    first = clocked_auth(auth_store_url, time.time)
    username, totp, _codes = enrolled(first)
    for _ in range(3):
        with pytest.raises(SecondFactorError):
            first.login(username, PASSWORD, totp="abcdef")
    worker = subprocess.run(
        [sys.executable, "-c", _WORKER, auth_store_url, username, "3", jwt_secret],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(worker.stdout) == ["invalid_second_factor"] * 3
    restarted = clocked_auth(auth_store_url, time.time)  # a new process's view of the same store
    with pytest.raises(LoginLockedError) as locked:
        restarted.login(username, PASSWORD, totp=totp.now())
    assert 290 <= locked.value.retry_after <= 300


# -- AUTH-31: backup codes ------------------------------------------------------------


def test_auth31_backup_code_works_once_and_is_stored_hashed(served, auth_store_url):
    username, _totp, codes = enrolled(served.gateway.auth)
    assert len(codes) == len(set(codes)) == 10
    # Case, spaces and dashes are forgiven when typing a code in.
    typed = codes[0].upper().replace("-", " ")
    assert methods(login(served, username, backup_code=typed)) == ["pwd", "otp"]
    assert_problem(login(served, username, backup_code=codes[0]), 401, "invalid_second_factor")
    assert methods(login(served, username, backup_code=codes[1])) == ["pwd", "otp"]
    user = served.gateway.auth.users.get_user(username)
    with get_engine(auth_store_url).connect() as connection:
        rows = connection.execute(
            sa.select(auth_backup_codes).where(auth_backup_codes.c.user_id == user.user_id)
        ).all()
    stored = json.dumps([list(row) for row in rows])
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored
    assert all(len(row.code_hash) == 64 for row in rows)
    assert sum(row.used_at is not None for row in rows) == 2
    assert served.gateway.auth.users.second_factors.unused_backup_codes(user.user_id) == 8


def test_auth31_concurrent_use_of_one_backup_code_succeeds_once(
    clocked_auth, auth_store_url, clock
):
    workers = [clocked_auth(auth_store_url, clock) for _ in range(4)]
    username, _totp, codes = enrolled(workers[0])
    outcomes: list[str] = []
    barrier = threading.Barrier(len(workers))

    def attempt(auth: KailashJWTAuth) -> None:
        barrier.wait(10)
        try:
            auth.login(username, PASSWORD, backup_code=codes[3])
            outcomes.append("ok")
        except AuthenticationError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=attempt, args=(auth,)) for auth in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["invalid_second_factor"] * 3 + ["ok"]


def test_auth31_backup_codes_of_another_user_are_refused(clocked_auth, auth_store_url, clock):
    auth = clocked_auth(auth_store_url, clock)
    alice, _totp, _codes = enrolled(auth)
    _bob, _other, bob_codes = enrolled(auth)
    with pytest.raises(SecondFactorError):
        auth.login(alice, PASSWORD, backup_code=bob_codes[0])


# -- enrollment and the login protocol ------------------------------------------------------


def test_auth28_missing_second_factor_is_a_401_shaped_like_the_others(served, clock):
    username, totp, _codes = enrolled(served.gateway.auth)
    missing = login(served, username)
    body = assert_problem(missing, 401, "second_factor_required")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong_password = served.client.post(
        "/auth/token", json={"username": username, "password": "wrong password!"}
    )
    other = assert_problem(wrong_password, 401, "invalid_credentials")
    assert set(body) == set(other)
    # Asking for the second factor is not a failure: it never locks.
    for _ in range(8):
        assert_problem(login(served, username), 401, "second_factor_required")
    assert methods(login(served, username, totp=code_at(totp, clock))) == ["pwd", "otp"]


def test_auth28_bad_second_factor_fields_are_400(served):
    username, _totp, codes = enrolled(served.gateway.auth)
    both = login(served, username, totp="123456", backup_code=codes[0])
    assert_problem(both, 400, "invalid_field")
    assert_problem(login(served, username, totp=123456), 400, "invalid_field")
    assert_problem(login(served, username, backup_code="x" * 65), 400, "invalid_field")


def test_auth28_users_without_enrollment_sign_in_with_the_password(served):
    auth = served.gateway.auth
    username = f"bob-{uuid.uuid4().hex[:8]}"
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=[])
    assert methods(login(served, username)) == ["pwd"]
    auth.enroll_totp(username)
    assert_problem(login(served, username), 401, "second_factor_required")
    assert auth.users.disable_totp(username) is True
    assert auth.users.disable_totp(username) is False
    assert methods(login(served, username)) == ["pwd"]


def test_auth28_reenrollment_replaces_the_secret_and_the_backup_codes(
    clocked_auth, auth_store_url, clock
):
    auth = clocked_auth(auth_store_url, clock)
    username, old_totp, old_codes = enrolled(auth)
    enrollment = auth.enroll_totp(username)
    new_totp = pyotp.TOTP(enrollment.secret)
    assert not set(old_codes) & set(enrollment.backup_codes)
    for factor in ({"totp": code_at(old_totp, clock)}, {"backup_code": old_codes[0]}):
        with pytest.raises(SecondFactorError):
            auth.login(username, PASSWORD, **factor)
    assert auth.login(username, PASSWORD, totp=code_at(new_totp, clock)).access_token


def test_auth28_provisioning_uri_and_what_the_store_keeps(clocked_auth, auth_store_url, clock):
    auth = clocked_auth(auth_store_url, clock, totp_issuer="Acme Analytics")
    username = f"carol-{uuid.uuid4().hex[:8]}"
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=[])
    enrollment = auth.enroll_totp(username)
    parsed = pyotp.parse_uri(enrollment.provisioning_uri)
    assert parsed.secret == enrollment.secret and parsed.issuer == "Acme Analytics"
    assert parsed.name == username and parsed.interval == STEP and parsed.digits == 6
    assert enrollment.secret not in repr(enrollment)
    user = auth.users.get_user(username)
    with get_engine(auth_store_url).connect() as connection:
        row = connection.execute(
            sa.select(auth_totp).where(auth_totp.c.user_id == user.user_id)
        ).one()
    # Documented: the secret is stored as is (protect the database), no step used yet.
    assert row.secret == enrollment.secret and row.last_step is None
    assert auth.users.remove_user(username)
    with get_engine(auth_store_url).connect() as connection:
        for table in (auth_totp, auth_backup_codes):
            left = connection.execute(
                sa.select(sa.func.count()).where(table.c.user_id == user.user_id)
            ).scalar_one()
            assert left == 0


def test_auth28_enrollment_errors(clocked_auth, auth_store_url, clock):
    auth = clocked_auth(auth_store_url, clock)
    with pytest.raises(KeyError):
        auth.enroll_totp("nobody-" + uuid.uuid4().hex)
    username = f"dave-{uuid.uuid4().hex[:8]}"
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=[])
    with pytest.raises(SecurityConfigurationError, match="issuer"):
        auth.users.enroll_totp(username, issuer="a:b")
    assert not auth.users.totp_enrolled(auth.users.get_user(username))


def test_auth28_refresh_of_a_totp_session_keeps_working(served, clock):
    username, totp, _codes = enrolled(served.gateway.auth)
    pair = login(served, username, totp=code_at(totp, clock)).json()
    rotated = served.client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200, rotated.text


def test_auth28_openapi_documents_the_second_factor_fields(served):
    document = served.client.get("/openapi.json").json()
    request = document["components"]["schemas"]["TokenRequest"]
    assert {"totp", "backup_code"} <= set(request["properties"])
    assert request["required"] == ["username", "password"]
    operation = document["paths"]["/auth/token"]["post"]
    assert "second_factor_required" in operation["description"]
    assert "429" in operation["responses"]
