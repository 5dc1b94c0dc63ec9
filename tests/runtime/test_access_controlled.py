"""AccessControlledRuntime: the seed's blocks, allowed and denied runs, node-level
denials, masking, dynamic policies and the audit trail (checklist ids in test names)."""

from __future__ import annotations

import logging
import os
import textwrap
import time

import pytest
from _payroll import ALICE, BOB, EVE, IVY, POLICY, payroll

from kailash_nb.access_control import (
    AccessControlConfigurationError,
    AccessControlManager,
    AccessDeniedError,
    PermissionRule,
    PolicyError,
    UserContext,
)
from kailash_nb.redaction import REDACTED
from kailash_nb.runtime.access_controlled import (
    AccessControlledRuntime,
    AuthorizationRequiredError,
    NodeAccessDeniedError,
)
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import RuntimeExecutionError, WorkflowExecutionError
from kailash_nb.store.audit_trail import AuditTrail, AuditUnavailableError
from kailash_nb.workflow.builder import WorkflowBuilder


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY)
    return path


def runtime_for(policy_file, sqlite_url, **options):
    options.setdefault("access_control_strategy", "hybrid")
    return AccessControlledRuntime(policies_file=policy_file, database_url=sqlite_url, **options)


def records(sqlite_url, **filters):
    return [entry.record for entry in AuditTrail(sqlite_url).records(**filters)][::-1]


# -- the seed's two blocks -------------------------------------------------------------


def test_seed_basic_enterprise_setup(monkeypatch, tmp_path):
    """The seed's block with ``kailash.`` -> ``kailash_nb.``; the only change is a secret
    of 32 bytes (the seed's 21-byte one is refused, checklist AUTH-24), and
    ``gateway.run`` is recorded instead of serving."""
    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    from kailash_nb.middleware.gateway import Gateway

    served = []
    monkeypatch.setattr(Gateway, "run", lambda self, host, port: served.append((host, port)))
    namespace: dict = {}
    exec(
        textwrap.dedent(
            """
            from kailash_nb.api.middleware import create_gateway
            from kailash_nb.runtime.access_controlled import AccessControlledRuntime
            from kailash_nb.security import SecurityConfig

            # Enterprise gateway with full security
            gateway = create_gateway(
                title="Enterprise Application",
                cors_origins=["https://app.company.com"],
                enable_docs=True,
                security_config=SecurityConfig(
                    jwt_secret="enterprise-secret-key-of-32-bytes",
                    enable_rate_limiting=True,
                    max_requests_per_minute=1000
                )
            )

            # Access-controlled runtime
            runtime = AccessControlledRuntime(
                access_control_strategy="rbac",  # Role-based access control
                default_permissions=["read"],
                audit_enabled=True
            )

            gateway.run(host="0.0.0.0", port=8000)
            """
        ),
        namespace,
    )
    assert served == [("0.0.0.0", 8000)]
    runtime = namespace["runtime"]
    assert runtime.access_control_strategy == "rbac"
    assert runtime.default_permissions == ("read_output",)
    # Role-based: a rule with a condition is refused; roles decide.
    with pytest.raises(PolicyError, match="rbac"):
        runtime.manager.add_rule(
            PermissionRule(
                id="cond",
                resource_type="workflow",
                resource_id="payroll",
                permission="execute",
                effect="allow",
                role="analyst",
                conditions={"attribute": "user.tenant_id", "operator": "equals", "value": "x"},
            )
        )
    # Default permission "read" only: nobody may execute until a role is given it.
    with pytest.raises(AccessDeniedError, match="default deny"):
        runtime.execute(payroll(), user_context=ALICE)
    runtime.manager.add_rule(
        PermissionRule(
            id="analysts-execute",
            resource_type="workflow",
            resource_id="payroll",
            permission="execute",
            effect="allow",
            role="analyst",
        )
    )
    results, run_id = runtime.execute(payroll(), user_context=ALICE)
    assert results["report"] == {"result": {"total": 100}}  # read by default permission
    with pytest.raises(AccessDeniedError):
        runtime.execute(payroll(), user_context=EVE)
    runtime.close()
    # Audit on: the decisions and runs are in the store named by the environment.
    audited = records(os.environ["KAILASH_NB_DATABASE_URL"], tenant_id="acme")
    assert {record.run_id for record in audited if record.action == "run"} >= {run_id}
    assert [record.decision for record in audited if record.subject == "eve"] == ["deny", "deny"]


def test_seed_access_control_patterns(monkeypatch, tmp_path, policy_file, caplog):
    """The seed's block with ``kailash.`` -> ``kailash_nb.`` and a real policies file in
    place of ``/config/policies.yaml``."""
    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    source = textwrap.dedent(
        """
        from kailash_nb.access_control import AccessControlManager

        # Enterprise access control
        from kailash_nb.runtime.access_controlled import AccessControlledRuntime

        runtime = AccessControlledRuntime(
            access_control_strategy="hybrid",  # RBAC + ABAC
            policies_file="/config/policies.yaml",
            dynamic_policies=True,
            audit_enabled=True,
            require_authorization=True,
            log_all_access=True
        )
        """
    ).replace("/config/policies.yaml", str(policy_file))
    namespace: dict = {}
    exec(source, namespace)
    runtime = namespace["runtime"]
    # RBAC + ABAC: the role allows, the attribute condition masks.
    with caplog.at_level(logging.INFO, logger="kailash_nb.runtime.access_controlled"):
        results, _ = runtime.execute(payroll(), user_context=BOB)
    assert results["load"]["result"]["ssn"] == REDACTED
    assert "access allowed: bob" in caplog.text  # log_all_access
    results, _ = runtime.execute(payroll(), user_context=ALICE)
    assert results["load"]["result"]["ssn"] == "123-45-6789"
    # require_authorization: no identity, no run.
    with pytest.raises(AuthorizationRequiredError, match="user_context"):
        runtime.execute(payroll())
    # dynamic_policies: an edit applies at the next run.
    policy_file.write_text(POLICY.replace("role: analyst}", "role: admin}"))
    _touch(policy_file)
    with pytest.raises(AccessDeniedError):
        runtime.execute(payroll(), user_context=ALICE)
    # audit_enabled: every decision and run recorded, chain intact.
    runtime.close()
    trail = AuditTrail(os.environ["KAILASH_NB_DATABASE_URL"])
    assert trail.verify("acme").ok
    assert len(trail.records(tenant_id="acme")) > 10


def _touch(path, offset: float = 5.0):
    """Move the file's modification time on (a rewrite within one clock tick)."""
    stamp = time.time() + offset
    os.utime(path, (stamp, stamp))


# -- allowed and denied runs -----------------------------------------------------------


def test_an_allowed_run_has_localruntimes_results(policy_file, sqlite_url):
    runtime = runtime_for(policy_file, sqlite_url)
    results, run_id = runtime.execute(payroll(), user_context=ALICE)
    expected, _ = LocalRuntime().execute(payroll())
    assert results == expected
    assert isinstance(run_id, str)


def test_a_denied_workflow_runs_nothing(policy_file, sqlite_url):
    runtime = runtime_for(policy_file, sqlite_url, history=True)
    seen = []
    runtime.events.subscribe(seen.append)
    with pytest.raises(
        AccessDeniedError, match=r"'eve'.*workflow 'payroll'.*default deny"
    ) as caught:
        runtime.execute(payroll(), user_context=EVE)
    assert isinstance(caught.value, PermissionError)  # as Kailash raises
    assert seen == []
    assert runtime.history() == []


def test_user_context_from_the_constructor_as_kailash(policy_file, sqlite_url):
    runtime = AccessControlledRuntime(ALICE, policies_file=policy_file)
    results, _ = runtime.execute(payroll())
    assert results["report"] == {"result": {"total": 100}}
    with pytest.raises(AccessDeniedError):
        runtime.execute(payroll(), user_context=EVE)  # per execute wins


def test_without_require_authorization_an_anonymous_caller_gets_default_permissions_only():
    runtime = AccessControlledRuntime(
        require_authorization=False, default_permissions=["execute", "read"]
    )
    results, _ = runtime.execute(payroll())
    assert results["report"] == {"result": {"total": 100}}
    strict = AccessControlledRuntime(require_authorization=False)
    with pytest.raises(AccessDeniedError, match="'anonymous'"):
        strict.execute(payroll())


def test_resource_id_names_the_workflow_for_the_policy(policy_file):
    runtime = AccessControlledRuntime(policies_file=policy_file)
    other = WorkflowBuilder()
    other.add_node("PythonCodeNode", "x", {"code": "result = 1"})
    workflow = other.build(workflow_id="scratch")
    with pytest.raises(AccessDeniedError, match="'scratch'"):
        runtime.execute(workflow, user_context=ALICE)
    results, _ = runtime.execute(workflow, user_context=ALICE, resource_id="payroll")
    assert results == {"x": {"result": 1}}


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"access_control_strategy": "none"}, AccessControlConfigurationError, "rbac, abac"),
        ({"dynamic_policies": True}, AccessControlConfigurationError, "policies_file"),
        ({"default_permissions": ["skip"]}, AccessControlConfigurationError, "not an action"),
        ({"default_permissions": "read"}, AccessControlConfigurationError, "list of actions"),
        ({"base_runtime": object()}, TypeError, "base_runtime"),
        ({"audit_write": "later"}, AccessControlConfigurationError, "sync"),
        (
            {"manager": AccessControlManager(strategy="abac")},
            AccessControlConfigurationError,
            "same strategy",
        ),
        ({"enable_monitoring": True}, TypeError, "enable_monitoring"),
    ],
)
def test_bad_options_refuse_to_start(options, error, message):
    with pytest.raises(error, match=message):
        AccessControlledRuntime(**options)


# -- node-level enforcement (AUTHZ-16) -------------------------------------------------


def test_authz_16_a_denied_node_fails_the_run_with_a_typed_error(policy_file, sqlite_url):
    runtime = runtime_for(policy_file, sqlite_url)
    with pytest.raises(NodeAccessDeniedError) as caught:
        runtime.execute(payroll(), user_context=IVY)
    error = caught.value
    assert isinstance(error, PermissionError) and isinstance(error, AccessDeniedError)
    assert error.node_id == "pay"
    assert "node 'pay'" in str(error) and "interns-never-pay" in str(error)
    assert error.decision.applied_rules == ("interns-never-pay",)
    # Nothing downstream ran, and nothing was fed {}: report never executed.
    assert set(error.results) == {"load"}
    assert error.run_id


def test_authz_16_a_denied_leaf_node_still_fails_the_run(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        POLICY.replace("node: pay}", "node: report}")  # report has no dependents
    )
    runtime = AccessControlledRuntime(policies_file=path)
    with pytest.raises(NodeAccessDeniedError, match="node 'report'"):
        runtime.execute(payroll(), user_context=IVY)


def test_authz_16_the_run_is_reported_failed_everywhere(policy_file, sqlite_url):
    runtime = runtime_for(policy_file, sqlite_url, history=True)
    node_events, run_events = [], []
    runtime.events.subscribe(node_events.append, runs=False)
    runtime.events.subscribe(run_events.append, nodes=False)
    outcome = runtime.execute_outcome(payroll(), user_context=IVY)
    assert outcome.status == "failed" and outcome.stopped_at == "pay"
    assert [(f.node_id, f.error_type) for f in outcome.failed_nodes] == [
        ("pay", "NodeAccessDeniedError")
    ]
    assert "interns-never-pay" in outcome.error
    failed = [event for event in node_events if event.state == "failed"]
    assert [event.node_id for event in failed] == ["pay"]
    assert "NodeAccessDeniedError" in failed[0].error
    assert "report" not in {event.node_id for event in node_events if event.state != "queued"}
    assert run_events[-1].state == "failed"
    (stored,) = runtime.history()
    assert stored.status == "failed" and "node 'pay'" in stored.error


def test_authz_16_concurrent_scheduling_stops_at_the_denied_node(policy_file):
    runtime = AccessControlledRuntime(policies_file=policy_file, node_timeout=5)
    with pytest.raises(NodeAccessDeniedError, match="node 'pay'") as caught:
        runtime.execute(payroll(), user_context=IVY)  # the event-loop scheduler
    assert set(caught.value.results) == {"load"}


# -- masking and read_output denials ---------------------------------------------------


def test_masked_fields_are_redacted_in_results_events_and_history(policy_file, sqlite_url):
    runtime = runtime_for(policy_file, sqlite_url, history=True)
    seen = []
    runtime.events.subscribe(seen.append, timeline=True)
    results, _ = runtime.execute(payroll(), user_context=BOB)
    assert results["load"] == {"result": {"name": "bob", "ssn": REDACTED, "salary": 100}}
    # Downstream nodes got the real output: the computation does not depend on the caller.
    assert results["report"] == {"result": {"total": 100}}
    outcome = runtime.execute_outcome(payroll(), user_context=BOB)
    assert outcome.results["load"]["result"]["ssn"] == REDACTED
    assert "123-45-6789" not in repr(seen)
    assert all("123-45-6789" not in repr(record) for record in runtime.history())


def test_a_node_the_caller_may_not_read_is_withheld(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        POLICY
        + "  - id: no-reading-pay\n"
        + "    effect: deny\n"
        + "    action: read_output\n"
        + "    resource: {workflow: payroll, node: pay}\n"
        + "    subject: {role: analyst}\n"
    )
    runtime = AccessControlledRuntime(policies_file=path)
    results, _ = runtime.execute(payroll(), user_context=ALICE)
    assert results["pay"] == {"_access_denied": True}
    assert results["report"] == {"result": {"total": 100}}


def test_masks_apply_to_the_partial_results_of_a_failed_run(policy_file):
    runtime = AccessControlledRuntime(policies_file=policy_file)
    ivy_low = UserContext(user_id="ivy", tenant_id="acme", roles=["analyst", "intern"])
    with pytest.raises(NodeAccessDeniedError) as caught:
        runtime.execute(payroll(), user_context=ivy_low)
    assert caught.value.results["load"]["result"]["ssn"] == REDACTED


# -- dynamic policies (AUTHZ-18) -------------------------------------------------------


def test_dynamic_policies_reload_a_changed_file(policy_file):
    runtime = AccessControlledRuntime(policies_file=policy_file, dynamic_policies=True)
    with pytest.raises(AccessDeniedError):
        runtime.execute(payroll(), user_context=EVE)
    policy_file.write_text(POLICY.replace("role: analyst}", "role: viewer}"))
    _touch(policy_file)
    results, _ = runtime.execute(payroll(), user_context=EVE)
    assert results["report"] == {"result": {"total": 100}}
    with pytest.raises(AccessDeniedError):
        runtime.execute(payroll(), user_context=BOB)


def test_without_dynamic_policies_the_file_is_read_once(policy_file):
    runtime = AccessControlledRuntime(policies_file=policy_file)
    policy_file.write_text(POLICY.replace("role: analyst}", "role: viewer}"))
    _touch(policy_file)
    with pytest.raises(AccessDeniedError):
        runtime.execute(payroll(), user_context=EVE)
    runtime.reload_policies()
    runtime.execute(payroll(), user_context=EVE)


def test_authz_18_a_broken_reload_keeps_the_last_good_policy(policy_file, caplog):
    runtime = AccessControlledRuntime(policies_file=policy_file, dynamic_policies=True)
    runtime.execute(payroll(), user_context=ALICE)
    policy_file.write_text(POLICY + "  - id: broken\n    effect: allow\n    actions: [execute\n")
    _touch(policy_file)
    with caplog.at_level(logging.ERROR, logger="kailash_nb.runtime.access_controlled"):
        runtime.execute(payroll(), user_context=ALICE)  # the old policy still allows
        with pytest.raises(AccessDeniedError):
            runtime.execute(payroll(), user_context=EVE)  # and still denies: no allow-all
    assert "policies file not reloaded" in caplog.text
    assert "policies.yaml, line" in caplog.text
    assert runtime.policy_error is not None and runtime.policy_error.line
    # A file that goes away keeps the policy too; a fixed file is read again.
    policy_file.unlink()
    runtime.execute(payroll(), user_context=ALICE)
    policy_file.write_text(POLICY.replace("role: analyst}", "role: viewer}"))
    _touch(policy_file, 10)
    runtime.execute(payroll(), user_context=EVE)
    assert runtime.policy_error is None


# -- refusing to start (AUTHZ-01, AUTHZ-02) --------------------------------------------


def test_authz_01_an_empty_policy_denies_every_run(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("rules: []\n")
    runtime = AccessControlledRuntime(policies_file=path)
    for user in (ALICE, EVE):
        with pytest.raises(AccessDeniedError, match="default deny"):
            runtime.execute(payroll(), user_context=user)
    with pytest.raises(AccessDeniedError):
        AccessControlledRuntime().execute(payroll(), user_context=ALICE)


def test_authz_02_a_missing_or_invalid_policies_file_refuses_to_start(tmp_path):
    with pytest.raises(PolicyError, match=r"missing\.yaml: cannot read"):
        AccessControlledRuntime(policies_file=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - id: r\n    effect: allow\n    action: execute\n    resource: {wf: x}\n"
    )
    with pytest.raises(PolicyError) as caught:
        AccessControlledRuntime(policies_file=bad)
    assert caught.value.source == str(bad) and caught.value.line == 5
    assert "resource is a mapping with workflow" in str(caught.value)
    conditional = tmp_path / "conditional.yaml"
    conditional.write_text(POLICY)
    with pytest.raises(PolicyError, match="rbac"):
        AccessControlledRuntime(access_control_strategy="rbac", policies_file=conditional)
    with pytest.raises(AccessControlConfigurationError, match="cannot be disabled"):
        AccessControlledRuntime(manager=AccessControlManager(enabled=False))


# -- audit (AUTHZ-17, STOR-08) ---------------------------------------------------------


def test_authz_17_every_decision_and_every_run_writes_one_record(policy_file, sqlite_url):
    runtime = runtime_for(policy_file, sqlite_url, audit_enabled=True)
    _, first = runtime.execute(payroll(), user_context=ALICE)
    _, second = runtime.execute(payroll(), user_context=ALICE)  # cache hits
    with pytest.raises(NodeAccessDeniedError):
        runtime.execute(payroll(), user_context=IVY)
    with pytest.raises(AccessDeniedError):
        runtime.execute(payroll(), user_context=EVE)
    stored = records(sqlite_url, tenant_id="acme")
    for run_id in (first, second):
        mine = [(r.action, r.resource, r.decision) for r in stored if r.run_id == run_id]
        assert mine == [
            ("execute", "workflow:payroll", "allow"),
            ("execute", "node:payroll/load", "allow"),
            ("execute", "node:payroll/pay", "allow"),
            ("execute", "node:payroll/report", "allow"),
            ("read_output", "node:payroll/load", "allow"),
            ("read_output", "node:payroll/pay", "allow"),
            ("read_output", "node:payroll/report", "allow"),
            ("run", "workflow:payroll", "allow"),
        ]
    assert all(r.cached for r in stored if r.run_id == second and r.action != "run")
    assert not any(r.cached for r in stored if r.run_id == first)
    ivy = [r for r in stored if r.subject == "ivy"]
    assert [(r.action, r.resource, r.decision, r.rule_ids) for r in ivy][2] == (
        "execute",
        "node:payroll/pay",
        "deny",
        ("interns-never-pay",),
    )
    assert ivy[-1].action == "run" and ivy[-1].detail == {"status": "failed"}
    eve = [(r.action, r.decision, r.detail.get("status")) for r in stored if r.subject == "eve"]
    assert eve == [("execute", "deny", None), ("run", "deny", "refused")]
    assert AuditTrail(sqlite_url).verify().ok


def test_audit_record_of_a_masked_read_names_the_masked_fields(policy_file, sqlite_url):
    # An allowed read_output that hid fields says so in its record: an auditor reads
    # from the trail alone that bob saw load's output without its ssn.
    runtime = runtime_for(policy_file, sqlite_url, audit_enabled=True)
    runtime.execute(payroll(), user_context=BOB)
    runtime.execute(payroll(), user_context=ALICE)
    reads = {
        (r.subject, r.resource): r.detail
        for r in records(sqlite_url, tenant_id="acme", action="read_output")
    }
    assert reads[("bob", "node:payroll/load")] == {"masked_fields": ["ssn"]}
    assert reads[("alice", "node:payroll/load")] == {}
    assert AuditTrail(sqlite_url).verify().ok


class _FailingTrail:
    def __init__(self, fail_after: int = 0):
        self.calls = 0
        self.fail_after = fail_after
        self.stored: list = []

    def append_many(self, records):
        self.calls += 1
        if self.calls > self.fail_after:
            raise OSError("disk unplugged")
        self.stored.extend(records)
        return list(range(len(records)))


def test_stor_08_an_unwritable_audit_trail_runs_nothing(policy_file):
    ran = []
    runtime = AccessControlledRuntime(
        policies_file=policy_file, audit_enabled=True, audit_trail=_FailingTrail()
    )
    runtime.events.subscribe(ran.append)
    with pytest.raises(AuditUnavailableError, match="disk unplugged"):
        runtime.execute(payroll(), user_context=ALICE)
    assert ran == []


def test_stor_08_a_trail_failing_at_the_end_withholds_the_results(policy_file):
    # Each front end gets a trail that stores the workflow decision, then fails: the
    # run executes, and its end cannot be audited.
    for execute in ("execute", "execute_outcome"):
        trail = _FailingTrail(fail_after=1)
        runtime = AccessControlledRuntime(
            policies_file=policy_file, audit_enabled=True, audit_trail=trail
        )
        ran = []
        runtime.events.subscribe(ran.append, runs=False)
        with pytest.raises(AuditUnavailableError):
            getattr(runtime, execute)(payroll(), user_context=ALICE)
        assert trail.calls == 2 and ("report", "completed") in {
            (event.node_id, event.state) for event in ran
        }, execute


def test_stor_08_batched_audit_refuses_runs_while_the_trail_fails_and_drops_nothing(
    policy_file, sqlite_url
):
    class Flaky:
        def __init__(self):
            self.trail = AuditTrail(sqlite_url)
            self.down = False

        def append_many(self, records):
            if self.down:
                raise OSError("store down")
            return self.trail.append_many(records)

    flaky = Flaky()
    runtime = AccessControlledRuntime(
        policies_file=policy_file, audit_enabled=True, audit_trail=flaky, audit_write="batched"
    )
    runtime.execute(payroll(), user_context=ALICE)
    runtime.flush_audit()
    assert len(records(sqlite_url)) == 8
    flaky.down = True
    runtime.execute(payroll(), user_context=ALICE)  # queued before the failure is seen
    with pytest.raises(AuditUnavailableError, match="store down"):
        runtime.flush_audit(timeout=2)
    with pytest.raises(AuditUnavailableError, match="nothing runs"):
        runtime.execute(payroll(), user_context=ALICE)
    flaky.down = False
    runtime.flush_audit(timeout=5)  # the queued records are written, none lost
    assert len(records(sqlite_url)) == 16
    runtime.execute(payroll(), user_context=ALICE)
    runtime.close()
    assert len(records(sqlite_url)) == 24
    assert AuditTrail(sqlite_url).verify().ok


def test_authz_17_a_run_cancelled_by_a_timeout_is_audited_too(policy_file, sqlite_url):
    builder = WorkflowBuilder()
    builder.add_node("AsyncPythonCodeNode", "slow", {"code": "await asyncio.sleep(5)\nresult = 1"})
    workflow = builder.build(workflow_id="payroll")
    runtime = runtime_for(policy_file, sqlite_url, audit_enabled=True, workflow_timeout=0.2)
    with pytest.raises(WorkflowExecutionError) as caught:
        runtime.execute(workflow, user_context=ALICE)
    (run,) = [r for r in records(sqlite_url) if r.action == "run"]
    assert run.run_id == caught.value.run_id and run.detail == {"status": "timeout"}


# -- tenants, revocation, concurrency (AUTHZ-07, AUTHZ-08, AUTHZ-11) -------------------

TENANT_POLICY = """\
rules:
  - id: acme-admins-run-payroll
    effect: allow
    actions: [execute, read_output]
    resource: {workflow: payroll}
    subject: {role: admin}
    tenant: acme
"""


def test_authz_07_the_same_user_id_in_another_tenant_gets_its_own_decision(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(TENANT_POLICY)
    runtime = AccessControlledRuntime(policies_file=path)
    acme_admin = UserContext(user_id="alice", tenant_id="acme", roles=["admin"])
    beta_alice = UserContext(user_id="alice", tenant_id="beta", roles=["admin"])
    runtime.execute(payroll(), user_context=acme_admin)  # cached for acme
    with pytest.raises(AccessDeniedError, match="tenant 'beta'"):
        runtime.execute(payroll(), user_context=beta_alice)


def test_authz_08_a_revoked_role_is_denied_at_the_next_run(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(TENANT_POLICY)
    runtime = AccessControlledRuntime(policies_file=path)
    runtime.execute(payroll(), user_context=UserContext("alice", "acme", roles=["admin"]))
    with pytest.raises(AccessDeniedError):
        runtime.execute(payroll(), user_context=UserContext("alice", "acme", roles=[]))
    # A rule removed from the policy stops the next run too.
    runtime.manager.remove_rule("acme-admins-run-payroll")
    with pytest.raises(AccessDeniedError):
        runtime.execute(payroll(), user_context=UserContext("alice", "acme", roles=["admin"]))


def test_authz_11_a_tenant_rule_never_applies_to_the_same_workflow_of_another_tenant(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(TENANT_POLICY)
    runtime = AccessControlledRuntime(policies_file=path)
    with pytest.raises(AccessDeniedError):
        runtime.execute(payroll(), user_context=UserContext("bob", "beta", roles=["admin"]))


def test_concurrent_callers_on_one_runtime_each_get_their_own_decisions(policy_file):
    import concurrent.futures

    runtime = AccessControlledRuntime(policies_file=policy_file)

    def run(user):
        try:
            results, _ = runtime.execute(payroll(), user_context=user)
        except NodeAccessDeniedError:
            return "node-denied"
        except AccessDeniedError:
            return "denied"
        return results["load"]["result"]["ssn"]

    callers = [ALICE, BOB, IVY, EVE] * 25
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(run, callers))
    expected = {"alice": "123-45-6789", "bob": REDACTED, "ivy": "node-denied", "eve": "denied"}
    assert answers == [expected[user.user_id] for user in callers]


def test_execute_async_has_the_same_checks(policy_file):
    import asyncio

    runtime = AccessControlledRuntime(policies_file=policy_file)
    results, _ = asyncio.run(runtime.execute_async(payroll(), user_context=BOB))
    assert results["load"]["result"]["ssn"] == REDACTED
    with pytest.raises(NodeAccessDeniedError):
        asyncio.run(runtime.execute_async(payroll(), user_context=IVY))


# -- the masking helper ----------------------------------------------------------------


def test_masking_by_name_reaches_nested_records_and_by_path_only_that_path():
    from kailash_nb.runtime._masking import masked_outputs

    outputs = {"result": {"rows": [{"ssn": 1, "n": 2}, ({"ssn": 3},)], "ssn": 4}, "ssn": 5}
    assert masked_outputs(outputs, ["ssn"]) == {
        "result": {"rows": [{"ssn": REDACTED, "n": 2}, ({"ssn": REDACTED},)], "ssn": REDACTED},
        "ssn": REDACTED,
    }
    assert masked_outputs(outputs, ["result.ssn"]) == {
        "result": {"rows": [{"ssn": 1, "n": 2}, ({"ssn": 3},)], "ssn": REDACTED},
        "ssn": 5,
    }
    assert masked_outputs(outputs, ["result.missing.x"]) == outputs
    assert masked_outputs(outputs, ["*"]) == {"_access_denied": True}
    assert outputs["ssn"] == 5  # never changed in place


def test_masking_sees_through_models_and_dataclasses_and_hides_what_it_cannot_read():
    import dataclasses
    import datetime

    from pydantic import BaseModel

    from kailash_nb.runtime._masking import masked_outputs

    class Person(BaseModel):
        name: str
        ssn: str

    @dataclasses.dataclass
    class Payslip:
        person: Person
        ssn: str

    class Opaque:
        def __repr__(self) -> str:
            return "Opaque(ssn='123-45-6789')"

    when = datetime.date(2026, 1, 1)
    outputs = {
        "person": Person(name="bob", ssn="1"),
        "slip": Payslip(Person(name="amy", ssn="2"), "3"),
        "opaque": Opaque(),
        "when": when,
    }
    assert masked_outputs(outputs, ["ssn"]) == {
        "person": {"name": "bob", "ssn": REDACTED},
        "slip": {"person": {"name": "amy", "ssn": REDACTED}, "ssn": REDACTED},
        "opaque": REDACTED,  # its text could carry the field: not shown
        "when": when,
    }
    assert masked_outputs(outputs, ["person.ssn"])["person"] == {"name": "bob", "ssn": REDACTED}


def test_a_closed_runtime_refuses_runs_before_deciding(policy_file, sqlite_url):
    runtime = runtime_for(policy_file, sqlite_url, audit_enabled=True)
    runtime.close()
    with pytest.raises(RuntimeExecutionError, match="closed"):
        runtime.execute(payroll(), user_context=ALICE)
    assert records(sqlite_url) == []


def test_a_list_of_workflows_is_decided_and_audited_in_one_write(policy_file):
    trail = _FailingTrail(fail_after=100)
    runtime = AccessControlledRuntime(
        policies_file=policy_file, audit_enabled=True, audit_trail=trail
    )
    decisions = runtime.check_workflows(["payroll", "ledger", "payroll"], user_context=ALICE)
    assert [decision.allowed for decision in decisions] == [True, False, True]
    assert trail.calls == 1 and len(trail.stored) == 3
