"""ThreatDetectionNode: brute force, credential stuffing, a new address at an unusual
hour and token replay, over events given as input or the gateway's events in the store;
blocking through the gateway's sign-in lockout. The PostgreSQL store is shared by the
session, so store-based tests look only at their own usernames, addresses and sessions."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.nodes import NodeRegistry
from kailash_nb.nodes.security import ThreatDetectionNode, threats
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError
from kailash_nb.security import AuthenticationError, LoginLockedError

SECRET = "kailash-nb-threat-node-tests-0123456789-abcdefghij"
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery"
# 2027-01-15 10:00 UTC: a Friday morning.
NOW = datetime(2027, 1, 15, 10, 0, tzinfo=UTC).timestamp()
DAY = 86400.0


@pytest.fixture
def at_now(monkeypatch):
    monkeypatch.setattr(threats, "_clock", lambda: NOW)


def failed(username: str, ip: str, ago: float = 60.0) -> dict:
    return {
        "event": "login_failed",
        "at": NOW - ago,
        "detail": {"username": username, "client_ip": ip},
    }


def signed_in(subject: str, ip: str, at: float) -> dict:
    return {"event": "login_succeeded", "at": at, "subject": subject, "client_ip": ip}


def detect(events: list, **config) -> dict:
    return ThreatDetectionNode(**config).execute(events=events)


def rules(result: dict) -> list[str]:
    return [threat["rule"] for threat in result["threats"]]


def test_registered_and_config_empty_builds(monkeypatch, tmp_path):
    assert NodeRegistry.get("ThreatDetectionNode") is ThreatDetectionNode
    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    builder = WorkflowBuilder()
    builder.add_node("ThreatDetectionNode", "threats", {})
    results, _ = LocalRuntime(history=False).execute(builder.build())
    assert results["threats"]["threat_detected"] is False and results["threats"]["threats"] == []


def test_brute_force_counts_failures_of_one_username_in_the_window(at_now):
    events = [failed("alice", f"198.51.100.{n % 3}", ago=30 + n) for n in range(10)]
    events.append(failed("alice", "198.51.100.1", ago=3600))  # outside the 15 min window
    result = detect(events)
    assert rules(result) == ["brute_force"] and result["threat_detected"] is True
    threat = result["threats"][0]
    assert threat["severity"] == "high"
    assert threat["evidence"] == {
        "username": "alice",
        "failures": 10,
        "client_ips": ["198.51.100.0", "198.51.100.1", "198.51.100.2"],
        "first_at": NOW - 39,
        "last_at": NOW - 30,
    }
    assert result["events_analyzed"] == 10
    assert rules(detect(events[1:])) == []  # 9 in the window
    assert rules(detect(events[1:], brute_force_threshold=9)) == ["brute_force"]
    assert rules(detect(events, window_minutes=120, brute_force_threshold=11)) == ["brute_force"]


def test_credential_stuffing_is_many_usernames_from_one_address(at_now):
    events = [failed(f"user{n}", "203.0.113.9") for n in range(5)]
    events += [failed(f"user{n}", f"192.0.2.{n}") for n in range(5, 9)]
    result = detect(events)
    assert rules(result) == ["credential_stuffing"]
    evidence = result["threats"][0]["evidence"]
    assert evidence["client_ip"] == "203.0.113.9" and evidence["usernames"] == 5
    assert evidence["sample_usernames"] == [f"user{n}" for n in range(5)]
    assert rules(detect(events[1:])) == []


def test_new_address_at_an_unusual_hour(monkeypatch):
    # Five days of sign-ins from one address at 10:00 UTC.
    history = [signed_in("u-1", "10.0.0.1", NOW - days * DAY) for days in range(1, 6)]

    def judged_at(hour: int, address: str, **config) -> dict:
        moment = datetime(2027, 1, 15, hour, 5, tzinfo=UTC).timestamp()
        monkeypatch.setattr(threats, "_clock", lambda: moment + 60)
        node = ThreatDetectionNode(**config)
        return node.execute(events=[*history, signed_in("u-1", address, moment)])

    result = judged_at(3, "198.51.100.7")
    assert rules(result) == ["new_address_unusual_hour"]
    assert result["threats"][0]["severity"] == "medium"
    evidence = result["threats"][0]["evidence"]
    assert (evidence["client_ip"], evidence["hour_utc"]) == ("198.51.100.7", 3)
    assert evidence["known_addresses"] == ["10.0.0.1"] and evidence["usual_hours_utc"] == [10]
    assert rules(judged_at(3, "10.0.0.1")) == []  # a known address at night
    assert rules(judged_at(11, "198.51.100.7")) == []  # within an hour of the usual one
    assert rules(judged_at(3, "198.51.100.7", history_days=0.5)) == []  # no history known


def test_a_user_without_history_is_not_judged(at_now):
    assert rules(detect([signed_in("u-new", "198.51.100.7", NOW - 60)])) == []


def test_token_replay_from_the_gateway_store(database_url, monkeypatch):
    monkeypatch.setattr(threats, "_clock", time.time)
    auth = KailashJWTAuth(secret_key=SECRET, store_url=database_url, password_hasher=FAST)
    pair = auth.create_token_pair(f"u-{uuid.uuid4().hex[:8]}", tenant_id="acme")
    auth.refresh_access_token(pair.refresh_token)
    with pytest.raises(AuthenticationError):
        auth.refresh_access_token(pair.refresh_token)
    result = ThreatDetectionNode(database_url=database_url).execute()
    replays = [
        threat
        for threat in result["threats"]
        if threat["rule"] == "token_replay" and threat["evidence"]["session_id"] == pair.session_id
    ]
    assert len(replays) == 1 and replays[0]["severity"] == "critical"
    assert replays[0]["evidence"]["tenant_id"] == "acme"


def test_brute_force_on_the_gateway_is_found_and_blocked(database_url, monkeypatch):
    monkeypatch.setattr(threats, "_clock", time.time)
    auth = KailashJWTAuth(secret_key=SECRET, store_url=database_url, password_hasher=FAST)
    name = f"carol-{uuid.uuid4().hex[:8]}"
    auth.add_user(name, PASSWORD, tenant_id="acme", roles=[])
    address = f"203.0.113.{uuid.uuid4().int % 250}"
    for _ in range(4):
        with pytest.raises(AuthenticationError):
            auth.login(name, "wrong password", client_ip=address)
    node = ThreatDetectionNode(
        database_url=database_url, brute_force_threshold=4, block=True, block_seconds=120
    )
    result = node.execute()
    mine = [t for t in result["threats"] if t["evidence"].get("username") == name]
    assert [t["rule"] for t in mine] == ["brute_force"]
    assert mine[0]["evidence"]["client_ips"] == [address] and mine[0]["evidence"]["failures"] == 4
    assert {"scope": "account", "value": name, "rule": "brute_force"}.items() <= next(
        block for block in result["blocked"] if block["value"] == name
    ).items()
    with pytest.raises(LoginLockedError) as caught:
        auth.login(name, PASSWORD)  # the right password, blocked
    assert 100 <= caught.value.retry_after <= 120
    blocked = auth.audit_events(event="threat_blocked", limit=1000)
    assert any(event.detail["value"] == name for event in blocked)


def test_stuffing_address_is_blocked_for_every_user(database_url, monkeypatch):
    monkeypatch.setattr(threats, "_clock", time.time)
    auth = KailashJWTAuth(secret_key=SECRET, store_url=database_url, password_hasher=FAST)
    victim = f"dave-{uuid.uuid4().hex[:8]}"
    auth.add_user(victim, PASSWORD, tenant_id="acme", roles=[])
    address = f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    for n in range(5):
        with pytest.raises(AuthenticationError):
            auth.login(f"nobody{n}-{victim}", "guess", client_ip=address)
    result = ThreatDetectionNode(database_url=database_url, block=True).execute()
    assert any(
        threat["rule"] == "credential_stuffing" and threat["evidence"]["client_ip"] == address
        for threat in result["threats"]
    )
    with pytest.raises(LoginLockedError):
        auth.login(victim, PASSWORD, client_ip=address)
    assert auth.login(victim, PASSWORD, client_ip="192.0.2.200").access_token


def test_without_block_nothing_is_locked(at_now, sqlite_url):
    events = [failed("erin", "192.0.2.1") for _ in range(10)]
    result = ThreatDetectionNode(database_url=sqlite_url).execute(events=events)
    assert rules(result) == ["brute_force"] and result["blocked"] == []


def test_tenant_filter_and_rule_choice(at_now):
    events = [{**failed("frank", "192.0.2.1"), "tenant_id": "acme"} for _ in range(10)]
    events += [failed(f"u{n}", "192.0.2.2") for n in range(5)]
    assert rules(detect(events)) == ["brute_force", "credential_stuffing"]
    assert rules(detect(events, detection_rules=["credential_stuffing"])) == ["credential_stuffing"]
    node = ThreatDetectionNode()
    assert rules(node.execute(events=events, tenant_id="acme")) == ["brute_force"]


def test_bad_input_and_configuration(at_now):
    with pytest.raises(NodeValidationError, match="events\\[0\\]"):
        detect([{"at": NOW}])
    with pytest.raises(NodeValidationError, match="timezone"):
        detect([{"event": "login_failed", "at": "2027-01-15T10:00:00"}])
    with pytest.raises(NodeValidationError, match="list"):
        detect("login_failed")
    with pytest.raises(NodeConfigurationError, match="unknown detection_rules"):
        ThreatDetectionNode(detection_rules=["insider_threat"])
    with pytest.raises(NodeConfigurationError, match="block"):
        ThreatDetectionNode(block="yes")
    with pytest.raises(NodeConfigurationError, match="stuffing_threshold"):
        ThreatDetectionNode(stuffing_threshold=0)
