"""Conditions shared between the rules of a policy: compiled once, evaluated once per
decision, and only shared when they mean the same."""

from __future__ import annotations

import pytest
from _access_rules import make_rule, make_user

from kailash_nb.access_control import AccessControlManager, Action, PolicyError, Resource
from kailash_nb.access_control._shared import spec_key

HOLDS = {"attribute": "user.attributes.department", "operator": "equals", "value": "finance"}
RAISES = {"attribute": "user.attributes.missing", "operator": "greater_than", "value": 1}
LEVEL = {"attribute": "user.attributes.level", "operator": "greater_or_equal", "value": 0}
SAME_TEAM = {
    "attribute": "user.attributes.team",
    "operator": "equals",
    "value_from": "resource.attributes.team",
}


class Team:
    """A team name that counts how often it is compared."""

    def __init__(self, name: str, comparisons: list[str]) -> None:
        self.name = name
        self.comparisons = comparisons

    def __eq__(self, other: object) -> bool:
        self.comparisons.append(self.name)
        return isinstance(other, Team) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


def decide(rules, user, resource=None):
    manager = AccessControlManager(rules=rules, cache_size=0)
    return manager.check_access(user, Action.EXECUTE, resource or Resource("payroll"))


def test_a_sub_condition_shared_by_rules_is_evaluated_once_per_decision():
    comparisons: list[str] = []
    user = make_user("alice", "acme", team=Team("ledger", comparisons), level=2)
    resource = Resource("payroll", attributes={"team": Team("ledger", comparisons)})
    rules = [
        make_rule(f"r{index}", conditions={"all": [SAME_TEAM, {**LEVEL, "value": index}]})
        for index in range(4)
    ]
    decision = decide(rules, user, resource)
    assert decision.applied_rules == ("r0", "r1", "r2")
    assert decision.conditions_met == {"r0": True, "r1": True, "r2": True, "r3": False}
    assert comparisons == ["ledger"]
    decide(rules, user, resource)  # a new decision evaluates it anew
    assert comparisons == ["ledger", "ledger"]


def test_a_shared_sub_condition_that_raises_denies_in_every_deny_and_grants_in_no_allow():
    shared = {"any": [RAISES, HOLDS]}  # raises before it could hold
    rules = [
        make_rule("permit-a", conditions={"all": [shared, LEVEL]}),
        make_rule("permit-b", conditions={"all": [LEVEL, shared]}),
        make_rule("forbid", "deny", conditions={"all": [LEVEL, shared]}),
    ]
    user = make_user("alice", "acme", department="finance", level=1)
    decision = decide(rules, user)
    assert not decision.allowed
    assert decision.applied_rules == ("forbid",)
    assert [error.split(":")[0] for error in decision.errors] == ["rule 'forbid'"]
    allow_only = decide(rules[:2], user)
    assert not allow_only.allowed
    assert allow_only.conditions_met == {"permit-a": False, "permit-b": False}
    assert len(allow_only.errors) == 2


def test_conditions_that_look_alike_but_differ_are_not_shared():
    user = make_user("alice", "acme", codes=[1, 2], flag=1)  # a list is kept as a tuple
    as_tuple = {"attribute": "user.attributes.codes", "operator": "equals", "value": (1, 2)}
    as_list = {"attribute": "user.attributes.codes", "operator": "equals", "value": [1, 2]}
    decision = decide(
        [make_rule("tuple", conditions=as_tuple), make_rule("list", conditions=as_list)], user
    )
    assert decision.conditions_met == {"tuple": True, "list": False}


def test_spec_keys_ignore_key_order_and_keep_types():
    assert spec_key({"a": 1, "b": [2]}) == spec_key({"b": [2], "a": 1})
    assert spec_key({"value": 1}) != spec_key({"value": True})
    assert spec_key({"value": 1}) != spec_key({"value": 1.0})
    assert spec_key({"value": [1]}) != spec_key({"value": (1,)})
    assert spec_key({"value": {1: 2}}) == spec_key({"value": {1: 2}})


def test_a_condition_that_contains_itself_is_a_policy_error():
    looped: dict = {"all": [{"attribute": "user.attributes.level", "operator": "exists"}]}
    looped["all"].append(looped)
    with pytest.raises(PolicyError, match="rule 'loop': a condition contains itself"):
        AccessControlManager(rules=[make_rule("loop", conditions=looped)])
