"""The decision side of the AUTHZ items of the security checklist, one test per id.

The runtime and gateway sides (AUTHZ-02's refusal to start, 09, 10, 12, 14, 15, 16, the
audit records of 17, the file watcher of 18) belong to the access-controlled runtime
and the gateway.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from _access_rules import make_rule, make_user
from _clock import Clock
from hypothesis import given, settings
from hypothesis import strategies as st

from kailash_nb.access_control import (
    AccessControlConfigurationError,
    AccessControlManager,
    Action,
    PermissionRule,
    Policy,
    PolicyError,
    Resource,
    UserContext,
    load_policy,
)

ROLES = {"admin": ["analyst"], "analyst": ["viewer"]}
HOLDS = {"attribute": "user.attributes.department", "operator": "equals", "value": "finance"}
FAILS = {"attribute": "user.attributes.department", "operator": "equals", "value": "hr"}
RAISES = {"attribute": "user.attributes.missing", "operator": "greater_than", "value": 1}
CONDITIONS = {"none": {}, "holds": HOLDS, "fails": FAILS, "raises": RAISES}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize(
    "resource",
    [Resource("payroll"), Resource("payroll", "load"), Resource("payroll", "load", "ssn")],
)
def test_authz_01_an_empty_policy_denies_every_request(action, resource):
    manager = AccessControlManager(roles=ROLES)
    manager.use_policy(load_policy("rules: []\n"))
    decision = manager.check_access(
        make_user("root", "acme", "admin", "super_admin"), action, resource
    )
    assert not decision.allowed
    assert decision.applied_rules == ()


def test_authz_02_access_control_is_never_disabled_and_an_unreadable_file_is_an_error(tmp_path):
    with pytest.raises(AccessControlConfigurationError, match="cannot be disabled"):
        AccessControlManager(enabled=False)
    manager = AccessControlManager()
    for unreadable in (tmp_path / "missing.yaml", tmp_path):  # absent, a directory
        with pytest.raises(PolicyError, match="cannot read the policies file"):
            manager.load_policies(unreadable)


# -- AUTHZ-03: order and priorities never change a decision -------------------------------

# Few values per dimension, weighted towards matching, so that most examples have rules
# of both effects that match the request (and some that raise, mask or miss).
ACTIONS = (Action.EXECUTE, Action.READ_OUTPUT)

rule_specs = st.tuples(
    st.sampled_from(("allow", "deny")),
    st.sampled_from(ACTIONS),
    st.sampled_from(("payroll", "*", "reports")),
    st.sampled_from((None, None, "load", "*", "export")),
    st.sampled_from((None, None, "ssn", "*")),
    st.sampled_from((None, None, "viewer", "analyst", "admin")),
    st.sampled_from((None, None, None, "alice", "bob")),
    st.sampled_from((None, None, None, "acme", "globex")),
    st.sampled_from(("none", "none", "holds", "fails", "raises")),
)
requests = st.tuples(
    st.sampled_from(("alice", "bob")),
    st.sampled_from(("acme", "globex")),
    st.frozensets(
        st.sampled_from(("viewer", "analyst", "admin", "intern")), min_size=1, max_size=2
    ),
    st.sampled_from(ACTIONS),
    st.sampled_from(("payroll", "payroll", "reports")),
    st.sampled_from((None, "load", "export")),
    st.sampled_from((None, "ssn", "name")),
)


def build_rule(index: int, spec: tuple, priority: int) -> PermissionRule:
    effect, action, workflow, node, field, role, user_id, tenant, condition = spec
    if node is None:
        kind, resource_id, workflow_id, field = "workflow", workflow, "*", None
    else:
        kind = "node" if field is None else "field"
        resource_id, workflow_id = node, workflow
    return PermissionRule(
        id=f"rule{index:02d}",
        resource_type=kind,
        resource_id=resource_id,
        workflow_id=workflow_id,
        field=field,
        permission=action,
        effect=effect,
        role=role,
        user_id=user_id,
        tenant_id=tenant,
        conditions=CONDITIONS[condition],
        priority=priority,
    )


def request_of(spec: tuple) -> tuple[UserContext, Action, Resource]:
    user_id, tenant, roles, action, workflow, node, field = spec
    user = UserContext(user_id, tenant, roles=sorted(roles), attributes={"department": "finance"})
    return user, action, Resource(workflow, node, field if node else None)


def expected(specs: list[tuple], user: UserContext, action: Action, resource: Resource) -> tuple:
    """What the decision must be, by the checklist's rules, rule by rule."""
    roles = Policy(roles=ROLES).roles.expand(user.role_set)
    level = 0 if resource.node_id is None else 1 if resource.field is None else 2

    def applies(spec: tuple, rule_level: int) -> bool:
        effect, rule_action, workflow, node, field, role, user_id, tenant, condition = spec
        return (
            rule_action is action
            and workflow in ("*", resource.workflow_id)
            and (rule_level < 1 or node in ("*", resource.node_id))
            and (rule_level < 2 or level < 2 or field in ("*", resource.field))
            and role in (None, *roles)
            and user_id in (None, user.user_id)
            and tenant in (None, user.tenant_id)
            and (condition in ("none", "holds") or (condition == "raises" and effect == "deny"))
        )

    denies, allows, conditional_allows, masked = set(), set(), set(), set()
    for index, spec in enumerate(specs):
        rule_level = 0 if spec[3] is None else 1 if spec[4] is None else 2
        if not applies(spec, rule_level):
            continue
        if rule_level > level:
            if level == 1 and action is Action.READ_OUTPUT and spec[0] == "deny":
                masked.add(spec[4])
        elif spec[0] == "deny":
            denies.add(f"rule{index:02d}")
        elif spec[8] == "none":
            allows.add(f"rule{index:02d}")
        else:
            conditional_allows.add(f"rule{index:02d}")
    if denies:  # every matching deny is named
        return False, tuple(sorted(denies)), ()
    # the unconditional allows decide when there are any; else the conditional ones
    allows = allows or conditional_allows
    if allows:
        return True, tuple(sorted(allows)), tuple(sorted(masked))
    return False, (), ()


@settings(max_examples=400, deadline=None)
@given(
    specs=st.lists(rule_specs, min_size=6, max_size=30),
    request=requests,
    data=st.data(),
)
def test_authz_03_rule_order_and_priorities_never_change_a_decision(specs, request, data):
    user, action, resource = request_of(request)
    priorities = data.draw(
        st.lists(st.integers(-1000, 1000), min_size=len(specs), max_size=len(specs))
    )
    order = data.draw(st.permutations(range(len(specs))))
    reordered_priorities = data.draw(
        st.lists(st.integers(-1000, 1000), min_size=len(specs), max_size=len(specs))
    )
    first = Policy([build_rule(i, spec, priorities[i]) for i, spec in enumerate(specs)], ROLES)
    second = Policy([build_rule(i, specs[i], reordered_priorities[i]) for i in order], ROLES)
    one = first.decide(user, action, resource, now=time.time())[0]
    other = second.decide(user, action, resource, now=time.time())[0]
    outcome = (one.allowed, one.applied_rules, one.masked_fields)
    assert outcome == (other.allowed, other.applied_rules, other.masked_fields)
    assert one.errors == other.errors
    assert outcome == expected(specs, user, action, resource)


@settings(max_examples=200, deadline=None)
@given(specs=st.lists(rule_specs, max_size=20), request=requests)
def test_authz_03_a_matching_deny_always_wins(specs, request):
    user, action, resource = request_of(request)
    rules = [build_rule(i, spec, 10_000) for i, spec in enumerate(specs)]
    deny = PermissionRule(
        "zz-deny", "workflow", resource.workflow_id, action, "deny", priority=-10_000
    )
    decision = Policy([*rules, deny], ROLES).decide(user, action, resource, now=time.time())[0]
    assert not decision.allowed
    assert "zz-deny" in decision.applied_rules


@pytest.mark.parametrize("strategy", ["hybrid", "abac"])
@pytest.mark.parametrize("deny_first", [True, False])
@pytest.mark.parametrize(("allow_priority", "deny_priority"), [(100, 0), (0, 100)])
def test_authz_04_a_conditional_abac_allow_never_beats_an_rbac_deny(
    strategy, deny_first, allow_priority, deny_priority
):
    allow = make_rule("abac-allow", conditions=HOLDS, priority=allow_priority)
    deny = make_rule("rbac-deny", effect="deny", role="analyst", priority=deny_priority)
    rules = [deny, allow] if deny_first else [allow, deny]
    manager = AccessControlManager(strategy, rules=rules)
    decision = manager.check_workflow_access(
        make_user("a", "acme", "analyst", department="finance"), "payroll", "execute"
    )
    assert not decision.allowed
    assert decision.applied_rules == ("rbac-deny",)


@pytest.mark.parametrize(
    "condition",
    [
        RAISES,  # a missing attribute
        {
            "attribute": "user.attributes.department",
            "operator": "greater_than",
            "value": 3,
        },  # a type error
        {
            "attribute": "user.attributes.department",
            "operator": "security_level_meets",
            "value": "secret",
        },
        {
            "attribute": "environment.ip",
            "operator": "in_network",
            "value": "10.0.0.0/8",
        },  # no address
    ],
)
def test_authz_05_a_raising_condition_denies_in_a_deny_and_grants_nothing_in_an_allow(condition):
    user = make_user("a", "acme", "analyst", department="finance")
    forbid = AccessControlManager(
        rules=[make_rule("open"), make_rule("forbid", effect="deny", conditions=condition)]
    )
    decision = forbid.check_workflow_access(user, "payroll", "execute")
    assert not decision.allowed
    assert decision.applied_rules == ("forbid",)
    assert decision.errors and decision.errors[0].startswith("rule 'forbid': ")
    permit = AccessControlManager(rules=[make_rule("permit", conditions=condition)])
    decision = permit.check_workflow_access(user, "payroll", "execute")
    assert not decision.allowed
    assert "default deny" in decision.reason
    assert decision.errors and decision.errors[0].startswith("rule 'permit': ")
    # not applicable: another allow still allows
    both = AccessControlManager(
        rules=[make_rule("permit", conditions=condition), make_rule("open")]
    )
    assert both.check_workflow_access(user, "payroll", "execute").applied_rules == ("open",)


@pytest.mark.parametrize(
    "condition",
    [
        {"type": "custom", "value": {"function": "check"}},
        {"type": "data_contains", "value": {"field": "x", "value": 1}},
        {"attribute": "user.attributes.x", "operator": "fuzzy", "value": 1},
        {"attribute": "request.x", "operator": "equals", "value": 1},
    ],
)
def test_authz_06_an_unknown_condition_is_rejected_at_load(condition):
    with pytest.raises(PolicyError, match="rule 'r'"):
        AccessControlManager(rules=[make_rule("r", effect="deny", conditions=condition)])


def test_authz_07_the_same_user_id_in_two_tenants_gets_two_decisions():
    manager = AccessControlManager(rules=[make_rule("acme-admins", role="admin", tenant_id="acme")])
    admin_in_a = make_user("sam", "acme", "admin")
    for _ in range(2):
        assert manager.check_workflow_access(admin_in_a, "payroll", "execute").allowed
    same_id_in_b = make_user("sam", "globex", "admin")
    decision = manager.check_workflow_access(same_id_in_b, "payroll", "execute")
    assert not decision.allowed and not decision.cached


def test_authz_08_a_revoked_role_or_an_expired_rule_denies_the_next_request():
    clock = Clock(datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp())
    expiry = datetime(2027, 1, 1, 0, 1, tzinfo=timezone.utc)
    manager = AccessControlManager(
        rules=[
            make_rule("admins", role="admin"),
            make_rule("temporary", user_id="tmp", expires_at=expiry),
        ],
        clock=clock,
    )
    for _ in range(2):
        assert manager.check_workflow_access(
            make_user("sam", "acme", "admin"), "payroll", "execute"
        ).allowed
    assert not manager.check_workflow_access(make_user("sam", "acme"), "payroll", "execute").allowed
    for _ in range(2):
        assert manager.check_workflow_access(make_user("tmp"), "payroll", "execute").allowed
    clock.now = expiry.timestamp()
    assert not manager.check_workflow_access(make_user("tmp"), "payroll", "execute").allowed


def test_authz_11_same_named_workflows_of_two_tenants_are_independent():
    manager = AccessControlManager(
        rules=[
            make_rule("acme-runs-payroll", tenant_id="acme"),
            make_rule("globex-denies-payroll", effect="deny", tenant_id="globex"),
        ]
    )
    acme, globex = make_user("a", "acme"), make_user("g", "globex")
    assert manager.check_access(acme, "execute", Resource("payroll", tenant_id="acme")).allowed
    decision = manager.check_access(globex, "execute", Resource("payroll", tenant_id="globex"))
    assert decision.applied_rules == ("globex-denies-payroll",)
    assert not manager.check_access(
        acme, "execute", Resource("payroll", tenant_id="globex")
    ).allowed


def test_authz_13_execute_does_not_grant_changing_the_definition():
    manager = AccessControlManager(rules=[make_rule("run", role="analyst")])
    analyst = make_user("a", "acme", "analyst")
    assert manager.check_workflow_access(analyst, "payroll", "execute").allowed
    for permission in ("write", "modify", "delete", "admin"):
        assert not manager.check_workflow_access(analyst, "payroll", permission).allowed


def test_authz_17_every_decision_cache_hits_and_denials_included_reaches_the_listeners_once():
    seen = []
    manager = AccessControlManager(
        rules=[make_rule("run", role="analyst"), make_rule("no", effect="deny", workflow="hr")]
    )
    manager.add_listener(seen.append)
    analyst = make_user("a", "acme", "analyst")
    manager.check_workflow_access(analyst, "payroll", "execute")
    manager.check_workflow_access(analyst, "payroll", "execute")  # a cache hit
    manager.check_workflow_access(analyst, "hr", "execute")  # a denial
    manager.check_workflow_access(analyst, "other", "execute")  # default deny
    assert [
        (d.tenant_id, d.user_id, d.action, str(d.resource), d.allowed, d.applied_rules, d.cached)
        for d in seen
    ] == [
        ("acme", "a", Action.EXECUTE, "workflow payroll", True, ("run",), False),
        ("acme", "a", Action.EXECUTE, "workflow payroll", True, ("run",), True),
        ("acme", "a", Action.EXECUTE, "workflow hr", False, ("no",), False),
        ("acme", "a", Action.EXECUTE, "workflow other", False, (), False),
    ]


def test_authz_17_a_failing_listener_fails_the_check():
    manager = AccessControlManager(rules=[make_rule("run")])

    def broken(decision):
        raise OSError("audit sink down")

    manager.add_listener(broken)
    with pytest.raises(OSError, match="audit sink down"):
        manager.check_workflow_access(make_user(), "payroll", "execute")


def test_authz_18_a_broken_reload_keeps_the_old_policy_with_no_allow_all_window(tmp_path):
    good = tmp_path / "policies.yaml"
    good.write_text(
        "rules:\n  - {id: run, effect: allow, action: execute, resource: payroll}\n"
        "  - {id: no-hr, effect: deny, action: execute, resource: hr}\n"
    )
    manager = AccessControlManager()
    manager.load_policies(good)
    good.write_text("rules:\n  - {id: run, effect: allow, action: execute, resource: payroll\n")
    outcomes: set[tuple[bool, bool]] = set()
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            outcomes.add(
                (
                    manager.check_workflow_access(make_user(), "payroll", "execute").allowed,
                    manager.check_workflow_access(make_user(), "hr", "execute").allowed,
                )
            )

    worker = threading.Thread(target=ask)
    worker.start()
    try:
        for _ in range(20):
            with pytest.raises(PolicyError, match=r"policies\.yaml, line 3: not valid YAML"):
                manager.load_policies(good)
    finally:
        stop.set()
        worker.join()
    assert outcomes == {(True, False)}


def test_authz_19_a_backtracking_regex_on_a_50_kb_attribute_is_fast_and_denies():
    condition = {"attribute": "user.attributes.name", "operator": "matches", "value": "(a+)+$"}
    manager = AccessControlManager(rules=[make_rule("pattern", conditions=condition)])
    user = make_user(name="a" * 50_000 + "!")
    started = time.perf_counter()
    decision = manager.check_workflow_access(user, "payroll", "execute")
    assert time.perf_counter() - started < 0.5
    assert not decision.allowed
