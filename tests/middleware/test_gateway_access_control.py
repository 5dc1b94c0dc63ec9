"""A gateway created with ``runtime=AccessControlledRuntime(...)``: the policy decides,
for the caller of each verified token, which workflows it lists, describes and runs,
which nodes run and which outputs the answer shows; every decision and run is audited.
On a real server, with thread and process backends."""

from __future__ import annotations

import base64
import json
import time

import pytest
from _payroll import payroll

from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.redaction import REDACTED
from kailash_nb.runtime.access_controlled import AccessControlledRuntime
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.store.audit_trail import AuditTrail
from kailash_nb.store.run_history import RunStore
from kailash_nb.workflow.builder import WorkflowBuilder

PROBLEM_BASE = "https://kailash-nb.dev/problems/"

PAYROLL_RULES = """\
  - id: analysts-run-{name}
    effect: allow
    actions: [execute, read_output]
    resource: {{workflow: {name}}}
    subject: {{role: analyst}}
  - id: interns-never-pay-{name}
    effect: deny
    action: execute
    resource: {{workflow: {name}, node: pay}}
    subject: {{role: intern}}
  - id: hide-ssn-{name}
    effect: deny
    action: read_output
    resource: {{workflow: {name}, node: "*", field: ssn}}
    when: {{attribute: user.attributes.clearance, operator: security_level_below, value: secret}}
"""
POLICY = (
    """\
roles:
  admin: [analyst]
rules:
  - id: admins-run-ledger
    effect: allow
    actions: [execute, read_output]
    resource: {workflow: ledger}
    subject: {role: admin}
"""
    + PAYROLL_RULES.format(name="payroll")
    + PAYROLL_RULES.format(name="payroll_isolated")
)


def ledger():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "sum", {"code": "result = {'total': 42}"})
    return builder.build()


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "policies.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture(scope="module")
def served(module_sqlite_url, policy_file, secured_gateway, serve_module_gateway):
    runtime = AccessControlledRuntime(
        policies_file=policy_file, audit_enabled=True, database_url=module_sqlite_url
    )
    gateway = secured_gateway(module_sqlite_url, runtime=runtime)
    gateway.register_workflow("payroll", payroll())
    gateway.register_workflow("payroll_isolated", payroll(), isolation="process")
    gateway.register_workflow("ledger", ledger())
    server = serve_module_gateway(gateway)
    server.db_url = module_sqlite_url
    return server


def headers(served, subject, roles=("analyst",), tenant="acme", **claims):
    """Bearer headers for ``subject`` with ``claims`` (the policy's user attributes)."""
    return served.bearer_headers(subject, tenant=tenant, roles=roles, claims=claims or None)


def audit(served, **filters):
    served.gateway.runtime.flush_audit()
    return [entry.record for entry in AuditTrail(served.db_url).records(**filters)]


def test_the_list_shows_only_workflows_the_caller_may_execute(served):
    analyst = served.client.get("/workflows", headers=headers(served, "ana")).json()
    assert [item["name"] for item in analyst["workflows"]] == ["payroll", "payroll_isolated"]
    admin = served.client.get("/workflows", headers=headers(served, "root", roles=["admin"]))
    assert [item["name"] for item in admin.json()["workflows"]] == [
        "ledger",
        "payroll",
        "payroll_isolated",
    ]
    nobody = served.client.get("/workflows", headers=headers(served, "vic", roles=["viewer"]))
    assert nobody.json() == {"workflows": []}  # AUTHZ-01: nothing allows it


def test_a_workflow_the_caller_may_not_execute_is_not_described(served):
    response = served.client.get("/workflows/ledger", headers=headers(served, "ana"))
    assert response.status_code == 404
    assert response.json()["code"] == "workflow_not_found"
    allowed = served.client.get("/workflows/payroll", headers=headers(served, "ana"))
    assert allowed.status_code == 200


@pytest.mark.parametrize("wait", ["true", "false"])
def test_a_denied_execute_is_a_403_naming_the_action_not_the_rules(served, wait):
    response = served.client.post(
        f"/workflows/ledger/execute?wait={wait}",
        json={"parameters": {}},
        headers=headers(served, f"denied-{wait}"),
    )
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + "access_denied"
    assert "executing workflow 'ledger'" in problem["detail"]
    assert "admins-run-ledger" not in response.text and "default deny" not in response.text
    assert "run_id" not in problem  # nothing ran, nothing was recorded
    refused = audit(served, subject=f"denied-{wait}")
    assert [(record.action, record.decision) for record in refused] == [
        ("run", "deny"),
        ("execute", "deny"),
    ]


@pytest.mark.parametrize("name", ["payroll", "payroll_isolated"])
def test_outputs_show_what_the_token_s_claims_allow(served, name):
    cleared = served.client.post(
        f"/workflows/{name}/execute",
        json={"parameters": {}},
        headers=headers(served, "alice", clearance="secret"),
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["results"]["load"]["result"]["ssn"] == "123-45-6789"
    assert cleared.json()["results"]["report"] == {"result": {"total": 100}}
    masked = served.client.post(
        f"/workflows/{name}/execute",
        json={"parameters": {}},
        headers=headers(served, "bob", clearance="internal"),
    )
    assert masked.status_code == 200, masked.text
    assert masked.json()["results"]["load"]["result"]["ssn"] == REDACTED
    assert "123-45-6789" not in masked.text
    kept = served.client.get(f"/runs/{masked.json()['run_id']}", headers=headers(served, "bob"))
    assert kept.status_code == 200
    assert kept.json()["results"]["load"]["result"]["ssn"] == REDACTED  # the run keeps it so
    stored = None
    deadline = time.monotonic() + 30  # the recorder writes in batches
    while stored is None or stored.status == "running":
        assert time.monotonic() < deadline, "the run never reached the store"
        time.sleep(0.05)
        stored = RunStore(served.db_url).get_gateway_run(masked.json()["run_id"])
    assert "123-45-6789" not in json.dumps(stored.results)


@pytest.mark.parametrize("name", ["payroll", "payroll_isolated"])
def test_authz_16_a_denied_node_fails_the_run_with_a_403(served, name):
    caller = headers(served, f"ivy-{name}", roles=["analyst", "intern"], clearance="secret")
    response = served.client.post(
        f"/workflows/{name}/execute", json={"parameters": {}}, headers=caller
    )
    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["type"] == PROBLEM_BASE + "node_access_denied"
    assert "node 'pay'" in problem["detail"] and "interns-never-pay" not in response.text
    run = served.client.get(problem["run_url"], headers=caller)
    assert run.status_code == 200
    body = run.json()
    assert body["status"] == "failed"
    assert "report" not in (body.get("results") or {})  # nothing ran past the refused node
    decisions = {
        (record.action, record.resource, record.decision)
        for record in audit(served, subject=f"ivy-{name}")
    }
    assert ("execute", f"node:{name}/pay", "deny") in decisions
    assert ("run", f"workflow:{name}", "allow") in decisions


def test_every_gateway_decision_lands_in_a_verified_audit_trail(served):
    caller = headers(served, "carol", tenant="globex", clearance="secret")
    response = served.client.post(
        "/workflows/payroll/execute", json={"parameters": {}}, headers=caller
    )
    assert response.status_code == 200
    records = audit(served, tenant_id="globex", subject="carol")
    assert {record.run_id for record in records if record.action != "run"} == {
        response.json()["run_id"]
    }
    assert {record.tenant_id for record in records} == {"globex"}
    assert AuditTrail(served.db_url).verify(tenant_id="globex").ok


def test_runtime_must_be_an_access_controlled_runtime(security_config, tmp_path):
    with pytest.raises(TypeError, match="AccessControlledRuntime"):
        create_gateway(security_config=security_config(), runtime=LocalRuntime())


def test_access_control_needs_verified_tokens_and_no_result_cache(
    security_config, policy_file, tmp_path
):
    runtime = AccessControlledRuntime(policies_file=policy_file)
    with pytest.raises(GatewayConfigurationError, match="needs security_config"):
        create_gateway(runtime=runtime)
    with pytest.raises(GatewayConfigurationError, match="cache_enabled"):
        create_gateway(security_config=security_config(), runtime=runtime, cache_enabled=True)


def test_a_decision_that_cannot_be_audited_runs_nothing(
    policy_file, module_sqlite_url, secured_gateway, serve_gateway
):
    """STOR-08 through the gateway: a trail on a database nobody listens on."""
    unreachable = AuditTrail("postgresql://postgres@127.0.0.1:1/audit")
    runtime = AccessControlledRuntime(
        policies_file=policy_file, audit_enabled=True, audit_trail=unreachable
    )
    gateway = secured_gateway(module_sqlite_url, runtime=runtime)
    gateway.register_workflow("payroll", payroll())
    ran = []
    gateway.events.subscribe(ran.append)
    server = serve_gateway(gateway)
    response = server.client.post(
        "/workflows/payroll/execute",
        json={"parameters": {}},
        headers=headers(server, "alice", clearance="secret"),
    )
    assert response.status_code == 503
    assert response.json()["code"] == "audit_unavailable"
    assert response.headers["Retry-After"] == "5"
    assert ran == []


def _with_claims(token: str, **changes) -> str:
    """``token`` with its payload changed and its signature kept (a forgery)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_authz_12_no_caller_grants_itself_or_another_tenant_a_role(served):
    """Roles come only from tokens the gateway signs: no route assigns roles, and a
    token whose roles or tenant were edited is refused; an admin of acme runs nothing
    of globex's."""
    admin = headers(served, "root", roles=["admin"])
    for method, path in [
        ("PUT", "/tenants/globex/users/eve/roles"),
        ("POST", "/users/root/roles"),
        ("PATCH", "/auth/token"),
    ]:
        response = served.client.request(
            method, path, json={"roles": ["super_admin"]}, headers=admin
        )
        assert response.status_code in (404, 405), (method, path, response.status_code)
    token = admin["Authorization"].removeprefix("Bearer ")
    for forged in (
        _with_claims(token, roles=["admin", "super_admin"]),
        _with_claims(token, tenant_id="globex"),
    ):
        response = served.client.get("/workflows", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401
    globex_only = served.client.post(
        "/workflows/ledger/execute",
        json={"parameters": {}},
        headers={**headers(served, "root", roles=["admin"]), "X-Tenant-ID": "globex"},
    )
    # The tenant is the token's (acme); ledger ran for acme's admin, never for globex.
    assert globex_only.status_code == 200
    assert audit(served, tenant_id="globex", subject="root") == []
