"""What an access control decision costs (issue 12's targets).

- a cached decision: the same caller asking the same thing again (target: <= 5 µs);
- an uncached hybrid decision over a 200-rule policy (target: <= 50 µs): ten roles in an
  inheritance chain (the caller's role inherits all of them, so every rule's subject
  matches), rules for execute and read_output on workflows and nodes, a third of them
  with a condition of their own (over user and resource attributes, 2 to 4
  comparisons), a tenth of them deny rules with a condition that does not hold for the
  caller (so every deny is evaluated and the caller is allowed).

Three layouts: the rules spread over 30 workflows plus 50 rules for any workflow; all 200
on the requested workflow; and all 200 there with every allow rule conditional, so every
allow condition is evaluated too (the worst case: no unconditional allow decides first).

With ``--runtime``: the 5-node chain (``benchmarks/bench_engine.py``'s) executed under
``AccessControlledRuntime`` (a policy allowing the caller, cached decisions) against
``LocalRuntime``, in executions per second and as a ratio (target: >= 50 % with audit
on): without audit, with audit written per run (``audit_write="sync"``, the default) and
batched (``audit_write="batched"``, the time to store every record included). Each run
makes 12 audit records (the workflow, 5 node executions, 5 outputs read, the run).

With ``--breakdown``: where an audited run's time goes, in microseconds per run (12
records): the engine and the access checks (the run without audit), the 12 decisions
alone, building the 12 records, their stored form, their hashes, and storing them (the
rest of ``AuditTrail.append_many``: row tuples, the driver's ``executemany``, SQLite and
the transaction),
batched (5,000 records a transaction) and sync (a transaction of 1 and one of 11). The
target allows an audited run twice LocalRuntime's time.

Microseconds per decision: the fastest of 9 runs (20,000 decisions a run for the cached
decision, 2,000 otherwise), the run least disturbed by other processes, which is what
the targets are checked against; the median is printed beside it. Run:
``python benchmarks/bench_access_control.py [--runtime | --breakdown]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from kailash_nb.access_control import (
    AccessControlManager,
    Action,
    PermissionRule,
    Resource,
    UserContext,
)

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
CALLER = UserContext(
    "alice",
    "acme",
    roles=["role0"],
    attributes={"department": "finance", "clearance": "secret", "level": 4},
)
NODE = Resource("wf0", "node0", attributes={"classification": "confidential"})


def condition(index: int) -> dict:
    """A condition of rule ``index`` alone (so no two rules share one)."""
    threshold = {"attribute": "user.attributes.level", "operator": "greater_than", "value": -index}
    return {"all": [CONDITIONS[index % 3], threshold]}


def rules(spread: bool, all_conditional: bool = False) -> list[PermissionRule]:
    """200 rules: spread over workflows (``spread``) or all on ``wf0``."""
    made = []
    for index in range(200):
        if not spread:
            workflow = "wf0"
        elif index < 50:
            workflow = "*"
        else:
            workflow = f"wf{index % 30}"
        deny = index % 10 == 4
        if deny:
            conditions = {
                "attribute": "user.attributes.department",
                "operator": "equals",
                "value": f"contractors-{index}",
            }
        elif all_conditional or index % 3 == 0:
            conditions = condition(index)
        else:
            conditions = {}
        made.append(
            PermissionRule(
                id=f"rule{index}",
                resource_type="workflow" if index % 4 else "node",
                resource_id=workflow if index % 4 else f"node{index % 7}",
                workflow_id="*" if index % 4 else workflow,
                permission=(Action.EXECUTE, Action.READ_OUTPUT)[index % 2],
                effect="deny" if deny else "allow",
                role=f"role{index % 10}",
                conditions=conditions,
            )
        )
    return made


def per_decision_us(manager: AccessControlManager, count: int) -> tuple[float, float]:
    """Fastest and median microseconds of one decision of ``CALLER`` executing ``NODE``."""
    check = manager.check_access
    samples = []
    for _ in range(10):  # the first run warms up and is dropped
        started = time.perf_counter()
        for _ in range(count):
            check(CALLER, Action.EXECUTE, NODE)
        samples.append((time.perf_counter() - started) / count * 1e6)
    return min(samples[1:]), statistics.median(samples[1:])


def main() -> None:
    """Print the cost of a cached and of uncached decisions, with the targets."""
    layouts = [
        ("cached decision", AccessControlManager(rules=rules(True), roles=ROLES), 20_000, 5.0),
        ("uncached, 200 rules spread", rules(True), 2_000, 50.0),
        ("uncached, 200 rules on one workflow", rules(False), 2_000, 50.0),
        ("uncached, 200 on one workflow, allows all conditional", rules(False, True), 2_000, 50.0),
    ]
    for name, setup, count, target in layouts:
        if isinstance(setup, AccessControlManager):
            manager = setup
        else:
            manager = AccessControlManager(rules=setup, roles=ROLES, cache_size=0)
        decision = manager.check_access(CALLER, Action.EXECUTE, NODE)
        evaluated = len(decision.conditions_met)
        fastest, median = per_decision_us(manager, count)
        verdict = "ok" if fastest <= target else "OVER"
        print(
            f"{name:55s} {fastest:7.2f} µs (median {median:7.2f})  target <= {target:g} µs: "
            f"{verdict}; {'allowed' if decision.allowed else 'denied'}, "
            f"{evaluated} conditions evaluated"
        )


def chain(length: int = 5):
    """The 5-node chain of ``bench_engine.py`` (``result = x + 1``), as workflow ``chain``."""
    from kailash_nb.workflow.builder import WorkflowBuilder

    builder = WorkflowBuilder()
    for index in range(length):
        builder.add_node("PythonCodeNode", f"n{index}", {"code": "result = x + 1"})
        if index:
            builder.add_connection(f"n{index - 1}", "result", f"n{index}", "x")
    return builder.build(workflow_id="chain")


def executions_per_second(
    execute, after=lambda: None, executions: int = 500, runs: int = 7
) -> float:
    """The best of ``runs`` batches of ``executions`` calls of ``execute`` (each batch
    ended by ``after``, which is timed too), per second."""
    execute()
    after()
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(executions):
            execute()
        after()
        best = min(best, time.perf_counter() - started)
    return executions / best


def runtime_main() -> None:
    """Print the 5-node chain's executions/s under AccessControlledRuntime vs LocalRuntime."""
    from kailash_nb.runtime.access_controlled import AccessControlledRuntime
    from kailash_nb.runtime.local import LocalRuntime

    workflow = chain()
    parameters = {"n0": {"x": 0}}
    rules = [
        PermissionRule("run", "workflow", "chain", Action.EXECUTE, "allow", role="analyst"),
        PermissionRule("read", "workflow", "chain", Action.READ_OUTPUT, "allow", role="analyst"),
    ]
    caller = UserContext("alice", "acme", roles=["analyst"])
    local = LocalRuntime()
    baseline = executions_per_second(lambda: local.execute(workflow, parameters=parameters))
    print(f"{'LocalRuntime':55s} {baseline:9.0f} executions/s")
    with tempfile.TemporaryDirectory() as directory:
        setups = [
            ("AccessControlledRuntime, audit off", {}),
            ("AccessControlledRuntime, audit on (sync)", {"audit_enabled": True}),
            (
                "AccessControlledRuntime, audit on (batched)",
                {"audit_enabled": True, "audit_write": "batched"},
            ),
        ]
        for index, (name, options) in enumerate(setups):
            runtime = AccessControlledRuntime(
                manager=AccessControlManager(rules=rules),
                database_url=f"sqlite:///{directory}/audit{index}.db",
                **options,
            )

            def run(runtime=runtime) -> None:
                runtime.execute(workflow, parameters=parameters, user_context=caller)

            # flush_audit: the time to store every record counts.
            rate = executions_per_second(run, runtime.flush_audit)
            runtime.close()
            audited = "audit_enabled" in options
            verdict = ("ok" if rate >= baseline / 2 else "UNDER") if audited else "-"
            print(
                f"{name:55s} {rate:9.0f} executions/s  {rate / baseline:6.1%} of LocalRuntime"
                f"{'  target >= 50 %: ' + verdict if audited else ''}"
            )


def fastest_us(work, per: int, repeat: int = 7) -> float:
    """The fastest of ``repeat`` calls of ``work``, in microseconds per ``per``."""
    work()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best / per * 1e6


def breakdown_main() -> None:
    """Print where an audited run of the 5-node chain spends its time (see the module doc)."""
    from kailash_nb.runtime._access import DecisionNotes
    from kailash_nb.runtime.access_controlled import AccessControlledRuntime
    from kailash_nb.runtime.local import LocalRuntime
    from kailash_nb.store.audit_records import content_commitment, record_hash_v2, stored_form
    from kailash_nb.store.audit_trail import AuditRecord, AuditTrail

    runs = 500
    workflow, parameters = chain(), {"n0": {"x": 0}}
    rules = [
        PermissionRule("run", "workflow", "chain", Action.EXECUTE, "allow", role="analyst"),
        PermissionRule("read", "workflow", "chain", Action.READ_OUTPUT, "allow", role="analyst"),
    ]
    caller = UserContext("alice", "acme", roles=["analyst"])
    manager = AccessControlManager(rules=rules)
    local = LocalRuntime()
    unaudited = AccessControlledRuntime(manager=manager)
    notes = DecisionNotes(None, False)
    asked = [(Action.EXECUTE, notes.resource("chain"))]
    asked += [(Action.EXECUTE, notes.resource("chain", f"n{i}")) for i in range(5)]
    asked += [(Action.READ_OUTPUT, notes.resource("chain", f"n{i}")) for i in range(5)]
    decisions = [(manager.check_access(caller, action, place), place) for action, place in asked]
    run_id = "5f0c2a52-3b0e-4d1c-9a57-2f6e8c1d7b44"

    def records() -> list[AuditRecord]:
        made: list[AuditRecord] = []
        for decision, place in decisions:
            notes.note(decision, run_id, made, place)
        made.append(
            AuditRecord("acme", "alice", "run", "workflow:chain", "allow", (), run_id, False,
                        None, {"status": "completed"})
        )  # fmt: skip
        return made

    batch = [record for _ in range(runs) for record in records()]
    rows = [stored_form(record, time.time()) for record in batch]
    per_run = len(batch) // runs

    def decide() -> None:
        for _ in range(runs):
            for action, place in asked:
                manager.check_access(caller, action, place)

    def hashes() -> None:
        # What an append does per record: a salt, the content commitment, hash version 2.
        digest = "0" * 64
        salts = os.urandom(16 * len(rows)).hex()
        for seq, row in enumerate(rows, 1):
            salt = salts[(seq - 1) * 32 : seq * 32]
            commit = content_commitment(salt, row.subject, row.resource, row.detail)
            digest = record_hash_v2(
                row.tenant_id, seq, row.at_us, commit, row.action, row.decision, row.rule_ids,
                row.run_id, row.cached, digest,
            )  # fmt: skip

    def engine(runtime, **options):
        return lambda: [runtime.execute(workflow, parameters=parameters, **options)
                        for _ in range(runs)]  # fmt: skip

    with tempfile.TemporaryDirectory() as directory:
        trail = AuditTrail(f"sqlite:///{directory}/audit.db")
        first, rest = batch[:1], batch[1:per_run]
        parts = {
            "LocalRuntime run": fastest_us(engine(local), runs),
            "run without audit (engine + access checks)": fastest_us(
                engine(unaudited, user_context=caller), runs
            ),
            "  of which the 12 decisions": fastest_us(decide, runs),
            "building the 12 records": fastest_us(lambda: [records() for _ in range(runs)], runs),
            "their stored form": fastest_us(lambda: [stored_form(r, 0.0) for r in batch], runs),
            "their hashes": fastest_us(hashes, runs),
            "append_many, batched": fastest_us(lambda: trail.append_many(batch), runs),
            "append_many, sync (1 + 11)": fastest_us(
                lambda: [trail.append_many(first) + trail.append_many(rest) for _ in range(50)],
                50,
            ),
        }
    derived = parts["their stored form"] + parts["their hashes"]
    parts["storing, batched (append_many - form - hashes)"] = (
        parts["append_many, batched"] - derived
    )
    parts["storing, sync (append_many - form - hashes)"] = (
        parts["append_many, sync (1 + 11)"] - derived
    )
    for name, value in parts.items():
        print(f"{name:55s} {value:9.1f} µs per run")
    budget = 2 * parts["LocalRuntime run"]
    audit = parts["building the 12 records"] + parts["append_many, batched"]
    print(
        f"{'budget at 50 % of LocalRuntime':55s} {budget:9.1f} µs per run; without audit "
        f"{parts['run without audit (engine + access checks)']:.1f}, audit batched adds {audit:.1f}"
    )


if __name__ == "__main__":
    if "--runtime" in sys.argv[1:]:
        runtime_main()
    elif "--breakdown" in sys.argv[1:]:
        breakdown_main()
    else:
        main()
