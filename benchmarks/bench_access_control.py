"""What an access control decision costs (issue 12's targets).

- a cached decision: the same caller asking the same thing again (target: <= 5 µs);
- an uncached hybrid decision over a 200-rule policy (target: <= 50 µs): roles with
  inheritance, a third of the rules with conditions over user and resource attributes,
  a tenth of them deny rules. Two layouts: the rules spread over 30 workflows plus 50
  rules for any workflow (about 55 rules to look at per request), and the worst case of
  all 200 rules on the requested workflow.

Microseconds per decision, the median of 7 runs of 20,000 decisions each (5,000 for the
worst case). Run: ``python benchmarks/bench_access_control.py``.
"""

from __future__ import annotations

from timing import median_time

from kailash_nb.access_control import (
    AccessControlManager,
    Action,
    PermissionRule,
    Resource,
    UserContext,
)

CONTRACTORS = {"attribute": "user.attributes.department", "operator": "equals", "value": "hr"}
ROLES = {f"role{index}": [f"role{index + 1}"] for index in range(9)}
CONDITIONS = [
    {"attribute": "user.attributes.department", "operator": "in", "value": ["finance", "hr"]},
    {
        "all": [
            {
                "attribute": "user.attributes.clearance",
                "operator": "security_level_meets",
                "value_from": "resource.attributes.classification",
            },
            {
                "attribute": "resource.tenant_id",
                "operator": "equals",
                "value_from": "user.tenant_id",
            },
        ]
    },
    {"attribute": "user.attributes.level", "operator": "greater_or_equal", "value": 3},
]


def rules(spread: bool) -> list[PermissionRule]:
    """200 rules: spread over workflows (``spread``) or all on ``wf0``."""
    made = []
    for index in range(200):
        if not spread:
            workflow = "wf0"
        elif index < 50:
            workflow = "*"
        else:
            workflow = f"wf{index % 30}"
        made.append(
            PermissionRule(
                id=f"rule{index}",
                resource_type="workflow" if index % 4 else "node",
                resource_id=workflow if index % 4 else f"node{index % 7}",
                workflow_id="*" if index % 4 else workflow,
                permission=(Action.EXECUTE, Action.READ_OUTPUT)[index % 2],
                effect="deny" if index % 10 == 4 else "allow",
                role=f"role{index % 10}",
                conditions=CONTRACTORS
                if index % 10 == 4
                else CONDITIONS[index % 9]
                if index % 9 < 3
                else {},
            )
        )
    return made


def per_decision_us(manager: AccessControlManager, resource: Resource, count: int) -> float:
    """Median microseconds of one decision."""
    user = UserContext(
        "alice",
        "acme",
        roles=["role0"],
        attributes={"department": "finance", "clearance": "secret", "level": 4},
    )
    check = manager.check_access

    def decide() -> None:
        for _ in range(count):
            check(user, Action.EXECUTE, resource)

    return median_time(decide, 7) / count * 1e6


def main() -> None:
    """Print the cost of a cached and of an uncached decision, with the targets."""
    node = Resource("wf0", "node0", attributes={"classification": "confidential"})
    cached = AccessControlManager(rules=rules(True), roles=ROLES)
    uncached = AccessControlManager(rules=rules(True), roles=ROLES, cache_size=0)
    worst = AccessControlManager(rules=rules(False), roles=ROLES, cache_size=0)
    decision = uncached.check_access(
        UserContext(
            "alice",
            "acme",
            roles=["role0"],
            attributes={"department": "finance", "clearance": "secret", "level": 4},
        ),
        Action.EXECUTE,
        node,
    )
    print(f"decision: allowed={decision.allowed} by {len(decision.applied_rules)} rules")
    results = [
        ("cached decision", per_decision_us(cached, node, 20_000), 5.0),
        ("uncached hybrid, 200 rules spread", per_decision_us(uncached, node, 20_000), 50.0),
        ("uncached hybrid, 200 rules on one workflow", per_decision_us(worst, node, 5_000), 50.0),
    ]
    for name, micros, target in results:
        verdict = "ok" if micros <= target else "OVER"
        print(f"{name:45s} {micros:8.2f} µs  (target <= {target:g} µs: {verdict})")


if __name__ == "__main__":
    main()
