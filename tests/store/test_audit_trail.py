"""The audit trail: hash chains per tenant, signed checkpoints, tamper detection
(STOR-09), fail-closed appends (STOR-08) and concurrent writers (STOR-10).

Every test runs against SQLite and, when configured, PostgreSQL (``database_url``);
the PostgreSQL database is shared by the session, so each test uses its own tenants.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from kailash_nb.store.audit_trail import (
    GENESIS_HASH,
    AuditRecord,
    AuditRecordError,
    AuditTrail,
    AuditUnavailableError,
    Checkpoint,
    VerifyResult,
)
from kailash_nb.store.database import get_engine
from kailash_nb.store.schema import audit_checkpoints, audit_heads, audit_records

KEY = b"an audit checkpoint key of 32+ bytes!"


@pytest.fixture
def tenant():
    """A tenant id private to this test."""
    return f"t-{uuid.uuid4().hex[:12]}"


def _record(tenant: str, number: int = 0, **changes) -> AuditRecord:
    fields = {
        "tenant_id": tenant,
        "subject": "alice",
        "action": "execute",
        "resource": f"workflow:w{number}",
        "decision": "allow",
        "rule_ids": ("r1",),
        "detail": {"n": number},
    }
    fields.update(changes)
    return AuditRecord(**fields)


def _filled(url: str, tenant: str, count: int, **options) -> AuditTrail:
    trail = AuditTrail(url, checkpoint_key=KEY, **options)
    trail.append_many(_record(tenant, number) for number in range(1, count + 1))
    return trail


def _execute(url: str, statement) -> int:
    with get_engine(url).begin() as connection:
        return connection.execute(statement).rowcount


# -- the chain -----------------------------------------------------------------------


def test_sequence_numbers_count_from_one_per_tenant_and_records_read_back(database_url, tenant):
    other = f"{tenant}-other"
    trail = AuditTrail(database_url)
    assert [trail.append(_record(tenant, n)) for n in range(3)] == [1, 2, 3]
    assert trail.append(_record(other, decision="deny", cached=True, run_id="run-1")) == 1
    entries = trail.records(tenant_id=tenant)
    assert [entry.seq for entry in entries] == [3, 2, 1]  # most recent first
    assert entries[-1].prev_hash == GENESIS_HASH
    assert entries[0].prev_hash == entries[1].hash
    record = entries[0].record
    assert (record.subject, record.action, record.resource, record.decision) == (
        "alice",
        "execute",
        "workflow:w2",
        "allow",
    )
    assert record.rule_ids == ("r1",) and record.detail == {"n": 2}
    assert abs(record.at - time.time()) < 60
    [denied] = trail.records(tenant_id=other)
    assert denied.record.cached is True and denied.record.run_id == "run-1"
    assert trail.verify(tenant).ok and trail.verify(other).ok


def test_records_filter_by_subject_action_decision_and_time(database_url, tenant):
    trail = AuditTrail(database_url)
    trail.append(_record(tenant, 1, at=1000.0))
    trail.append(_record(tenant, 2, at=2000.0, subject="bob", decision="deny"))
    trail.append(_record(tenant, 3, at=3000.0, action="read_output"))
    by = lambda **filters: [e.seq for e in trail.records(tenant_id=tenant, **filters)]  # noqa: E731
    assert by(subject="bob") == [2]
    assert by(decision="deny") == [2]
    assert by(action="read_output") == [3]
    assert by(since=2000.0) == [3, 2]
    assert by(since=1000.0, until=3000.0) == [2, 1]
    assert by(limit=1) == [3]
    with pytest.raises(ValueError, match="limit"):
        trail.records(limit=0)
    with pytest.raises(ValueError, match="decision"):
        trail.records(decision="maybe")


def test_a_record_that_cannot_be_stored_is_refused_before_anything_is_written(database_url, tenant):
    trail = AuditTrail(database_url)
    with pytest.raises(AuditRecordError, match="decision"):
        trail.append(_record(tenant, decision="permit"))
    with pytest.raises(AuditRecordError, match="subject"):
        trail.append(_record(tenant, subject=""))
    with pytest.raises(AuditRecordError, match="JSON"):
        trail.append(_record(tenant, detail={"x": object()}))
    with pytest.raises(AuditRecordError, match="JSON"):
        trail.append(_record(tenant, detail={"x": float("nan")}))
    with pytest.raises(AuditRecordError, match="decision"):
        trail.append_many([_record(tenant, 1), _record(tenant, 2, decision="?")])
    assert trail.records(tenant_id=tenant) == []
    assert trail.append(_record(tenant)) == 1


def test_the_checkpoint_key_has_no_default_and_must_be_long(database_url):
    assert AuditTrail(database_url).signed is False
    with pytest.raises(ValueError, match="32 bytes"):
        AuditTrail(database_url, checkpoint_key=b"short")
    with pytest.raises(ValueError, match="checkpoint_every"):
        AuditTrail(database_url, checkpoint_key=KEY, checkpoint_every=0)
    assert "an audit" not in repr(AuditTrail(database_url, checkpoint_key=KEY))


def test_checkpoints_are_signed_every_n_records(database_url, tenant):
    trail = _filled(database_url, tenant, 25, checkpoint_every=10)
    with get_engine(database_url).connect() as connection:
        seqs = connection.execute(
            sa.select(audit_checkpoints.c.seq).where(audit_checkpoints.c.tenant_id == tenant)
        ).scalars()
        assert sorted(seqs) == [10, 20]
    result = trail.verify(tenant)
    assert result == VerifyResult(ok=True, tenants=1, records=25, checkpoints=2, signed=True), (
        result.message
    )
    assert "25 records" in result.message


def test_a_batch_over_several_tenants_is_stored_in_one_transaction(database_url, tenant):
    other = f"{tenant}-b"
    trail = AuditTrail(database_url, checkpoint_key=KEY, checkpoint_every=2)
    batch = [_record(other, 1), _record(tenant, 2), _record(other, 3), _record(tenant, 4)]
    assert trail.append_many(batch) == [1, 1, 2, 2]
    assert trail.append_many([]) == []
    assert trail.verify(tenant).ok and trail.verify(other).ok
    assert trail.verify(tenant).checkpoints == 1


def test_an_in_memory_store_shared_by_threads_keeps_one_chain(tenant):
    trail = AuditTrail("sqlite:///:memory:", checkpoint_key=KEY, checkpoint_every=50)
    threads = [
        threading.Thread(target=lambda: [trail.append(_record(tenant, n)) for n in range(100)])
        for _ in range(4)
    ]
    verifier_results: list[bool] = []
    verifier = threading.Thread(
        target=lambda: verifier_results.extend(trail.verify(tenant).ok for _ in range(20))
    )
    for thread in [*threads, verifier]:
        thread.start()
    for thread in [*threads, verifier]:
        thread.join()
    assert all(verifier_results)
    result = trail.verify(tenant)
    assert (result.ok, result.records, result.checkpoints) == (True, 400, 8)


def test_a_chain_written_without_the_key_is_reported_unsigned_by_a_keyed_verify(
    database_url, tenant
):
    AuditTrail(database_url).append(_record(tenant))
    result = AuditTrail(database_url, checkpoint_key=KEY).verify(tenant)
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "not signed" in result.reason


# -- STOR-09: tampering is named by its first bad sequence number --------------------------


def test_stor_09_an_edited_row_is_named(database_url, tenant):
    trail = _filled(database_url, tenant, 30)
    where = (audit_records.c.tenant_id == tenant) & (audit_records.c.seq == 17)
    assert _execute(database_url, audit_records.update().where(where).values(decision="deny"))
    result = trail.verify(tenant)
    assert not result.ok
    assert (result.tenant_id, result.first_bad_seq) == (tenant, 17)
    assert "edited" in result.reason
    assert result.message.count("\n") == 0 and "seq 17" in result.message


def test_stor_09_an_edit_with_a_recomputed_hash_is_named_at_the_broken_link(database_url, tenant):
    trail = _filled(database_url, tenant, 30)
    with get_engine(database_url).begin() as connection:
        row = connection.execute(
            sa.select(audit_records).where(
                (audit_records.c.tenant_id == tenant) & (audit_records.c.seq == 12)
            )
        ).one()
    from kailash_nb.store.audit_records import content_commitment, record_hash_v2

    # A forger who knows the format rewrites the subject with a commitment and hash of
    # their own: the record is self-consistent, its successor's link is not.
    commit = content_commitment(row.content_salt, "mallory", row.resource, row.detail)
    forged = record_hash_v2(
        tenant, 12, row.at_us, commit, row.action, row.decision, row.rule_ids, row.run_id,
        row.cached, row.prev_hash,
    )  # fmt: skip
    where = (audit_records.c.tenant_id == tenant) & (audit_records.c.seq == 12)
    _execute(
        database_url,
        audit_records.update()
        .where(where)
        .values(subject="mallory", content_commit=commit, hash=forged),
    )
    result = trail.verify(tenant)
    assert (result.ok, result.first_bad_seq) == (False, 13)
    assert "record 12 was replaced" in result.reason


def test_stor_09_a_deleted_middle_row_is_named(database_url, tenant):
    trail = _filled(database_url, tenant, 30)
    where = (audit_records.c.tenant_id == tenant) & (audit_records.c.seq == 9)
    assert _execute(database_url, audit_records.delete().where(where)) == 1
    result = trail.verify(tenant)
    assert (result.ok, result.first_bad_seq) == (False, 9)
    assert "deleted" in result.reason


def test_stor_09_a_truncated_tail_is_named(database_url, tenant):
    trail = _filled(database_url, tenant, 30, checkpoint_every=10)
    tail = (audit_records.c.tenant_id == tenant) & (audit_records.c.seq > 24)
    assert _execute(database_url, audit_records.delete().where(tail)) == 6
    result = trail.verify(tenant)
    assert (result.ok, result.first_bad_seq) == (False, 25)
    assert "truncated" in result.reason and "reaches 30" in result.reason


def test_stor_09_a_truncation_that_rewrites_the_chain_end_is_caught_by_the_checkpoint(
    database_url, tenant
):
    trail = _filled(database_url, tenant, 30, checkpoint_every=10)
    with get_engine(database_url).begin() as connection:
        connection.execute(
            audit_records.delete().where(
                (audit_records.c.tenant_id == tenant) & (audit_records.c.seq > 14)
            )
        )
        last_hash = connection.execute(
            sa.select(audit_records.c.hash).where(
                (audit_records.c.tenant_id == tenant) & (audit_records.c.seq == 14)
            )
        ).scalar_one()
        # The chain end rewritten to match; its signature cannot be forged without the key.
        connection.execute(
            audit_heads.update()
            .where(audit_heads.c.tenant_id == tenant)
            .values(seq=14, hash=last_hash, mac="0" * 64)
        )
    result = trail.verify(tenant)
    assert (result.ok, result.first_bad_seq) == (False, 15)
    assert "checkpoint 30 reaches 30" in result.reason and "truncated" in result.reason
    # With the checkpoints deleted too, the unsigned chain end still gives it away.
    _execute(
        database_url, audit_checkpoints.delete().where(audit_checkpoints.c.tenant_id == tenant)
    )
    result = trail.verify(tenant)
    assert (result.ok, result.first_bad_seq) == (False, 14)
    assert "signature" in result.reason


def test_stor_09_a_forged_checkpoint_is_not_believed(database_url, tenant):
    trail = _filled(database_url, tenant, 12, checkpoint_every=5)
    where = (audit_checkpoints.c.tenant_id == tenant) & (audit_checkpoints.c.seq == 10)
    _execute(database_url, audit_checkpoints.update().where(where).values(hash="f" * 64))
    result = trail.verify(tenant)
    assert (result.ok, result.first_bad_seq) == (False, 10)
    assert "forged" in result.reason


def test_stor_09_verify_without_the_key_still_catches_edits_and_says_what_it_skipped(
    database_url, tenant
):
    _filled(database_url, tenant, 5)
    unsigned = AuditTrail(database_url)
    result = unsigned.verify(tenant)
    assert result.ok and not result.signed
    assert "NOT checked" in result.message
    where = (audit_records.c.tenant_id == tenant) & (audit_records.c.seq == 2)
    _execute(database_url, audit_records.update().where(where).values(resource="workflow:x"))
    assert unsigned.verify(tenant).first_bad_seq == 2


def test_stor_09_a_rolled_back_chain_is_caught_by_a_checkpoint_kept_elsewhere(database_url, tenant):
    trail = _filled(database_url, tenant, 8, checkpoint_every=1000)
    early = trail.checkpoint(tenant)
    assert (early.tenant_id, early.seq) == (tenant, 8) and early.mac
    trail.append_many(_record(tenant, n) for n in range(9, 13))
    kept = Checkpoint.from_json(trail.checkpoint(tenant).to_json())
    assert kept.seq == 12
    assert trail.verify(tenant, checkpoints=[early, kept]).ok
    # The database rolled back to its state at record 8: chain end and all.
    with get_engine(database_url).begin() as connection:
        connection.execute(
            audit_records.delete().where(
                (audit_records.c.tenant_id == tenant) & (audit_records.c.seq > 8)
            )
        )
        connection.execute(
            audit_heads.update()
            .where(audit_heads.c.tenant_id == tenant)
            .values(seq=early.seq, hash=early.hash, mac=early.mac)
        )
    assert trail.verify(tenant).ok  # nothing in the database can tell
    result = trail.verify(tenant, checkpoints=[kept])
    assert (result.ok, result.first_bad_seq) == (False, 9)
    assert "kept checkpoint at 12" in result.reason


def test_stor_09_a_wiped_tenant_is_caught_by_a_kept_checkpoint(database_url, tenant):
    trail = _filled(database_url, tenant, 3)
    kept = trail.checkpoint(tenant)
    with get_engine(database_url).begin() as connection:
        for table in (audit_records, audit_heads, audit_checkpoints):
            connection.execute(table.delete().where(table.c.tenant_id == tenant))
    result = trail.verify(tenant, checkpoints=[kept])
    assert (result.ok, result.tenant_id, result.first_bad_seq) == (False, tenant, 1)
    assert "records 1..3 missing" in result.reason


def test_a_kept_checkpoint_that_was_forged_or_does_not_match_is_reported(database_url, tenant):
    trail = _filled(database_url, tenant, 5)
    real = trail.checkpoint(tenant)
    forged = Checkpoint(tenant, 5, "a" * 64, real.mac)
    result = trail.verify(tenant, checkpoints=[forged])
    assert (result.ok, result.first_bad_seq) == (False, 5) and "forged" in result.reason
    # Unsigned (a trail without the key takes it as given): the hash must still match.
    result = AuditTrail(database_url).verify(tenant, checkpoints=[forged])
    assert (result.ok, result.first_bad_seq) == (False, 5) and "rewritten" in result.reason
    assert AuditTrail(database_url).checkpoint(tenant).mac is None
    empty = trail.checkpoint(f"{tenant}-none")
    assert (empty.seq, empty.hash) == (0, GENESIS_HASH) and empty.mac


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("nope", "one line of JSON"),
        ('{"tenant_id": "a", "seq": 1}', "tenant_id, seq, hash and mac"),
        ('{"tenant_id": "a", "seq": -1, "hash": "' + "0" * 64 + '", "mac": null}', "seq"),
        ('{"tenant_id": "a", "seq": 1, "hash": "xyz", "mac": null}', "hash"),
    ],
)
def test_a_malformed_checkpoint_is_refused_saying_why(text, problem):
    with pytest.raises(ValueError, match=problem):
        Checkpoint.from_json(text)


def test_verify_of_every_tenant_names_the_broken_one(sqlite_url):
    trail = AuditTrail(sqlite_url, checkpoint_key=KEY)
    for tenant in ("a", "b", "c"):
        trail.append_many(_record(tenant, n) for n in range(4))
    assert trail.verify().ok and trail.verify().tenants == 3
    where = (audit_records.c.tenant_id == "b") & (audit_records.c.seq == 3)
    _execute(sqlite_url, audit_records.update().where(where).values(subject="eve"))
    result = trail.verify()
    assert (result.ok, result.tenant_id, result.first_bad_seq) == (False, "b", 3)
    assert trail.verify("c").ok


# -- STOR-08: an unavailable store fails the append, never drops the record ---------------


def test_stor_08_an_unreachable_store_raises_a_typed_error(tmp_path, tenant):
    trail = AuditTrail(f"sqlite:///{tmp_path / 'missing-dir' / 'audit.db'}")
    with pytest.raises(AuditUnavailableError, match="unavailable") as caught:
        trail.append(_record(tenant))
    assert "\n" not in str(caught.value)


@pytest.mark.postgres
def test_stor_08_an_unreachable_postgresql_store_raises_a_typed_error(tenant):
    trail = AuditTrail("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(AuditUnavailableError) as caught:
        trail.append(_record(tenant))
    assert "secret" not in str(caught.value)


def test_stor_08_a_store_locked_beyond_the_timeout_raises_and_stores_nothing(database_url, tenant):
    trail = AuditTrail(database_url, timeout=0.5)
    trail.append(_record(tenant, 1))
    engine = get_engine(database_url)
    with engine.connect() as blocker:
        if blocker.dialect.name == "sqlite":
            blocker.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            blocker.execute(
                sa.select(audit_heads).where(audit_heads.c.tenant_id == tenant).with_for_update()
            )
        started = time.monotonic()
        with pytest.raises(AuditUnavailableError, match="blocked"):
            trail.append(_record(tenant, 2))
        assert time.monotonic() - started < 5
        blocker.rollback()
    assert [entry.seq for entry in trail.records(tenant_id=tenant)] == [1]
    assert trail.append(_record(tenant, 3)) == 2
    assert trail.verify(tenant).ok


def test_stor_08_a_store_whose_audit_table_is_gone_raises(sqlite_url, tenant):
    trail = AuditTrail(sqlite_url)
    trail.append(_record(tenant))
    with get_engine(sqlite_url).begin() as connection:
        connection.exec_driver_sql("DROP TABLE kailash_nb_audit_records")
    with pytest.raises(AuditUnavailableError):
        trail.append(_record(tenant))
    with pytest.raises(AuditUnavailableError):
        trail.verify(tenant)


# -- STOR-10: concurrent writers never fork a chain -------------------------------------


@pytest.mark.slow
def test_stor_10_eight_threads_appending_10000_events_make_one_linear_chain(database_url, tenant):
    trail = AuditTrail(database_url, checkpoint_key=KEY, checkpoint_every=1000, timeout=60)
    errors: list[BaseException] = []
    numbers: list[list[int]] = [[] for _ in range(8)]

    def write(worker: int) -> None:
        try:
            for n in range(1250):
                numbers[worker].append(trail.append(_record(tenant, n, subject=f"worker-{worker}")))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(n for per_worker in numbers for n in per_worker) == list(range(1, 10001))
    for per_worker in numbers:  # each writer's records are in its order
        assert per_worker == sorted(per_worker)
    result = trail.verify(tenant)
    assert result.ok, result.message
    assert (result.records, result.checkpoints) == (10000, 10)


_WRITER = textwrap.dedent(
    """
    import sys
    from kailash_nb.store.audit_trail import AuditRecord, AuditTrail

    url, tenant, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    trail = AuditTrail(url, checkpoint_key=b"an audit checkpoint key of 32+ bytes!",
                       checkpoint_every=100, timeout=60)
    for n in range(count):
        trail.append(AuditRecord(tenant, name, "execute", f"workflow:w{n}", "allow"))
    """
)


@pytest.mark.slow
def test_stor_10_two_processes_appending_make_one_linear_chain(database_url, tenant):
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, database_url, tenant, f"process-{n}", "600"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
    trail = AuditTrail(database_url, checkpoint_key=KEY)
    result = trail.verify(tenant)
    assert result.ok, result.message
    assert (result.records, result.checkpoints) == (1200, 12)
    subjects = {entry.record.subject for entry in trail.records(tenant_id=tenant, limit=1200)}
    assert subjects == {"process-0", "process-1"}
