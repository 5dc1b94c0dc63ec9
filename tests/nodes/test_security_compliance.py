"""ComplianceMonitorNode: SOC 2-style controls over the store: administrators without a
second factor, a broken audit chain (edited, deleted, cut-off records), repeated denied
access and stale keys; ``compliant`` with violations naming control and evidence. The
PostgreSQL store is shared by the session, so each test checks its own tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from _clock import Clock
from argon2 import PasswordHasher

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.nodes import NodeRegistry
from kailash_nb.nodes.security import ComplianceMonitorNode, MultiFactorAuthNode, compliance
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError
from kailash_nb.security import UserStore
from kailash_nb.store import AuditRecord, AuditTrail
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import audit_heads, audit_records

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
NOW = 1_800_000_000.0


@pytest.fixture
def tenant():
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    clock = Clock(NOW)
    monkeypatch.setattr(compliance, "_clock", clock)
    monkeypatch.delenv("KAILASH_NB_AUDIT_KEY", raising=False)
    return clock


@pytest.fixture
def check(database_url, tenant):
    def run(config: dict | None = None, **inputs) -> dict:
        node = ComplianceMonitorNode(database_url=database_url, **(config or {}))
        return node.execute(tenant_id=tenant, **inputs)

    return run


def append(url: str, tenant: str, count: int, **fields) -> AuditTrail:
    trail = AuditTrail(url)
    base = {"subject": "alice", "action": "execute", "resource": "workflow:payroll"}
    base.update(decision="allow", at=NOW - 60)
    base.update(fields)
    trail.append_many(AuditRecord(tenant, **base) for _ in range(count))
    return trail


def controls(result: dict) -> list[str]:
    return [violation["control_id"] for violation in result["violations"]]


def test_registered_config_empty_and_the_seed_soc2_line(monkeypatch, tmp_path):
    assert NodeRegistry.get("ComplianceMonitorNode") is ComplianceMonitorNode
    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", f"sqlite:///{tmp_path / 'app.db'}")
    namespace = {"workflow": WorkflowBuilder()}
    # The seed's line, with its stray closing parenthesis (a SyntaxError) removed.
    exec('workflow.add_node("ComplianceMonitorNode", "soc2_monitor", {})', namespace)
    results, _ = LocalRuntime(history=False).execute(namespace["workflow"].build())
    report = results["soc2_monitor"]
    assert report["compliant"] is True and report["violations"] == []
    assert set(report["controls"]) == set(compliance.COMPLIANCE_CONTROLS)
    assert all(control["passed"] for control in report["controls"].values())


def test_a_clean_tenant_is_compliant(check, database_url, tenant):
    users = UserStore(database_url, hasher=FAST)
    admin = f"root-{tenant}"
    users.add_user(admin, "correct horse battery", tenant_id=tenant, roles=["admin"])
    users.enroll_totp(admin)
    append(database_url, tenant, 5)
    append(database_url, tenant, 4, decision="deny", subject="mallory")
    result = check()
    assert result["compliant"] is True, result["violations"]
    assert result["tenant_id"] == tenant and result["checked_at"] == NOW


def test_admin_without_mfa_is_a_violation_until_enrolled(check, database_url, tenant):
    users = UserStore(database_url, hasher=FAST)
    admin = users.add_user(
        f"root-{tenant}", "correct horse battery", tenant_id=tenant, roles=["admin", "analyst"]
    )
    users.add_user(f"ann-{tenant}", "correct horse battery", tenant_id=tenant, roles=["analyst"])
    result = check()
    assert result["compliant"] is False and controls(result) == ["CC6.1-MFA"]
    violation = result["violations"][0]
    assert violation["severity"] == "high"
    assert violation["evidence"] == {
        "user_id": admin.user_id,
        "username": admin.username,
        "tenant_id": tenant,
        "roles": ["admin", "analyst"],
    }
    assert result["controls"]["CC6.1-MFA"] == {
        "title": "administrators use a second factor",
        "passed": False,
        "violations": 1,
    }
    MultiFactorAuthNode(database_url=database_url).execute(action="setup", user_id=admin.user_id)
    assert check()["compliant"] is True
    assert controls(check({"admin_roles": ["analyst"]})) == ["CC6.1-MFA"]  # ann now counts


def test_an_edited_audit_record_breaks_integrity(check, database_url, tenant):
    append(database_url, tenant, 5)
    with get_engine(database_url).begin() as connection:
        connection.execute(
            audit_records.update()
            .where(audit_records.c.tenant_id == tenant, audit_records.c.seq == 3)
            .values(decision="deny")
        )
    result = check()
    assert controls(result) == ["CC7.2-AUDIT-INTEGRITY"]
    evidence = result["violations"][0]["evidence"]
    assert evidence["tenant_id"] == tenant and evidence["first_bad_seq"] == 3
    assert result["violations"][0]["severity"] == "critical"


def test_a_deleted_audit_record_is_a_gap(check, database_url, tenant):
    append(database_url, tenant, 5)
    with get_engine(database_url).begin() as connection:
        connection.execute(
            audit_records.delete().where(
                audit_records.c.tenant_id == tenant, audit_records.c.seq == 2
            )
        )
    result = check()
    assert controls(result) == ["CC7.2-AUDIT-INTEGRITY"]
    assert result["violations"][0]["evidence"]["first_bad_seq"] == 2


def test_a_cut_tail_is_caught_by_a_checkpoint_kept_outside(check, database_url, tenant):
    trail = append(database_url, tenant, 5)
    kept = trail.checkpoint(tenant).to_json()
    # Cut the tail and move the head back: the chain in the database looks whole.
    third = trail.records(tenant_id=tenant, limit=5)[2]
    assert third.seq == 3
    with get_engine(database_url).begin() as connection:
        connection.execute(
            audit_records.delete().where(
                audit_records.c.tenant_id == tenant, audit_records.c.seq > 3
            )
        )
        connection.execute(
            audit_heads.update()
            .where(audit_heads.c.tenant_id == tenant)
            .values(seq=3, hash=third.hash)
        )
    assert check(controls=["CC7.2-AUDIT-INTEGRITY"])["compliant"] is True  # looks whole
    result = check(controls=["CC7.2-AUDIT-INTEGRITY"], checkpoints=[kept])
    assert controls(result) == ["CC7.2-AUDIT-INTEGRITY"]
    assert result["violations"][0]["evidence"]["first_bad_seq"] == 4


def test_repeated_denied_access_in_the_window(check, database_url, tenant):
    append(database_url, tenant, 5, decision="deny", subject="mallory", resource="workflow:hr")
    append(database_url, tenant, 4, decision="deny", subject="bob")
    append(database_url, tenant, 9, decision="deny", subject="old", at=NOW - 2 * 86400)
    result = check()
    assert controls(result) == ["CC6.3-ACCESS-DENIED"]
    evidence = result["violations"][0]["evidence"]
    assert (evidence["subject"], evidence["denials"], evidence["tenant_id"]) == (
        "mallory",
        5,
        tenant,
    )
    assert [sample["resource"] for sample in evidence["samples"]] == ["workflow:hr"] * 5
    assert [sample["seq"] for sample in evidence["samples"]] == [1, 2, 3, 4, 5]
    assert controls(check({"denied_access_threshold": 4})) == ["CC6.3-ACCESS-DENIED"] * 2
    assert controls(check({"window_hours": 72})) == ["CC6.3-ACCESS-DENIED"] * 2  # "old" too


def test_stale_keys(check):
    fresh = datetime.fromtimestamp(NOW, UTC) - timedelta(days=10)
    keys = [
        {"kid": "signing-2026", "created_at": fresh.isoformat(), "kind": "jwt"},
        {"kid": "api-legacy", "created_at": NOW - 200 * 86400, "kind": "api_key"},
    ]
    result = check(keys=keys)
    assert controls(result) == ["CC6.1-KEY-ROTATION"]
    assert result["violations"][0]["evidence"] == {
        "kid": "api-legacy",
        "kind": "api_key",
        "created_at": NOW - 200 * 86400,
        "age_days": 200.0,
        "max_age_days": 90.0,
    }
    assert check({"max_key_age_days": 365}, keys=keys)["compliant"] is True
    with pytest.raises(NodeValidationError, match="created_at"):
        check(keys=[{"kid": "k", "created_at": "yesterday"}])
    with pytest.raises(NodeValidationError, match="timezone"):
        check(keys=[{"kid": "k", "created_at": "2026-01-01T00:00:00"}])
    with pytest.raises(NodeValidationError, match="kid"):
        check(keys=[{"created_at": NOW}])


def test_bad_input_and_configuration(check):
    with pytest.raises(NodeValidationError, match="unknown controls"):
        check(controls=["CC9.9"])
    with pytest.raises(NodeValidationError, match="checkpoints"):
        check(checkpoints=["{}"])
    with pytest.raises(NodeConfigurationError, match="admin_roles"):
        ComplianceMonitorNode(admin_roles="admin")
    with pytest.raises(NodeConfigurationError, match="window_hours"):
        ComplianceMonitorNode(window_hours=0)
    with pytest.raises(NodeConfigurationError, match="denied_access_threshold"):
        ComplianceMonitorNode(denied_access_threshold=1.5)
