"""PII-04: ``GDPRComplianceNode``'s ``export_user_data`` and ``erase_user_data`` over every
table of the store (SQLite and PostgreSQL): the data before and after, the audit chain
verifying after erasure, the raw identifiers gone from every text column, a second
erasure idempotent, a failure mid-erasure changing nothing; and a store from before
schema version 9 migrating."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import sqlalchemy as sa

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.nodes.security import GDPRComplianceNode, SubjectErasureError, _subject_erasure
from kailash_nb.pii import PII_KEY_ENV, PIIKeyError, Pseudonymizer
from kailash_nb.sdk_exceptions import NodeExecutionError, NodeValidationError
from kailash_nb.security import AuthState, UserStore
from kailash_nb.store import AuditErasureError, AuditTrail
from kailash_nb.store.audit_erasure import replace_identifiers
from kailash_nb.store.audit_records import AUDIT_KEY_ENV, GENESIS_HASH, AuditRecord, record_hash
from kailash_nb.store.audit_trail import ERASURE_ACTION
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import (
    SCHEMA_VERSION,
    audit_heads,
    audit_records,
    gateway_runs,
    metadata,
    migrate,
    runs,
)
from kailash_nb.store.sessions import SessionRow, SessionStore

KEY = "p" * 32


class Scenario:
    """Jane (the data subject) and Bob (someone else) with data in every table."""

    def __init__(self, url: str, hasher, audit_key: bytes | None = None) -> None:
        tag = uuid.uuid4().hex[:8]
        self.url = url
        self.tenant = f"acme-{tag}"
        users = UserStore(url, hasher=hasher)
        self.username = f"jane.{tag}@example.com"
        jane = users.add_user(
            self.username, "correct horse battery", tenant_id=self.tenant, roles=["analyst"]
        )
        bob = users.add_user(
            f"bob.{tag}", "correct horse battery", tenant_id=self.tenant, roles=["admin"]
        )
        self.subject, self.bob = jane.user_id, bob.user_id
        users.second_factors.enroll(self.subject, self.username, issuer="kailash_nb")
        now = time.time()
        state = AuthState(url)
        self.family = f"fam-{uuid.uuid4().hex}"
        state.record_session(
            self.family, subject=self.subject, tenant_id=self.tenant, expires_at=now + 3600
        )
        state.record(
            "login_succeeded",
            subject=self.subject,
            tenant_id=self.tenant,
            session_id=self.family,
            detail={"ip": "203.0.113.9", "username": self.username},
        )
        state.record("login_failed", tenant_id=self.tenant, detail={"username": self.username})
        state.record(
            "role_changed",
            subject=self.bob,
            tenant_id=self.tenant,
            detail={"target": self.subject, "note": f"granted analyst to {self.username}"},
        )
        state.record("login_succeeded", subject=self.bob, tenant_id=self.tenant, detail={})
        SessionStore(url).insert(
            SessionRow(
                session_id=str(uuid.uuid4()),
                tenant_id=self.tenant,
                subject=self.subject,
                metadata={"email": self.username},
                max_concurrent_workflows=None,
                max_memory_mb=None,
                created_at=now,
                closed_at=None,
            )
        )
        self.run_id, self.bob_run = str(uuid.uuid4()), str(uuid.uuid4())
        engine = get_engine(url)
        with engine.begin() as connection:
            for run_id, owner, value in (
                (self.run_id, self.subject, self.username),
                (self.bob_run, self.bob, "bob's"),
            ):
                connection.execute(
                    runs.insert().values(
                        run_id=run_id, run_seq=int(now * 1e6), workflow_name="payroll",
                        parameters={"mail": {"to": value}}, status="completed",
                        started_at=now, finished_at=now + 1, duration=1.0, node_events=[],
                    )
                )  # fmt: skip
                connection.execute(
                    gateway_runs.insert().values(
                        run_id=run_id, tenant_id=self.tenant, subject=owner,
                        workflow_name="payroll", status="completed",
                        results=json.dumps({"mail": {"sent_to": value}}), results_size=40,
                        created_at=now, finished_at=now + 1,
                    )
                )  # fmt: skip
        self.trail = AuditTrail(url, checkpoint_key=audit_key)
        self.trail.append_many(
            [
                AuditRecord(self.tenant, self.subject, "run", "workflow:payroll", "allow",
                            run_id=self.run_id),
                AuditRecord(self.tenant, self.subject, "execute", "workflow:admin", "deny",
                            ("r1",), detail={"reason": f"user {self.subject!r} may not"}),
                AuditRecord(self.tenant, self.bob, "update", f"user:{self.subject}", "allow"),
                AuditRecord(self.tenant, self.bob, "run", "workflow:payroll", "allow",
                            run_id=self.bob_run),
            ]
        )  # fmt: skip

    @property
    def identifiers(self) -> list[str]:
        return [self.subject, self.username]


@pytest.fixture
def scenario(database_url, password_hasher):
    return Scenario(database_url, password_hasher)


def _run(action: str, scenario: Scenario, **inputs):
    return GDPRComplianceNode().execute(
        action=action, subject=scenario.subject, database_url=scenario.url, **inputs
    )


def _text_cells(url: str) -> dict[str, list[str]]:
    """Every text or JSON cell of every kailash_nb table, as text, per table."""
    engine = get_engine(url)
    found: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            columns = [
                sa.cast(column, sa.Text)
                for column in table.columns
                if isinstance(column.type, (sa.String, sa.Text, sa.JSON))
            ]
            if columns:
                cells = connection.execute(sa.select(*columns)).all()
                found[table.name] = [str(cell) for row in cells for cell in row if cell]
    return found


def _dump(url: str) -> dict[str, list[tuple]]:
    engine = get_engine(url)
    with engine.connect() as connection:
        return {
            table.name: sorted(
                (tuple(str(value) for value in row) for row in connection.execute(table.select())),
            )
            for table in metadata.sorted_tables
        }


def _holders(url: str, identifiers: list[str]) -> dict[str, int]:
    return {
        table: sum(1 for cell in cells if any(value in cell for value in identifiers))
        for table, cells in _text_cells(url).items()
        if any(any(value in cell for value in identifiers) for cell in cells)
    }


def test_pii_04_export_user_data_gives_everything_about_the_subject_without_secrets(scenario):
    export = _run("export_user_data", scenario)
    json.dumps(export)  # JSON-safe
    assert export["user"]["user_id"] == scenario.subject
    assert export["user"]["username"] == scenario.username
    assert export["user"]["second_factor"]["unused_backup_codes"] > 0
    assert export["counts"] == {
        "user": 1, "token_sessions": 1, "agent_sessions": 1, "auth_events": 3, "runs": 1,
        "audit_records": 3,
    }  # fmt: skip
    assert export["token_sessions"][0]["session_id"] == scenario.family
    assert export["runs"][0]["results"] == {"mail": {"sent_to": scenario.username}}
    assert export["runs"][0]["parameters"] == {"mail": {"to": scenario.username}}
    assert {event["event"] for event in export["auth_events"]} == {
        "login_succeeded", "login_failed", "role_changed",
    }  # fmt: skip
    assert [record["action"] for record in export["audit_records"]] == ["run", "execute", "update"]
    text = json.dumps(export)
    assert "password" not in text and "argon2" not in text and "secret" not in text
    assert scenario.bob not in text


def test_pii_04_erasure_removes_or_pseudonymises_the_subject_in_every_table(scenario):
    before = _holders(scenario.url, scenario.identifiers)
    assert set(before) >= {
        "kailash_nb_auth_users", "kailash_nb_auth_totp", "kailash_nb_auth_backup_codes",
        "kailash_nb_auth_token_sessions", "kailash_nb_sessions", "kailash_nb_auth_events",
        "kailash_nb_runs", "kailash_nb_gateway_runs", "kailash_nb_audit_records",
    }  # fmt: skip

    result = _run("erase_user_data", scenario, pii_key=KEY)

    pseudonym = Pseudonymizer(KEY).pseudonym(scenario.subject, "subject")
    assert result["success"] is True and result["nothing_to_erase"] is False
    assert result["subject_pseudonym"] == pseudonym
    assert result["erased"] == {
        "user": 1, "second_factor": 1, "token_sessions": 1, "agent_sessions": 1,
        "auth_events": 3, "runs": 1, "audit_records": 3,
    }  # fmt: skip
    # Not one text cell of any table holds the user id or the username any more.
    assert _holders(scenario.url, scenario.identifiers) == {}
    # The chain verifies, with the erasure's tombstone at its end.
    verified = scenario.trail.verify(scenario.tenant)
    assert verified.ok, verified.message
    assert verified.records == 5
    assert result["tombstones"] == [{"tenant_id": scenario.tenant, "seq": 5}]
    entries = {entry.seq: entry for entry in scenario.trail.records(tenant_id=scenario.tenant)}
    tombstone = entries[5].record
    assert (tombstone.action, tombstone.subject) == (ERASURE_ACTION, pseudonym)
    assert sorted(tombstone.detail["erased"]) == ["1", "2", "3"]
    # Audit records keep the keyed pseudonym in place of the raw identifier.
    assert [entries[seq].record.subject for seq in (1, 2, 3, 4)] == [
        pseudonym, pseudonym, scenario.bob, scenario.bob,
    ]  # fmt: skip
    assert entries[2].record.detail == {"reason": f"user '{pseudonym}' may not"}
    assert entries[3].record.resource == f"user:{pseudonym}"
    # The session is revoked; the subject's events are kept, pseudonymised.
    assert AuthState(scenario.url).is_revoked(scenario.family)
    after = _run("export_user_data", scenario)
    assert after["user"] is None
    assert after["counts"] == dict.fromkeys(after["counts"], 0)
    events = AuthState(scenario.url).events(limit=1000)
    own = [event for event in events if event.subject == pseudonym]
    assert len(own) == 1 and own[0].detail["username"] == pseudonym
    assert own[0].detail["ip"].startswith("ip_address_")
    # Bob's data is untouched.
    assert scenario.bob in json.dumps(_text_cells(scenario.url)["kailash_nb_auth_users"])
    assert get_engine(scenario.url).connect().execute(
        sa.select(sa.func.count()).select_from(gateway_runs).where(
            gateway_runs.c.run_id == scenario.bob_run
        )
    ).scalar_one() == 1  # fmt: skip


def test_pii_04_a_second_erasure_is_idempotent(scenario):
    first = _run("erase_user_data", scenario, pii_key=KEY)
    snapshot = _dump(scenario.url)
    second = _run("erase_user_data", scenario, pii_key=KEY)
    assert second["success"] is True and second["nothing_to_erase"] is True
    assert second["erased"] == dict.fromkeys(first["erased"], 0)
    assert second["tombstones"] == []
    assert second["subject_pseudonym"] == first["subject_pseudonym"]
    assert _dump(scenario.url) == snapshot
    assert scenario.trail.verify(scenario.tenant).ok


@pytest.mark.parametrize("step", ["auth_events", "tombstone"])
def test_pii_04_a_failure_mid_erasure_leaves_everything_unchanged(scenario, monkeypatch, step):
    def fail(*args, **kwargs):
        raise RuntimeError(f"injected failure at {step}")

    if step == "auth_events":
        monkeypatch.setattr(_subject_erasure, "_pseudonymise_auth_events", fail)
    else:
        monkeypatch.setattr(AuditTrail, "append_in", fail)
    before = _dump(scenario.url)
    with pytest.raises(NodeExecutionError, match="injected failure"):
        _run("erase_user_data", scenario, pii_key=KEY)
    assert _dump(scenario.url) == before
    # In a workflow the node fails: the run never reports success.
    builder = WorkflowBuilder()
    builder.add_node(
        "GDPRComplianceNode", "erase",
        {"action": "erase_user_data", "subject": scenario.subject, "database_url": scenario.url,
         "pii_key": KEY},
    )  # fmt: skip
    results, _ = LocalRuntime().execute(builder.build())
    assert results["erase"]["failed"] is True and "success" not in results["erase"]
    assert "injected failure" in results["erase"]["error"]
    assert _dump(scenario.url) == before
    monkeypatch.undo()
    assert _run("erase_user_data", scenario, pii_key=KEY)["success"] is True


def test_pii_04_an_erased_audit_record_edited_afterwards_breaks_the_chain(scenario):
    _run("erase_user_data", scenario, pii_key=KEY)
    where = (audit_records.c.tenant_id == scenario.tenant) & (audit_records.c.seq == 2)
    with get_engine(scenario.url).begin() as connection:
        connection.execute(audit_records.update().where(where).values(subject="mallory"))
    result = scenario.trail.verify(scenario.tenant)
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "erased" in result.reason


def test_pii_04_dropping_a_records_salt_without_a_tombstone_is_caught(scenario):
    where = (audit_records.c.tenant_id == scenario.tenant) & (audit_records.c.seq == 1)
    with get_engine(scenario.url).begin() as connection:
        connection.execute(
            audit_records.update().where(where).values(subject="someone", content_salt=None)
        )
    result = scenario.trail.verify(scenario.tenant)
    assert (result.ok, result.first_bad_seq) == (False, 1)


def test_pii_04_erasure_keeps_a_signed_chain_signed(database_url, password_hasher, monkeypatch):
    audit_key = "a" * 32
    monkeypatch.setenv(AUDIT_KEY_ENV, audit_key)
    scenario = Scenario(database_url, password_hasher, audit_key=audit_key.encode())
    signed = AuditTrail(database_url, checkpoint_key=audit_key.encode())
    assert signed.verify(scenario.tenant).ok
    # Without the key (or with another one) the erasure is refused and changes nothing.
    before = _dump(database_url)
    for wrong in (None, "b" * 32):
        if wrong is None:
            monkeypatch.delenv(AUDIT_KEY_ENV)
        else:
            monkeypatch.setenv(AUDIT_KEY_ENV, wrong)
        with pytest.raises(AuditErasureError, match="is signed"):
            _run("erase_user_data", scenario, pii_key=KEY)
        assert _dump(database_url) == before
    monkeypatch.setenv(AUDIT_KEY_ENV, audit_key)
    assert _run("erase_user_data", scenario, pii_key=KEY)["erased"]["audit_records"] == 3
    verified = signed.verify(scenario.tenant, checkpoints=[signed.checkpoint(scenario.tenant)])
    assert verified.ok and verified.signed, verified.message


def test_pii_04_erasure_needs_a_subject_and_a_managed_key(scenario, monkeypatch):
    monkeypatch.delenv(PII_KEY_ENV, raising=False)
    before = _dump(scenario.url)
    with pytest.raises(PIIKeyError):
        _run("erase_user_data", scenario)
    with pytest.raises(NodeValidationError, match="needs 'subject'"):
        GDPRComplianceNode().execute(action="erase_user_data", database_url=scenario.url)
    assert _dump(scenario.url) == before
    monkeypatch.setenv(PII_KEY_ENV, KEY)
    assert _run("erase_user_data", scenario)["subject_pseudonym"] == Pseudonymizer(KEY).pseudonym(
        scenario.subject, "subject"
    )


def test_pii_04_a_run_in_progress_blocks_erasure_and_changes_nothing(scenario):
    with get_engine(scenario.url).begin() as connection:
        connection.execute(
            gateway_runs.update()
            .where(gateway_runs.c.run_id == scenario.run_id)
            .values(status="running")
        )
    before = _dump(scenario.url)
    with pytest.raises(SubjectErasureError, match="still queued or running"):
        _run("erase_user_data", scenario, pii_key=KEY)
    assert _dump(scenario.url) == before


def test_pii_04_identifiers_are_replaced_as_whole_words_only():
    replaced = replace_identifiers(
        {"al": "al and alice, mail al@x.org; user 'al'."}, ["al"], "subject_1"
    )
    assert replaced == {"subject_1": "subject_1 and alice, mail al@x.org; user 'subject_1'."}


def test_pii_04_a_store_from_before_version_9_migrates_and_keeps_old_records_intact(tmp_path):
    url = f"sqlite:///{tmp_path / 'v8.db'}"
    engine = get_engine(url)
    migrate(engine)
    # Rebuild the store as schema version 8 wrote it: no commitment columns, and
    # records hashed over their raw fields (hash version 1).
    with engine.begin() as connection:
        prev, at_us = GENESIS_HASH, int(time.time() * 1e6)
        for seq, subject in ((1, "old-user"), (2, "other")):
            digest = record_hash(
                "t", seq, at_us, subject, "run", "workflow:w", "allow", "[]", None, False, "{}",
                prev,
            )  # fmt: skip
            connection.execute(
                audit_records.insert().values(
                    tenant_id="t", seq=seq, at_us=at_us, subject=subject, action="run",
                    resource="workflow:w", decision="allow", rule_ids="[]", run_id=None,
                    cached=False, detail="{}", prev_hash=prev, hash=digest,
                )
            )  # fmt: skip
            prev = digest
        connection.execute(
            audit_heads.insert().values(tenant_id="t", seq=2, hash=prev, mac=None, updated_at=0.0)
        )
        for column in ("content_salt", "content_commit"):
            connection.exec_driver_sql(f"ALTER TABLE kailash_nb_audit_records DROP COLUMN {column}")
        connection.exec_driver_sql("UPDATE kailash_nb_schema SET version = 8")
    engine.dispose()
    from kailash_nb.store.database import dispose_engines

    dispose_engines()

    engine = get_engine(url)
    assert migrate(engine) == SCHEMA_VERSION == 9
    columns = {
        column["name"] for column in sa.inspect(engine).get_columns("kailash_nb_audit_records")
    }
    assert {"content_salt", "content_commit"} <= columns
    trail = AuditTrail(url)
    assert trail.verify("t").ok
    trail.append(AuditRecord("t", "new-user", "run", "workflow:w", "allow"))
    assert trail.verify("t").ok
    # A subject only in new records is erased; one in an old record is refused whole.
    node = GDPRComplianceNode()
    erased = node.execute(
        action="erase_user_data", subject="new-user", database_url=url, pii_key=KEY
    )
    assert erased["erased"]["audit_records"] == 1
    assert trail.verify("t").ok
    before = _dump(url)
    with pytest.raises(AuditErasureError, match="before schema version 9"):
        node.execute(action="erase_user_data", subject="old-user", database_url=url, pii_key=KEY)
    assert _dump(url) == before
    assert trail.verify("t").ok
