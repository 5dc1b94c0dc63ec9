"""The decision cache: what its key holds, and how long a change takes to show."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from _access_rules import make_rule, make_user
from _clock import Clock

from kailash_nb.access_control import AccessControlManager, DecisionCache, UserContext


def test_a_repeated_request_is_answered_from_the_cache():
    manager = AccessControlManager(rules=[make_rule("analysts", role="analyst")])
    first = manager.check_workflow_access(make_user("a", "acme", "analyst"), "payroll", "execute")
    again = manager.check_workflow_access(make_user("a", "acme", "analyst"), "payroll", "execute")
    assert (first.cached, again.cached) == (False, True)
    assert (again.allowed, again.applied_rules) == (first.allowed, first.applied_rules)
    assert manager.cache_info()["hits"] == 1


def test_a_cached_decision_of_tenant_a_never_answers_for_tenant_b():
    # Same user id in two tenants; in acme the user is admin (allowed and cached).
    manager = AccessControlManager(rules=[make_rule("acme-admins", role="admin", tenant_id="acme")])
    in_acme = make_user("sam", "acme", "admin")
    assert manager.check_workflow_access(in_acme, "payroll", "execute").allowed
    assert manager.check_workflow_access(in_acme, "payroll", "execute").cached
    in_globex = make_user("sam", "globex", "admin")
    decision = manager.check_workflow_access(in_globex, "payroll", "execute")
    assert not decision.allowed
    assert not decision.cached
    assert decision.tenant_id == "globex"


def test_a_revoked_role_stops_working_at_the_next_request():
    manager = AccessControlManager(rules=[make_rule("admins", role="admin")])
    assert manager.check_workflow_access(
        make_user("sam", "acme", "admin"), "payroll", "execute"
    ).allowed
    assert manager.check_workflow_access(
        make_user("sam", "acme", "admin"), "payroll", "execute"
    ).cached
    assert not manager.check_workflow_access(
        make_user("sam", "acme", "viewer"), "payroll", "execute"
    ).allowed


def test_changed_attributes_get_their_own_decision():
    condition = {"attribute": "user.attributes.department", "operator": "equals", "value": "hr"}
    manager = AccessControlManager(rules=[make_rule("hr", conditions=condition)])
    assert manager.check_workflow_access(make_user(department="hr"), "payroll", "execute").allowed
    assert not manager.check_workflow_access(
        make_user(department="it"), "payroll", "execute"
    ).allowed


def test_resource_attributes_are_part_of_the_key():
    condition = {
        "attribute": "resource.attributes.classification",
        "operator": "equals",
        "value": "public",
    }
    manager = AccessControlManager(rules=[make_rule("public", conditions=condition)])
    public = {"classification": "public"}
    assert manager.check_workflow_access(
        make_user(), "payroll", "execute", resource_attributes=public
    ).allowed
    secret = {"classification": "secret"}
    assert not manager.check_workflow_access(
        make_user(), "payroll", "execute", resource_attributes=secret
    ).allowed


def test_a_policy_change_takes_effect_at_once():
    manager = AccessControlManager(rules=[make_rule("everyone")])
    assert manager.check_workflow_access(make_user(), "payroll", "execute").allowed
    manager.add_rule(make_rule("stop", effect="deny"))
    assert not manager.check_workflow_access(make_user(), "payroll", "execute").allowed
    manager.remove_rule("stop")
    manager.set_role_inheritance({"admin": ["analyst"]})
    decision = manager.check_workflow_access(make_user(), "payroll", "execute")
    assert decision.allowed and not decision.cached


def test_a_cached_allow_ends_when_its_rule_expires():
    clock = Clock(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp())
    expiry = datetime(2027, 1, 1, 0, 0, 10, tzinfo=timezone.utc)
    manager = AccessControlManager(rules=[make_rule("until-10s", expires_at=expiry)], clock=clock)
    assert manager.check_workflow_access(make_user(), "payroll", "execute").allowed
    clock.advance(9)
    assert manager.check_workflow_access(make_user(), "payroll", "execute").cached
    clock.advance(1)
    assert not manager.check_workflow_access(make_user(), "payroll", "execute").allowed


def test_nothing_lives_longer_than_the_ttl():
    clock = Clock()
    manager = AccessControlManager(rules=[make_rule("everyone")], clock=clock, cache_ttl=30)
    manager.check_workflow_access(make_user(), "payroll", "execute")
    clock.advance(29.9)
    assert manager.check_workflow_access(make_user(), "payroll", "execute").cached
    clock.advance(0.1)
    assert not manager.check_workflow_access(make_user(), "payroll", "execute").cached


@pytest.mark.parametrize(
    "condition",
    [
        {"attribute": "environment.time", "operator": "time_between", "value": ["09:00", "17:00"]},
        {"attribute": "environment.ip", "operator": "in_network", "value": "10.0.0.0/8"},
        {"attribute": "user.session_id", "operator": "equals", "value": "s1"},
    ],
)
def test_decisions_that_read_per_request_data_are_not_cached(condition):
    manager = AccessControlManager(rules=[make_rule("windowed", conditions=condition)])
    user = UserContext("alice", "acme", session_id="s1")
    environment = {"time": datetime(2026, 12, 7, 10, tzinfo=timezone.utc), "ip": "10.0.0.1"}
    assert manager.check_workflow_access(user, "payroll", "execute", environment).allowed
    assert not manager.check_workflow_access(user, "payroll", "execute", environment).cached
    night = {"time": environment["time"] + timedelta(hours=12), "ip": "192.168.0.1"}
    if condition["attribute"] != "user.session_id":
        assert not manager.check_workflow_access(user, "payroll", "execute", night).allowed


def test_the_cache_keeps_at_most_max_entries():
    manager = AccessControlManager(rules=[make_rule("everyone", workflow="*")], cache_size=2)
    for workflow in ("a", "b", "c"):
        manager.check_workflow_access(make_user(), workflow, "execute")
    assert manager.cache_info()["size"] == 2
    assert not manager.check_workflow_access(make_user(), "a", "execute").cached
    assert manager.check_workflow_access(make_user(), "c", "execute").cached


def test_decision_cache_entries_end_at_their_deadline():
    cache = DecisionCache(max_entries=2, ttl=60)
    decision = AccessControlManager().check_workflow_access(make_user(), "w", "execute")
    cache.put("key", decision, valid_until=100.0)
    assert cache.get("key", 99.9) is decision
    assert cache.get("key", 100.0) is None
    assert len(cache) == 0
    with pytest.raises(ValueError, match="max_entries and ttl"):
        DecisionCache(max_entries=-1)


def test_cache_size_zero_turns_the_cache_off():
    manager = AccessControlManager(rules=[make_rule("everyone")], cache_size=0)
    manager.check_workflow_access(make_user(), "payroll", "execute")
    assert not manager.check_workflow_access(make_user(), "payroll", "execute").cached
