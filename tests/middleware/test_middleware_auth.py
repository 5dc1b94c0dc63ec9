"""KailashJWTAuth: the seed document's facade honours each keyword and refuses unknown
ones; login, refresh (with roles re-read) and logout over the store."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from pydantic import ValidationError

from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.security import AuthenticationError, SecurityConfig

SECRET = "kailash-nb-facade-tests-0123456789-abcdefghij"
PASSWORD = "correct horse battery staple"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def make_auth(database_url):
    def make(**options):
        options.setdefault("secret_key", SECRET)
        return KailashJWTAuth(store_url=database_url, password_hasher=FAST, **options)

    return make


@pytest.fixture
def username():
    return f"alice-{uuid.uuid4().hex[:8]}"


def test_seed_example_with_its_weak_secret_refuses_to_start(tmp_path):
    with pytest.raises(ValidationError, match="21 bytes"):
        KailashJWTAuth(
            secret_key="enterprise-jwt-secret",
            token_expiry_hours=8,
            refresh_token_enabled=True,
            session_management=True,
            audit_logging=True,
            store_url=f"sqlite:///{tmp_path / 'a.db'}",
        )
    with pytest.raises(ValidationError, match="jwt_secret is required"):
        KailashJWTAuth(store_url=f"sqlite:///{tmp_path / 'a.db'}")


def test_seed_example_with_a_strong_secret(make_auth, username):
    auth = make_auth(
        token_expiry_hours=8,
        refresh_token_enabled=True,
        session_management=True,
        audit_logging=True,
    )
    # token_expiry_hours is the access tokens' lifetime (as in Kailash); the session
    # then lasts Kailash's default refresh lifetime, 7 days.
    assert auth.config.access_token_ttl == timedelta(hours=8)
    assert auth.config.refresh_token_ttl == timedelta(days=7)
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=["analyst"])
    pair = auth.login(username, PASSWORD)
    assert pair.expires_in == 8 * 3600 and pair.refresh_expires_in == 7 * 24 * 3600
    claims = auth.verify_token(pair.access_token)
    assert claims.tenant_id == "acme" and claims.roles == ["analyst"]
    assert claims.extra == {"amr": ["pwd"], "preferred_username": username}


def test_unknown_and_conflicting_keywords_are_type_errors(make_auth, database_url):
    with pytest.raises(TypeError, match="token_expiry_minutes"):
        make_auth(token_expiry_minutes=5)
    with pytest.raises(TypeError, match="once"):
        make_auth(jwt_secret=SECRET)
    with pytest.raises(TypeError, match="once"):
        make_auth(token_expiry_hours=8, access_token_ttl=timedelta(hours=1))
    with pytest.raises(TypeError, match="True or False"):
        make_auth(session_management="no")
    with pytest.raises(TypeError, match="a number"):
        make_auth(token_expiry_hours="8")
    with pytest.raises(TypeError, match="not both"):
        KailashJWTAuth(secret_key=SECRET, config=SecurityConfig(jwt_secret=SECRET))
    for hours in (0, -1, 25, float("nan")):
        with pytest.raises(ValueError, match="token_expiry_hours"):
            make_auth(token_expiry_hours=hours)


def test_security_options_reach_the_config(make_auth, database_url):
    auth = make_auth(
        issuer="https://auth.example.com",
        audience="kailash-api",
        enable_rate_limiting=False,
        max_requests_per_minute=1000,
        access_token_ttl=timedelta(minutes=5),
    )
    assert (auth.config.issuer, auth.config.audience) == ("https://auth.example.com", "kailash-api")
    assert auth.config.enable_rate_limiting is False and auth.config.max_requests_per_minute == 1000
    pair = auth.issue_tokens("svc", tenant_id="acme", roles=[])
    assert pair.expires_in == 300
    claims = auth.verify_token(pair.access_token)
    assert claims.iss == "https://auth.example.com" and claims.aud == "kailash-api"
    config = SecurityConfig(jwt_secret=SECRET, leeway=5)
    assert KailashJWTAuth(config=config, store_url=database_url).config is config


def test_refresh_token_enabled_false(make_auth):
    auth = make_auth(refresh_token_enabled=False)
    pair = auth.issue_tokens("svc", tenant_id="acme", roles=[])
    assert pair.refresh_token is None
    with pytest.raises(AuthenticationError) as caught:
        auth.refresh_tokens(pair.access_token)
    assert caught.value.code == "refresh_disabled"


def test_session_management_decides_whether_logout_ends_access_at_once(make_auth):
    managed = make_auth(session_management=True)
    pair = managed.issue_tokens("svc", tenant_id="acme", roles=[])
    assert managed.logout(pair.access_token) is True
    with pytest.raises(AuthenticationError, match="revoked"):
        managed.verify_token(pair.access_token)

    stateless = make_auth(session_management=False)
    pair = stateless.issue_tokens("svc", tenant_id="acme", roles=[])
    stateless.logout(pair.access_token)
    assert stateless.verify_token(pair.access_token).sub == "svc"  # until exp (15 min)
    with pytest.raises(AuthenticationError, match="revoked"):
        stateless.refresh_tokens(pair.refresh_token)


def test_audit_logging_records_logins_or_nothing(make_auth, username):
    audited = make_auth(audit_logging=True)
    audited.add_user(username, PASSWORD, tenant_id="acme", roles=[])
    pair = audited.login(username, PASSWORD)
    with pytest.raises(AuthenticationError):
        audited.login(username, "wrong password")
    kinds = [event.event for event in audited.audit_events(session_id=pair.session_id)]
    assert kinds == ["login_succeeded", "tokens_issued"]
    failed = audited.audit_events(event="login_failed", limit=1000)
    assert any(event.detail == {"username": username} for event in failed)
    assert all(PASSWORD not in str(event) for event in audited.audit_events(limit=1000))

    silent = make_auth(audit_logging=False)
    pair = silent.login(username, PASSWORD)
    silent.refresh_tokens(pair.refresh_token)
    with pytest.raises(AuthenticationError):
        silent.refresh_tokens(pair.refresh_token)  # reuse: revoked, but not audited
    assert silent.audit_events(session_id=pair.session_id) == []


def test_refresh_rereads_roles_and_ends_sessions_of_removed_users(make_auth, username):
    auth = make_auth()
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=["admin", "analyst"])
    pair = auth.login(username, PASSWORD)
    auth.users.set_roles(username, ["analyst"])
    assert auth.verify_token(pair.access_token).roles == ["admin", "analyst"]  # until exp
    pair = auth.refresh_tokens(pair.refresh_token)
    assert auth.verify_token(pair.access_token).roles == ["analyst"]

    auth.users.remove_user(username)
    with pytest.raises(AuthenticationError) as caught:
        auth.refresh_tokens(pair.refresh_token)
    assert caught.value.code == "token_revoked"
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.verify_token(pair.access_token)


def test_service_sessions_keep_their_roles_on_refresh(make_auth):
    auth = make_auth()
    pair = auth.issue_tokens("svc-reports", tenant_id="acme", roles=["reader"])
    pair = auth.refresh_tokens(pair.refresh_token)
    assert auth.verify_token(pair.access_token).roles == ["reader"]


def test_login_errors_are_uniform(make_auth, username):
    auth = make_auth()
    auth.add_user(username, PASSWORD, tenant_id="acme", roles=[])
    messages = set()
    for name, password in (("nobody-" + username, PASSWORD), (username, "wrong password")):
        with pytest.raises(AuthenticationError) as caught:
            auth.login(name, password)
        messages.add((caught.value.code, str(caught.value)))
    assert messages == {("invalid_credentials", "the username or the password is incorrect")}
