"""Fixtures of the sign-in tests (lockout and TOTP): a store with no throttle rows left by
earlier tests, and auth facades whose user store runs on the test's clock."""

from __future__ import annotations

import pytest

from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.security.passwords import UserStore
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import auth_login_throttle, migrate


@pytest.fixture
def auth_store_url(database_url):
    """``database_url``, migrated, with no login-throttle rows left by earlier tests."""
    migrate(get_engine(database_url))
    with get_engine(database_url).begin() as connection:
        connection.execute(auth_login_throttle.delete())
    return database_url


@pytest.fixture
def clocked_auth(security_config, password_hasher):
    """Factory: ``clocked_auth(url, clock, **security)``, a ``KailashJWTAuth`` on ``url`` whose
    user store (lockouts, TOTP steps) reads ``clock``."""

    def make(url: str, clock, **security) -> KailashJWTAuth:
        config = security_config(**security)
        auth = KailashJWTAuth(config=config, store_url=url, password_hasher=password_hasher)
        auth.users = UserStore(url, hasher=password_hasher, clock=clock)
        return auth

    return make
