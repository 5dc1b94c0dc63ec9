"""Password hashing and UserStore, including AUTH-27 (unknown user and wrong password
take the same path). Store-backed tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.security import (
    AuthenticationError,
    ClaimsError,
    PasswordPolicyError,
    UserExistsError,
    UserStore,
    hash_password,
    verify_password,
)
from kailash_nb.security.lockout import LoginLockedError
from kailash_nb.security.passwords import throttle_key
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import auth_users

PASSWORD = "correct horse battery staple"
# Cheap parameters keep the suite fast; the timing test uses the real defaults.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class CountingHasher(PasswordHasher):
    """A PasswordHasher that counts ``verify`` calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.verifications = 0

    def verify(self, hash, password):  # noqa: A002 - argon2's parameter name
        self.verifications += 1
        return super().verify(hash, password)


@pytest.fixture
def username():
    """A username unique to the test (the PostgreSQL database is shared by the session)."""
    return f"alice-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def users(database_url):
    return UserStore(database_url, hasher=FAST)


def test_hash_is_salted_argon2id_and_verifies():
    first, second = hash_password(PASSWORD, FAST), hash_password(PASSWORD, FAST)
    assert first.startswith("$argon2id$") and first != second
    assert verify_password(first, PASSWORD, FAST)
    assert not verify_password(first, PASSWORD + "!", FAST)
    assert not verify_password("not-a-hash", PASSWORD, FAST)
    assert PasswordHasher().hash("x").startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_add_and_authenticate(users, username, database_url):
    user = users.add_user(username, PASSWORD, tenant_id="acme", roles=["analyst"])
    assert users.authenticate(username, PASSWORD) == user
    assert users.authenticate(username.upper(), PASSWORD) == user  # one account per name
    assert users.get_user(username) == user and users.get_user_by_id(user.user_id) == user
    assert user.roles == ("analyst",) and "hash" not in repr(user)
    with get_engine(database_url).connect() as connection:
        stored = connection.execute(
            sa.select(auth_users.c.password_hash).where(auth_users.c.user_id == user.user_id)
        ).scalar_one()
    assert PASSWORD not in stored and stored.startswith("$argon2id$")


def test_duplicate_usernames_refused(users, username):
    users.add_user(username, PASSWORD, tenant_id="acme", roles=[])
    with pytest.raises(UserExistsError, match="already exists"):
        users.add_user(username.title(), PASSWORD, tenant_id="globex", roles=[])


@pytest.mark.parametrize(
    ("name", "password", "error"),
    [
        ("", PASSWORD, PasswordPolicyError),
        (" padded", PASSWORD, PasswordPolicyError),
        ("tab\tname", PASSWORD, PasswordPolicyError),
        ("rtl\u202ename", PASSWORD, PasswordPolicyError),
        ("x" * 129, PASSWORD, PasswordPolicyError),
        (42, PASSWORD, PasswordPolicyError),
        ("bob", "short", PasswordPolicyError),
        ("bob", "x" * 1025, PasswordPolicyError),
        ("bob", None, PasswordPolicyError),
    ],
)
def test_username_and_password_policy(users, name, password, error):
    with pytest.raises(error):
        users.add_user(name, password, tenant_id="acme", roles=[])


def test_roles_and_tenant_types_checked(users, username):
    with pytest.raises(ClaimsError, match="not one string"):
        users.add_user(username, PASSWORD, tenant_id="acme", roles="admin")
    with pytest.raises(ClaimsError, match="tenant_id"):
        users.add_user(username, PASSWORD, tenant_id=["acme"], roles=[])


def test_auth_27_unknown_user_and_wrong_password_take_the_same_path(database_url, username):
    hasher = CountingHasher(time_cost=1, memory_cost=1024, parallelism=1)
    users = UserStore(database_url, hasher=hasher)
    users.add_user(username, PASSWORD, tenant_id="acme", roles=[])
    long_password = "p" * 1024
    users.add_user(username + "-long", long_password, tenant_id="acme", roles=[])
    attempts = [
        ("nobody-" + username, PASSWORD),  # unknown user
        (username, "wrong password"),  # wrong password
        (username, ""),
        (username, None),
        (None, PASSWORD),
        ("", PASSWORD),
        (username, PASSWORD + "x" * 2000),  # over the length limit
        (username + "-long", long_password + "x"),  # not truncated to the limit
    ]
    errors = []
    for name, password in attempts:
        before = hasher.verifications
        with pytest.raises(AuthenticationError) as caught:
            users.authenticate(name, password)
        assert hasher.verifications == before + 1, (name, password)  # exactly one hash check
        errors.append((type(caught.value), caught.value.code, str(caught.value)))
    assert set(errors) == {
        (AuthenticationError, "invalid_credentials", "the username or the password is incorrect")
    }
    assert users.authenticate(username + "-long", long_password).username == username + "-long"


def test_login_upgrades_hashes_made_with_older_parameters(database_url, username):
    UserStore(database_url, hasher=FAST).add_user(username, PASSWORD, tenant_id="acme", roles=[])
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    users = UserStore(database_url, hasher=stronger)
    user = users.authenticate(username, PASSWORD)
    with get_engine(database_url).connect() as connection:
        stored = connection.execute(
            sa.select(auth_users.c.password_hash).where(auth_users.c.user_id == user.user_id)
        ).scalar_one()
    assert "m=2048,t=2,p=1" in stored and not stronger.check_needs_rehash(stored)
    assert users.authenticate(username, PASSWORD) == user


def test_set_roles_and_remove_user(users, username):
    users.add_user(username, PASSWORD, tenant_id="acme", roles=["admin", "analyst"])
    assert users.set_roles(username, ["analyst"]).roles == ("analyst",)
    assert users.authenticate(username, PASSWORD).roles == ("analyst",)
    with pytest.raises(KeyError):
        users.set_roles("nobody-" + username, [])
    assert users.remove_user(username) is True and users.remove_user(username) is False
    with pytest.raises(AuthenticationError):
        users.authenticate(username, PASSWORD)


def test_throttle_key_is_one_per_account():
    assert throttle_key("Alice") == throttle_key("alice") == throttle_key("ＡＬＩＣＥ")
    assert throttle_key("alice") != throttle_key("bob")
    # Names no account can have still get a key of their own.
    assert throttle_key(" padded") != throttle_key("padded") and throttle_key(None)


def test_auth_27_holds_with_lockout_and_totp(database_url, username):
    """AUTH-27 with AUTH-26/28 on: an enrolled user's wrong password looks like an unknown
    user's (one hash check each, no hint of the second factor), and once locked both are
    refused before any hash check."""
    hasher = CountingHasher(time_cost=1, memory_cost=1024, parallelism=1)
    auth = KailashJWTAuth(
        jwt_secret="kailash-nb-password-tests-0123456789-abcdefgh",
        store_url=database_url,
        login_max_failures=2,
    )
    auth.users = UserStore(database_url, hasher=hasher)
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=[])
    auth.enroll_totp(username)
    outcomes = []
    for name in (username, "nobody-" + username):
        for _ in range(2):
            before = hasher.verifications
            with pytest.raises(AuthenticationError) as caught:
                auth.login(name, "wrong password", totp="123456")
            assert hasher.verifications == before + 1
            outcomes.append((type(caught.value), caught.value.code, str(caught.value)))
        before = hasher.verifications
        with pytest.raises(LoginLockedError) as locked:
            auth.login(name, PASSWORD, totp="123456")
        assert hasher.verifications == before
        outcomes.append((type(locked.value), locked.value.retry_after, str(locked.value)))
    assert outcomes[:3] == outcomes[3:]
    assert outcomes[0][:2] == (AuthenticationError, "invalid_credentials")
