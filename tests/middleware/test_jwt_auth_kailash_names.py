"""KailashJWTAuth under Kailash's names: ``token_expiry_hours`` as the access tokens'
lifetime, ``create_token_pair``, ``verify_token``, ``refresh_access_token`` (rotation
with reuse detection), ``revoke_token`` and ``revoke_all_user_tokens`` (every process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.security import AuthenticationError, ClaimsError

SECRET = "kailash-nb-kailash-names-0123456789-abcdefghij"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def user():
    """A user id of this test only (the PostgreSQL store is shared by the session)."""
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_auth(database_url):
    def make(**options):
        options.setdefault("secret_key", SECRET)
        return KailashJWTAuth(store_url=database_url, password_hasher=FAST, **options)

    return make


def test_token_expiry_hours_is_the_access_lifetime(make_auth):
    auth = make_auth(token_expiry_hours=2)
    pair = auth.create_token_pair("u1", tenant_id="acme")
    claims = auth.verify_token(pair.access_token)
    assert claims.exp - claims.iat == 2 * 3600 == pair.expires_in
    assert pair.refresh_expires_in == 7 * 24 * 3600
    own_session = make_auth(token_expiry_hours=0.5, refresh_token_ttl=timedelta(hours=3))
    pair = own_session.create_token_pair("u1", tenant_id="acme")
    assert (pair.expires_in, pair.refresh_expires_in) == (1800, 3 * 3600)
    # Without refresh tokens it is the only lifetime there is.
    single = make_auth(token_expiry_hours=1, refresh_token_enabled=False)
    pair = single.create_token_pair("u1", tenant_id="acme")
    assert pair.refresh_token is None and pair.expires_in == 3600


def test_create_token_pair_carries_tenant_roles_permissions_and_claims(make_auth):
    auth = make_auth()
    pair = auth.create_token_pair(
        "user-42", tenant_id="acme", roles=["analyst"], permissions=["wf:execute"], team="blue"
    )
    claims = auth.verify_token(pair.access_token)
    assert (claims.sub, claims.tenant_id, claims.roles) == ("user-42", "acme", ["analyst"])
    assert claims.extra == {"permissions": ["wf:execute"], "team": "blue"}
    assert claims.family == pair.session_id
    positional = auth.create_token_pair("user-42", "acme")
    assert auth.verify_token(positional.access_token).roles == []


def test_create_token_pair_refuses_what_it_cannot_honour(make_auth):
    auth = make_auth()
    with pytest.raises(ClaimsError, match="tenant_id"):
        auth.create_token_pair("user-42")
    with pytest.raises(TypeError, match="session_id"):
        auth.create_token_pair("user-42", tenant_id="acme", session_id="s1")
    with pytest.raises(ClaimsError, match="reserved"):
        auth.create_token_pair("user-42", tenant_id="acme", exp=2**40)
    with pytest.raises(ClaimsError, match="roles"):
        auth.create_token_pair("user-42", tenant_id="acme", roles="admin")


def test_refresh_access_token_rotates_and_detects_reuse(make_auth):
    auth = make_auth()
    first = auth.create_token_pair("user-42", tenant_id="acme", roles=["analyst"])
    second = auth.refresh_access_token(first.refresh_token)
    assert second.session_id == first.session_id
    assert auth.verify_token(second.access_token).roles == ["analyst"]
    with pytest.raises(AuthenticationError) as caught:
        auth.refresh_access_token(first.refresh_token)  # reuse
    assert caught.value.code == "token_revoked"
    for token in (second.access_token,):
        with pytest.raises(AuthenticationError, match="revoked"):
            auth.verify_token(token)
    with pytest.raises(AuthenticationError):
        auth.refresh_access_token(second.refresh_token)  # the family is gone
    assert auth.audit_events(event="refresh_reuse_detected", session_id=first.session_id)


def test_revoke_token_ends_the_session(make_auth):
    auth = make_auth()
    pair = auth.create_token_pair("user-42", tenant_id="acme")
    assert auth.revoke_token(pair.access_token) is True
    assert auth.revoke_token(pair.refresh_token) is False  # already revoked
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.verify_token(pair.access_token)
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.refresh_access_token(pair.refresh_token)
    with pytest.raises(AuthenticationError):
        auth.revoke_token("not-a-token")


def test_revoke_all_user_tokens_ends_every_session_of_that_user_only(make_auth, user):
    auth = make_auth()
    mine = [auth.create_token_pair(user, tenant_id="acme") for _ in range(3)]
    other_tenant = auth.create_token_pair(user, tenant_id="globex")
    someone_else = auth.create_token_pair("other-" + user, tenant_id="acme")
    assert auth.revoke_all_user_tokens(user, tenant_id="acme") == 3
    for pair in mine:
        with pytest.raises(AuthenticationError, match="revoked"):
            auth.verify_token(pair.access_token)
        with pytest.raises(AuthenticationError, match="revoked"):
            auth.refresh_access_token(pair.refresh_token)
    assert auth.verify_token(other_tenant.access_token).sub == user
    assert auth.verify_token(someone_else.access_token).sub == "other-" + user
    assert auth.revoke_all_user_tokens(user) == 1  # every tenant; acme's already gone
    assert auth.revoke_all_user_tokens(user) == 0
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.verify_token(other_tenant.access_token)
    later = auth.create_token_pair(user, tenant_id="acme")
    assert auth.verify_token(later.access_token).sub == user  # new sessions work
    with pytest.raises(ClaimsError):
        auth.revoke_all_user_tokens("")
    events = auth.audit_events(event="session_revoked", limit=1000)
    reasons = [event.detail["reason"] for event in events if event.subject == user]
    assert reasons == ["user_revoked"] * 4


def test_revoke_all_user_tokens_reaches_another_process(make_auth, database_url, user):
    auth = make_auth()
    pair = auth.create_token_pair(user, tenant_id="acme")
    script = textwrap.dedent(
        f"""
        from kailash_nb.middleware.auth import KailashJWTAuth
        auth = KailashJWTAuth(secret_key={SECRET!r}, store_url={database_url!r})
        print(auth.revoke_all_user_tokens({user!r}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "1"
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.refresh_access_token(pair.refresh_token)
    # The access-token check may answer from its 1 s "not revoked" cache; past it, refused.
    fresh = make_auth()
    with pytest.raises(AuthenticationError, match="revoked"):
        fresh.verify_token(pair.access_token)


def test_purge_expired_drops_ended_sessions(database_url, user):
    from _clock import Clock

    from kailash_nb.security import SecurityConfig, TokenService

    clock = Clock()
    tokens = TokenService(SecurityConfig(jwt_secret=SECRET), database_url, clock=clock)
    tokens.issue(user, tenant_id="acme", roles=[])
    clock.advance(8 * 3600 + 1)
    assert tokens.purge_expired() >= 1
    assert tokens.revoke_subject(user) == []


SEED_BLOCK = """
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.nodes.security import MultiFactorAuthNode

# JWT with enterprise features
jwt_auth = KailashJWTAuth(
    secret_key="enterprise-jwt-secret-of-at-least-32-bytes",
    token_expiry_hours=8,          # Work day sessions
    refresh_token_enabled=True,
    session_management=True,
    audit_logging=True
)

# Multi-factor authentication
workflow.add_node("MultiFactorAuthNode", "mfa", {})
"""


def test_seed_enterprise_authentication(monkeypatch, tmp_path):
    """The seed's "Enterprise Authentication" block with ``kailash.`` -> ``kailash_nb.``
    and its 21-byte secret lengthened to 32+ bytes (the seed's is refused, AUTH-24:
    ``test_seed_example_with_its_weak_secret_refuses_to_start``); its ``workflow`` comes
    from the seed's setup block. The JWT facade issues work-day access tokens and the
    workflow's MFA node enrols and verifies a user."""
    import pyotp

    from kailash_nb import LocalRuntime, WorkflowBuilder

    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    namespace = {"workflow": WorkflowBuilder()}
    exec(SEED_BLOCK, namespace)
    jwt_auth = namespace["jwt_auth"]
    assert (jwt_auth.refresh_token_enabled, jwt_auth.session_management) == (True, True)
    pair = jwt_auth.create_token_pair("user-42", tenant_id="acme", roles=["analyst"])
    assert pair.expires_in == 8 * 3600
    assert jwt_auth.verify_token(pair.access_token).sub == "user-42"
    assert jwt_auth.refresh_access_token(pair.refresh_token).session_id == pair.session_id
    assert [event.event for event in jwt_auth.audit_events(session_id=pair.session_id)] == [
        "tokens_refreshed",
        "tokens_issued",
    ]

    workflow = namespace["workflow"].build()
    runtime = LocalRuntime(history=False)
    setup = runtime.execute(workflow, parameters={"mfa": {"action": "setup", "user_id": "user-42"}})
    secret = setup[0]["mfa"]["secret"]
    code = pyotp.TOTP(secret).now()
    verify = {"mfa": {"action": "verify", "user_id": "user-42", "code": code}}
    assert runtime.execute(workflow, parameters=verify)[0]["mfa"]["verified"] is True
    assert runtime.execute(workflow, parameters=verify)[0]["mfa"]["verified"] is False
