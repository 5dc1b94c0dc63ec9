"""MultiFactorAuthNode: setup, single-use verification (also across processes), one step
of clock skew, wrong-code lockout shared with the gateway's sign-in, backup codes,
disable and status, over the store ``kailash-nb users totp`` writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import sqlalchemy as sa
from _clock import Clock
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.nodes import NodeRegistry
from kailash_nb.nodes.security import MultiFactorAuthNode, mfa
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError
from kailash_nb.security import LoginLockedError
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import auth_backup_codes, auth_events

SECRET = "kailash-nb-mfa-node-tests-0123456789-abcdefghij"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
STEP = 30


@pytest.fixture
def clock(monkeypatch):
    """The node's clock, in the middle of a TOTP step."""
    clock = Clock(1_800_000_015.0)
    monkeypatch.setattr(mfa, "_clock", clock)
    return clock


@pytest.fixture
def user():
    return f"u-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def run(database_url):
    """``run(action, user_id, **inputs)`` executes a one-node workflow (built once per
    call: a second execution, as a restarted notebook would make)."""

    def execute(action: str, user_id: str | None, config: dict | None = None, **inputs):
        builder = WorkflowBuilder()
        builder.add_node(
            "MultiFactorAuthNode", "mfa", {"database_url": database_url, **(config or {})}
        )
        parameters = {"action": action, **inputs}
        if user_id is not None:
            parameters["user_id"] = user_id
        results, _ = LocalRuntime(history=False).execute(
            builder.build(), parameters={"mfa": parameters}
        )
        return results["mfa"]

    return execute


def code_at(secret: str, when: float) -> str:
    return pyotp.TOTP(secret).at(int(when))


def test_registered_and_config_empty_builds():
    assert NodeRegistry.get("MultiFactorAuthNode") is MultiFactorAuthNode
    builder = WorkflowBuilder()
    builder.add_node("MultiFactorAuthNode", "mfa", {})
    assert type(builder.build().nodes["mfa"]) is MultiFactorAuthNode


def test_setup_gives_secret_uri_and_backup_codes_stored_hashed(run, user, database_url, clock):
    setup = run("setup", user, username="alice@example.com")
    assert setup["success"] is True and setup["method"] == "totp"
    uri = urlsplit(setup["provisioning_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    query = parse_qs(uri.query)
    assert query["secret"] == [setup["secret"]] and query["issuer"] == ["kailash_nb"]
    assert "alice%40example.com" in uri.path or "alice@example.com" in uri.path
    codes = setup["backup_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    with get_engine(database_url).connect() as connection:
        stored = (
            connection.execute(
                sa.select(auth_backup_codes.c.code_hash).where(auth_backup_codes.c.user_id == user)
            )
            .scalars()
            .all()
        )
    assert len(stored) == 10 and not set(stored) & {code.replace("-", "") for code in codes}
    status = run("status", user)
    assert status["enrolled"] is True and status["backup_codes_remaining"] == 10
    assert status["enrolled_at"] == clock.now and status["methods"] == ["totp", "backup_code"]


def test_setup_of_an_enrolled_user_needs_replace(run, user, clock):
    first = run("setup", user)
    refused = run("setup", user)  # a failed node: the runtime reports its error
    assert refused["failed"] is True and refused["error_type"] == "NodeValidationError"
    assert "already enrolled" in refused["error"]
    second = run("setup", user, replace=True)
    assert second["secret"] != first["secret"]
    clock.advance(STEP)
    old = run("verify", user, code=code_at(first["secret"], clock.now))
    assert old == {**old, "verified": False, "reason": "invalid_code"}
    assert run("verify", user, code=code_at(second["secret"], clock.now))["verified"] is True


def test_a_code_is_accepted_once_even_by_a_second_execution(run, user, clock):
    secret = run("setup", user)["secret"]
    code = code_at(secret, clock.now)
    assert run("verify", user, code=code)["verified"] is True  # AUTH-28
    again = run("verify", user, code=code)
    assert again["verified"] is False and again["reason"] == "invalid_code"
    assert again["success"] is False
    clock.advance(STEP)
    assert run("verify", user, code=code_at(secret, clock.now))["verified"] is True
    # A code of an earlier step than the last accepted one is refused too.
    assert run("verify", user, code=code_at(secret, clock.now - STEP))["verified"] is False


def test_one_step_of_clock_skew_is_accepted_two_are_not(run, user, clock):
    secret = run("setup", user)["secret"]
    assert run("verify", user, code=code_at(secret, clock.now - 2 * STEP))["verified"] is False
    assert run("verify", user, code=code_at(secret, clock.now + 2 * STEP))["verified"] is False
    assert run("verify", user, code=code_at(secret, clock.now - STEP))["verified"] is True
    clock.advance(2 * STEP)
    assert run("verify", user, code=code_at(secret, clock.now + STEP))["verified"] is True


def test_wrong_codes_lock_then_even_the_right_code_is_refused(run, user, clock):
    config = {"rate_limit_attempts": 3, "rate_limit_window": 300, "lockout_seconds": 60}
    secret = run("setup", user)["secret"]
    right = code_at(secret, clock.now)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(3):
        assert run("verify", user, config, code=wrong)["reason"] == "invalid_code"
    locked = run("verify", user, config, code=right)
    assert locked["verified"] is False and locked["reason"] == "locked"
    assert locked["retry_after"] == 60
    assert run("status", user)["locked"] is True
    clock.advance(61)
    assert run("verify", user, config, code=code_at(secret, clock.now))["verified"] is True


def test_lock_is_shared_with_the_gateway_sign_in(run, database_url, clock):
    auth = KailashJWTAuth(secret_key=SECRET, store_url=database_url, password_hasher=FAST)
    auth.users.clock = clock
    auth.users.second_factors.clock = clock
    name = f"alice-{uuid.uuid4().hex[:8]}"
    created = auth.add_user(name, "correct horse battery", tenant_id="acme", roles=["admin"])
    run("setup", None, username=name)
    for _ in range(6):  # the gateway's default: 6 wrong codes in 5 minutes
        assert run("verify", created.user_id, code="000000")["verified"] is False
    with pytest.raises(LoginLockedError):
        auth.login(name, "correct horse battery", totp="000000")


def test_enrolment_by_the_cli_is_seen_and_verified_by_the_node(run, database_url, clock, capsys):
    from kailash_nb.cli import main

    auth = KailashJWTAuth(secret_key=SECRET, store_url=database_url, password_hasher=FAST)
    name = f"bob-{uuid.uuid4().hex[:8]}"
    created = auth.add_user(name, "correct horse battery", tenant_id="acme", roles=[])
    status = main(["users", "totp", name, "--tenant", "acme", "--database-url", database_url])
    assert status == 0
    printed = capsys.readouterr().out
    secret = next(
        line.split(":", 1)[1].strip() for line in printed.splitlines() if "secret:" in line
    )
    seen = run("status", None, username=name)
    assert seen["user_id"] == created.user_id and seen["enrolled"] is True
    assert run("verify", created.user_id, code=code_at(secret, clock.now))["verified"] is True
    # ... and the node's disable is what the gateway's sign-in sees.
    assert run("disable", created.user_id)["disabled"] is True
    assert auth.users.totp_enrolled(created) is False


def test_backup_code_works_once(run, user, clock):
    codes = run("setup", user)["backup_codes"]
    used = run("verify", user, code=codes[0].upper(), method="backup_code")
    assert used["verified"] is True and used["method"] == "backup_code"
    assert run("verify", user, code=codes[0], method="backup_code")["verified"] is False  # AUTH-31
    assert run("status", user)["backup_codes_remaining"] == 9


def test_disable_and_status(run, user, clock):
    secret = run("setup", user)["secret"]
    assert run("disable", user) == {
        "action": "disable",
        "user_id": user,
        "success": True,
        "disabled": True,
    }
    assert run("disable", user)["disabled"] is False
    refused = run("verify", user, code=code_at(secret, clock.now))
    assert refused["verified"] is False and refused["reason"] == "not_enrolled"
    status = run("status", user)
    assert status["enrolled"] is False and status["methods"] == []


def test_events_are_recorded_for_threat_detection(run, user, database_url, clock):
    secret = run("setup", user)["secret"]
    run("verify", user, code="000000" if code_at(secret, clock.now) != "000000" else "111111")
    run("verify", user, code=code_at(secret, clock.now))
    run("disable", user)
    with get_engine(database_url).connect() as connection:
        kinds = (
            connection.execute(
                sa.select(auth_events.c.event)
                .where(auth_events.c.subject == user)
                .order_by(auth_events.c.seq)
            )
            .scalars()
            .all()
        )
    assert kinds == ["mfa_enrolled", "second_factor_failed", "mfa_verified", "mfa_disabled"]
    quiet = f"{user}-quiet"
    run("setup", quiet, {"audit": False})
    with get_engine(database_url).connect() as connection:
        assert not connection.execute(
            sa.select(auth_events.c.seq).where(auth_events.c.subject == quiet)
        ).first()


def test_bad_input_and_configuration_are_typed_errors(run, user):
    with pytest.raises(NodeValidationError, match="action must be one of"):
        MultiFactorAuthNode().execute(action="enroll", user_id=user)
    with pytest.raises(NodeValidationError, match="user_id"):
        MultiFactorAuthNode().execute(action="status")
    with pytest.raises(NodeValidationError, match="method"):
        MultiFactorAuthNode().execute(action="verify", user_id=user, code="1", method="sms")
    with pytest.raises(NodeValidationError, match="needs the code"):
        MultiFactorAuthNode().execute(action="verify", user_id=user)
    with pytest.raises(NodeConfigurationError, match="issuer"):
        MultiFactorAuthNode(issuer="a:b")
    with pytest.raises(NodeConfigurationError, match="rate_limit_attempts"):
        MultiFactorAuthNode(rate_limit_attempts=0)
    with pytest.raises(NodeConfigurationError, match="audit"):
        MultiFactorAuthNode(audit="yes")
    with pytest.raises(NodeConfigurationError):
        MultiFactorAuthNode(sms_provider={})  # not offered: refused, never ignored


def test_replay_is_refused_across_processes(database_url, user):
    # Real time: the other process reads the wall clock too.
    node = MultiFactorAuthNode(database_url=database_url)
    secret = node.execute(action="setup", user_id=user)["secret"]
    code = pyotp.TOTP(secret).now()
    script = textwrap.dedent(
        f"""
        from kailash_nb.nodes.security import MultiFactorAuthNode
        node = MultiFactorAuthNode(database_url={database_url!r})
        print(node.execute(action="verify", user_id={user!r}, code={code!r})["verified"])
        """
    )

    def other_process() -> str:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout.strip()

    assert other_process() == "True"
    assert node.execute(action="verify", user_id=user, code=code)["verified"] is False
    assert other_process() == "False"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(code=st.one_of(st.text(max_size=12), st.from_regex(r"\A[0-9]{6}\Z")))
def test_only_the_codes_of_the_window_are_accepted(code, sqlite_url, monkeypatch):
    clock = Clock(1_800_000_015.0)
    monkeypatch.setattr(mfa, "_clock", clock)
    user = f"u-{uuid.uuid4().hex[:12]}"
    node = MultiFactorAuthNode(database_url=sqlite_url, rate_limit_attempts=10_000, audit=False)
    secret = node.execute(action="setup", user_id=user)["secret"]
    window = {code_at(secret, clock.now + offset * STEP) for offset in (-1, 0, 1)}
    verified = node.execute(action="verify", user_id=user, code=code)["verified"]
    assert verified is (code in window)
