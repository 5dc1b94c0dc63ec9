"""``AuditTrail``: a tamper-evident record of access decisions and runs, per tenant.

Each :class:`AuditRecord` is stored in the run store (SQLite by default, PostgreSQL by
URL) with a sequence number that counts from 1 without gaps within its tenant, and a
SHA-256 hash covering its canonical content and the previous record's hash: editing
a record or deleting one from the middle breaks the chain at that record. With a
``checkpoint_key``, the end of each tenant's chain and, every ``checkpoint_every``
records, a checkpoint of (tenant, sequence number, hash) are signed with HMAC-SHA256,
so a chain cut short (its tail deleted) is caught too::

    trail = AuditTrail("sqlite:///app.db", checkpoint_key=os.environb[b"KAILASH_NB_AUDIT_KEY"])
    trail.append(AuditRecord("acme", "alice", "execute", "workflow:payroll", "allow"))
    result = trail.verify("acme")
    assert result.ok, result.message

Writers of one tenant take turns on the tenant's head row, locked and advanced in the
record's own transaction (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE``
on SQLite), and the (tenant, sequence number) key refuses a second record number n:
threads and processes sharing the database never fork a chain. A store that cannot be
written raises :class:`AuditUnavailableError`; a record is never silently dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kailash_nb.store.audit_records import (
    AUDIT_DECISIONS,
    AUDIT_KEY_ENV,
    GENESIS_HASH,
    MIN_AUDIT_KEY_BYTES,
    AuditEntry,
    AuditRecord,
    AuditRecordError,
    AuditTrailError,
    AuditUnavailableError,
    Checkpoint,
    StoredRecord,
    VerifyResult,
    chain_hash,
    checkpoint_key_bytes,
    content_commitment,
    erased_digest,
    record_hash,
    record_hash_v2,
    stored_form,
)
from kailash_nb.store.database import SQLITE_BUSY_TIMEOUT_MS, get_engine
from kailash_nb.store.schema import audit_checkpoints, audit_heads, audit_records, migrate
from kailash_nb.store.urls import redact_url

__all__ = [
    "AUDIT_DECISIONS",
    "AUDIT_KEY_ENV",
    "ERASURE_ACTION",
    "GENESIS_HASH",
    "MIN_AUDIT_KEY_BYTES",
    "AuditEntry",
    "AuditRecord",
    "AuditRecordError",
    "AuditTrail",
    "AuditTrailError",
    "AuditUnavailableError",
    "Checkpoint",
    "VerifyResult",
    "record_hash",
]

_MAX_ATTEMPTS = 50
#: Bytes of each record's random ``content_salt``.
_SALT_BYTES = 16
#: The action of the record an erasure appends to each tenant's chain (its tombstone).
ERASURE_ACTION = "gdpr_erasure"


# Built once: statement construction is most of an append's Python cost.
_SELECT_HEAD = sa.select(audit_heads.c.seq, audit_heads.c.hash).where(
    audit_heads.c.tenant_id == sa.bindparam("b_tenant")
)
_SELECT_HEAD_FOR_UPDATE = _SELECT_HEAD.with_for_update()
_INSERT_HEAD = audit_heads.insert()
_INSERT_RECORD = audit_records.insert()
_INSERT_CHECKPOINT = audit_checkpoints.insert()
_ADVANCE_HEAD = (
    audit_heads.update()
    .where(
        (audit_heads.c.tenant_id == sa.bindparam("b_tenant"))
        & (audit_heads.c.seq == sa.bindparam("b_from"))
    )
    .values(
        seq=sa.bindparam("b_seq"),
        hash=sa.bindparam("b_hash"),
        mac=sa.bindparam("b_mac"),
        updated_at=sa.bindparam("b_now"),
    )
)

#: The columns of a record row, in the order ``AuditTrail._write`` builds its tuples.
_RECORD_COLUMNS = (
    "tenant_id", "seq", "at_us", "subject", "action", "resource", "decision", "rule_ids",
    "run_id", "cached", "detail", "prev_hash", "hash", "content_salt", "content_commit",
)  # fmt: skip
# The driver's own INSERT text per (dialect, driver), or None where it takes named
# parameters (then rows go through the Core statement).
_driver_inserts: dict[tuple[str, str], str | None] = {}


def _driver_insert(connection: Connection) -> str | None:
    dialect = connection.dialect
    key = (dialect.name, dialect.driver)
    if key not in _driver_inserts:
        compiled = _INSERT_RECORD.compile(dialect=dialect, column_keys=list(_RECORD_COLUMNS))
        positional = compiled.positional and tuple(compiled.positiontup or ()) == _RECORD_COLUMNS
        _driver_inserts[key] = compiled.string if positional else None
    return _driver_inserts[key]


def _insert_rows(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert record rows (tuples in ``_RECORD_COLUMNS`` order).

    Where the driver takes positional parameters (SQLite's), the tuples go to its
    ``executemany`` as they are: SQLAlchemy's per-row parameter processing would be
    about 40 % of storing a batch. Other drivers get the Core statement.
    """
    statement = _driver_insert(connection)
    if statement is None:
        named = [dict(zip(_RECORD_COLUMNS, row, strict=True)) for row in rows]
        connection.execute(_INSERT_RECORD, named)
    else:
        connection.exec_driver_sql(statement, rows)


# One lock per SQLite engine: this process's writers queue here instead of polling
# SQLite's write lock (which other processes still arbitrate with BEGIN IMMEDIATE).
_writer_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_writer_locks_guard = threading.Lock()


def _local_writer_lock(engine: Engine) -> threading.Lock | None:
    if engine.dialect.name != "sqlite":
        return None
    with _writer_locks_guard:
        lock = _writer_locks.get(engine)
        if lock is None:
            lock = _writer_locks[engine] = threading.Lock()
        return lock


def _is_memory(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


class _Contended(Exception):
    """Another writer is in the way; the append is tried again."""


class AuditTrail:
    """The audit records of every tenant in one store, hash-chained per tenant.

    Args:
        database_url: database URL; ``None`` uses ``KAILASH_NB_DATABASE_URL`` or the
            default SQLite file.
        checkpoint_key: secret (at least 32 bytes) that signs each tenant's chain end
            and its checkpoints. There is no default: without a key nothing is signed
            and :meth:`verify` catches edits and deletions but cannot prove that a
            chain's tail was not cut off.
        checkpoint_every: sign a checkpoint every this many records of a tenant.
        timeout: seconds an append may wait for other writers (a locked database)
            before it raises :class:`AuditUnavailableError`.
        engine: an engine to use instead of ``database_url`` (a tenant's database).

    Raises:
        StoreConfigurationError: a bad database URL.
        ValueError: a key shorter than 32 bytes, ``checkpoint_every`` below 1 or a
            ``timeout`` that is not positive.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        checkpoint_key: bytes | None = None,
        checkpoint_every: int = 1000,
        timeout: float = 10.0,
        engine: Engine | None = None,
    ) -> None:
        if (
            isinstance(checkpoint_every, bool)
            or not isinstance(checkpoint_every, int)
            or checkpoint_every < 1
        ):
            raise ValueError(f"checkpoint_every must be an int >= 1, got {checkpoint_every!r}")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not timeout > 0
            or not math.isfinite(timeout)
        ):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self._key = checkpoint_key_bytes(checkpoint_key)
        self.checkpoint_every = checkpoint_every
        self.engine = engine if engine is not None else get_engine(database_url)
        self._migrated = False
        self._migrate_lock = threading.Lock()

    @property
    def signed(self) -> bool:
        """Whether this trail signs (and verifies) chain ends and checkpoints."""
        return self._key is not None

    def __repr__(self) -> str:
        return f"AuditTrail({redact_url(self.engine.url)!r}, signed={self.signed})"

    # -- writing ---------------------------------------------------------------------

    def append(self, record: AuditRecord) -> int:
        """Store ``record`` at the end of its tenant's chain; return its sequence number.

        Raises:
            AuditRecordError: the record is invalid (nothing is stored).
            AuditUnavailableError: the store cannot be written; the record is not stored.
        """
        return self.append_many((record,))[0]

    def append_many(self, records: Iterable[AuditRecord]) -> list[int]:
        """Store ``records`` in order, in one transaction; return their sequence numbers.

        All or none are stored.

        Raises:
            AuditRecordError: a record is invalid (nothing is stored).
            AuditUnavailableError: the store cannot be written; nothing is stored.
        """
        now = time.time()
        rows = [stored_form(record, now) for record in records]
        if not rows:
            return []
        self._ensure_schema()
        deadline = time.monotonic() + self.timeout
        last_error: Exception | None = None
        for attempt in range(_MAX_ATTEMPTS):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                return self._append_once(rows, remaining)
            except (sa.exc.IntegrityError, _Contended) as exc:
                # Another writer created the tenant's head or took the number first.
                last_error = exc
            except sa.exc.OperationalError as exc:
                if not _is_contention(exc):
                    raise self._unavailable("write", exc) from exc
                last_error = exc
            except sa.exc.DBAPIError as exc:
                raise self._unavailable("write", exc) from exc
            time.sleep(
                min(0.001 * (2 ** min(attempt, 6)), 0.05, max(deadline - time.monotonic(), 0))
            )
        raise self._unavailable(
            f"write still blocked by other writers after {self.timeout:g} s", last_error
        ) from last_error

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A write transaction on the trail's database, for work that must commit or roll
        back together with records appended by :meth:`append_in` (an erasure).

        It holds what an append holds (SQLite's write lock, this process's writer lock),
        commits when the block ends and rolls back when it raises.

        Raises:
            AuditUnavailableError: the store cannot be opened or locked in ``timeout``.
        """
        self._ensure_schema()
        with contextlib.ExitStack() as stack:
            # Only taking the locks is "unavailable"; errors of the caller's block pass.
            try:
                connection = stack.enter_context(self._writing(self.timeout))
            except _Contended:
                raise self._unavailable(
                    f"write still blocked after {self.timeout:g} s", None
                ) from None
            except sa.exc.DBAPIError as exc:
                raise self._unavailable("write", exc) from exc
            yield connection

    def append_in(self, connection: Connection, records: Iterable[AuditRecord]) -> list[int]:
        """Append ``records`` in the caller's :meth:`write_transaction` ``connection``;
        return their sequence numbers. They are stored when that transaction commits.

        Raises:
            AuditRecordError: a record is invalid.
        """
        now = time.time()
        rows = [stored_form(record, now) for record in records]
        return self._write(connection, rows) if rows else []

    def head_signed_by_key(self, connection: Connection, tenant_id: str) -> bool | None:
        """Whether ``tenant_id``'s chain end, read in ``connection``, carries this trail's
        signature: ``None`` when it is unsigned (or the tenant has no chain), ``False``
        when it is signed and this trail has no key or another one."""
        head = connection.execute(
            sa.select(audit_heads.c.seq, audit_heads.c.hash, audit_heads.c.mac).where(
                audit_heads.c.tenant_id == tenant_id
            )
        ).first()
        if head is None or head.mac is None:
            return None
        if self._key is None:
            return False
        return _same(head.mac, self._mac("head", tenant_id, int(head.seq), head.hash))

    def _append_once(self, rows: Sequence[StoredRecord], wait: float) -> list[int]:
        with self._writing(wait) as connection:
            return self._write(connection, rows)

    @contextlib.contextmanager
    def _writing(self, wait: float) -> Iterator[Connection]:
        """A connection in a write transaction, holding this process's writer lock and the
        database's write lock, both taken within ``wait`` seconds; committed when the
        block ends, rolled back when it raises.

        Raises:
            _Contended: this process's writer lock stayed taken.
            sqlalchemy.exc.DBAPIError: the database's write lock could not be taken.
        """
        started = time.monotonic()
        lock = _local_writer_lock(self.engine)
        if lock is not None and not lock.acquire(timeout=wait):
            raise _Contended("another thread of this process holds the write lock")
        try:
            with self.engine.connect() as connection:
                wait_ms = max(int((wait - (time.monotonic() - started)) * 1000), 1)
                shortened = _shortens_busy_timeout(connection, wait_ms)
                try:
                    _begin_write(connection, wait_ms, shortened)
                    yield connection
                    connection.commit()
                except BaseException:
                    connection.rollback()
                    raise
                finally:
                    if shortened:
                        _end_write(connection)
        finally:
            if lock is not None:
                lock.release()

    def _write(self, connection: Connection, rows: Sequence[StoredRecord]) -> list[int]:
        # Heads are locked in tenant order, so two batches never wait on each other.
        heads = {
            tenant_id: self._lock_head(connection, tenant_id)
            for tenant_id in sorted({row.tenant_id for row in rows})
        }
        locked = dict(heads)
        numbers: list[int] = []
        records: list[tuple[Any, ...]] = []
        checkpoints: list[dict[str, Any]] = []
        now = time.time()
        every = self.checkpoint_every if self._key is not None else 0
        salts = os.urandom(_SALT_BYTES * len(rows)).hex()
        for index, row in enumerate(rows):
            (tenant_id, at_us, subject, action, resource, decision, rule_ids, run_id, cached,
             detail) = row  # fmt: skip
            seq, prev_hash = heads[tenant_id]
            seq += 1
            salt = salts[index * 2 * _SALT_BYTES : (index + 1) * 2 * _SALT_BYTES]
            commit = content_commitment(salt, subject, resource, detail)
            digest = record_hash_v2(
                tenant_id, seq, at_us, commit, action, decision, rule_ids, run_id, cached,
                prev_hash,
            )  # fmt: skip
            heads[tenant_id] = (seq, digest)
            numbers.append(seq)
            records.append(
                (tenant_id, seq, at_us, subject, action, resource, decision, rule_ids, run_id,
                 cached, detail, prev_hash, digest, salt, commit)
            )  # fmt: skip
            if every and seq % every == 0:
                checkpoints.append(
                    {
                        "tenant_id": tenant_id,
                        "seq": seq,
                        "hash": digest,
                        "at": now,
                        "mac": self._mac("checkpoint", tenant_id, seq, digest),
                    }
                )
        _insert_rows(connection, records)
        if checkpoints:
            connection.execute(_INSERT_CHECKPOINT, checkpoints)
        for tenant_id, (seq, digest) in heads.items():
            moved = connection.execute(
                _ADVANCE_HEAD,
                {
                    "b_tenant": tenant_id,
                    "b_from": locked[tenant_id][0],
                    "b_seq": seq,
                    "b_hash": digest,
                    "b_mac": self._mac("head", tenant_id, seq, digest) if self._key else None,
                    "b_now": now,
                },
            )
            if moved.rowcount != 1:
                # Never expected under the head lock; the chain end moved: start again.
                raise _Contended(f"the chain end of tenant {tenant_id!r} moved")
        return numbers

    def _lock_head(self, connection: Connection, tenant_id: str) -> tuple[int, str]:
        query = _SELECT_HEAD if connection.dialect.name == "sqlite" else _SELECT_HEAD_FOR_UPDATE
        head = connection.execute(query, {"b_tenant": tenant_id}).first()
        if head is not None:
            return int(head.seq), head.hash
        # The tenant's first record: a concurrent creator makes this insert fail with an
        # IntegrityError, and the append is retried against its head.
        connection.execute(
            _INSERT_HEAD,
            {
                "tenant_id": tenant_id,
                "seq": 0,
                "hash": GENESIS_HASH,
                "mac": None,
                "updated_at": time.time(),
            },
        )
        return 0, GENESIS_HASH

    def _mac(self, kind: str, tenant_id: str, seq: int, digest: str) -> str:
        assert self._key is not None
        message = json.dumps([kind, tenant_id, seq, digest], separators=(",", ":"))
        return hmac.new(self._key, message.encode("utf-8"), hashlib.sha256).hexdigest()

    # -- reading ---------------------------------------------------------------------

    def records(
        self,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
        action: str | None = None,
        decision: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Stored records matching every given filter, the most recent first.

        ``since`` and ``until`` bound the record time (seconds since the epoch,
        ``since <= at < until``).

        Raises:
            ValueError: ``limit`` below 1 or an unknown ``decision``.
            AuditUnavailableError: the store cannot be read.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        if decision is not None and decision not in AUDIT_DECISIONS:
            raise ValueError(f"decision must be one of {AUDIT_DECISIONS}, got {decision!r}")
        query = sa.select(audit_records)
        for column, value in (
            (audit_records.c.tenant_id, tenant_id),
            (audit_records.c.subject, subject),
            (audit_records.c.action, action),
            (audit_records.c.decision, decision),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(audit_records.c.at_us >= round(since * 1_000_000))
        if until is not None:
            query = query.where(audit_records.c.at_us < round(until * 1_000_000))
        query = query.order_by(
            audit_records.c.at_us.desc(),
            audit_records.c.tenant_id.desc(),
            audit_records.c.seq.desc(),
        ).limit(limit)
        rows = self._read(lambda connection: connection.execute(query).all())
        return [_entry(row) for row in rows]

    def tenants(self) -> list[str]:
        """Every tenant with a chain, sorted.

        Raises:
            AuditUnavailableError: the store cannot be read.
        """
        tenants = self._read(
            lambda connection: (
                connection.execute(
                    sa.union(
                        sa.select(audit_heads.c.tenant_id),
                        sa.select(audit_records.c.tenant_id),
                        sa.select(audit_checkpoints.c.tenant_id),
                    )
                )
                .scalars()
                .all()
            )
        )
        return sorted(tenants)

    # -- verifying -------------------------------------------------------------------

    def checkpoint(self, tenant_id: str) -> Checkpoint:
        """Where ``tenant_id``'s chain ends now (``seq`` 0 before its first record),
        signed with the trail's key: keep it outside the database and pass it to
        :meth:`verify` later to catch a chain cut short, rolled back or wiped.

        Raises:
            AuditUnavailableError: the store cannot be read.
        """
        head = self._read(
            lambda connection: connection.execute(_SELECT_HEAD, {"b_tenant": tenant_id}).first()
        )
        seq, digest = (int(head.seq), head.hash) if head is not None else (0, GENESIS_HASH)
        mac = self._mac("head", tenant_id, seq, digest) if self._key is not None else None
        return Checkpoint(tenant_id, seq, digest, mac)

    def verify(
        self, tenant_id: str | None = None, *, checkpoints: Iterable[Checkpoint] = ()
    ) -> VerifyResult:
        """Check the chain of ``tenant_id`` (every tenant when ``None``).

        A chain is good when its sequence numbers run 1, 2, ... without a gap, each
        record's hash matches its content and its predecessor's hash, it ends where its
        head says, and it reaches every checkpoint with the checkpoint's hash: those in
        the database and the ``checkpoints`` kept elsewhere (from :meth:`checkpoint`).
        With a key, the head's and checkpoints' signatures must match too (they cannot
        be forged to hide a lost tail). The first problem found is reported.

        Raises:
            AuditUnavailableError: the store cannot be read.
        """
        self._ensure_schema()
        kept: dict[str, list[Checkpoint]] = {}
        for point in checkpoints:
            if not isinstance(point, Checkpoint):
                raise TypeError(f"checkpoints must be Checkpoint objects, got {point!r:.60}")
            kept.setdefault(point.tenant_id, []).append(point)
        tenants = [tenant_id] if tenant_id is not None else sorted({*self.tenants(), *kept})
        total_records = total_checkpoints = 0
        for tenant in tenants:
            result = self._read(
                lambda connection, tenant=tenant: self._verify(
                    connection, tenant, kept.get(tenant, [])
                )
            )
            if not result.ok:
                return replace(
                    result,
                    tenants=len(tenants),
                    records=total_records + result.records,
                    checkpoints=total_checkpoints + result.checkpoints,
                    signed=self.signed,
                )
            total_records += result.records
            total_checkpoints += result.checkpoints
        return VerifyResult(
            ok=True,
            tenants=len(tenants),
            records=total_records,
            checkpoints=total_checkpoints,
            signed=self.signed,
        )

    def _verify(
        self, connection: Connection, tenant_id: str, kept: Sequence[Checkpoint]
    ) -> VerifyResult:
        # One snapshot: records appended while verifying are not half-seen.
        head = connection.execute(
            sa.select(audit_heads).where(audit_heads.c.tenant_id == tenant_id)
        ).first()
        checkpoints = {
            int(row.seq): row
            for row in connection.execute(
                sa.select(audit_checkpoints).where(audit_checkpoints.c.tenant_id == tenant_id)
            )
        }
        external: dict[int, Checkpoint] = {}
        for point in sorted(kept, key=lambda point: point.seq):
            if point.seq > 0:
                external.setdefault(point.seq, point)

        def bad(seq: int, reason: str, records: int) -> VerifyResult:
            return VerifyResult(
                ok=False,
                tenant_id=tenant_id,
                first_bad_seq=seq,
                reason=reason,
                records=records,
                checkpoints=len(checkpoints) + len(external),
            )

        # Checkpoints say how far the chain reached; a forged one is not believed.
        if self._key is not None:
            for seq in sorted(checkpoints):
                point = checkpoints[seq]
                if not _same(point.mac, self._mac("checkpoint", tenant_id, seq, point.hash)):
                    return bad(seq, f"checkpoint {seq}'s signature does not match (forged)", 0)
            for seq, kept_point in sorted(external.items()):
                if not _same(kept_point.mac, self._mac("head", tenant_id, seq, kept_point.hash)):
                    return bad(
                        seq, f"the kept checkpoint at {seq} has no valid signature (forged)", 0
                    )

        query = (
            sa.select(audit_records)
            .where(audit_records.c.tenant_id == tenant_id)
            .order_by(audit_records.c.seq)
            .execution_options(yield_per=2000)
        )
        expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
        # Erased records (version 2, salt dropped) -> the digest of their content now,
        # until a later tombstone of the chain names that digest.
        erased: dict[int, str] = {}
        for row in connection.execute(query):
            seq = int(row.seq)
            if seq != expected_seq:
                return bad(
                    expected_seq,
                    f"record missing (deleted): the chain jumps from {expected_seq - 1} to {seq}",
                    count,
                )
            if row.prev_hash != prev_hash:
                return bad(
                    seq,
                    f"its link to record {seq - 1} does not match that record's hash "
                    f"(record {seq - 1} was replaced or this link edited)",
                    count,
                )
            if chain_hash(row, seq, prev_hash) != row.hash:
                return bad(seq, "its content does not match its hash (edited)", count)
            if row.content_commit is not None:
                if row.content_salt is None:
                    erased[seq] = erased_digest(row.subject, row.resource, row.detail)
                elif (
                    content_commitment(row.content_salt, row.subject, row.resource, row.detail)
                    != row.content_commit
                ):
                    return bad(seq, "its content does not match its hash (edited)", count)
                elif row.action == ERASURE_ACTION and erased:
                    _settle_erased(erased, row.detail)
            point = checkpoints.get(seq)
            if point is not None and point.hash != row.hash:
                return bad(seq, f"its hash differs from checkpoint {seq}'s (rewritten)", count)
            kept_point = external.get(seq)
            if kept_point is not None and kept_point.hash != row.hash:
                return bad(
                    seq, f"its hash differs from the kept checkpoint at {seq} (rewritten)", count
                )
            prev_hash, expected_seq, count = row.hash, seq + 1, count + 1
        if erased:
            first = min(erased)
            return bad(
                first,
                "its content was erased but no later erasure record (tombstone) names it "
                "as it is now (edited after erasure)",
                count,
            )
        last = expected_seq - 1
        head_signed = (
            head is not None
            and self._key is not None
            and _same(head.mac, self._mac("head", tenant_id, int(head.seq), head.hash))
        )
        reaches = [(seq, f"checkpoint {seq}") for seq in checkpoints]
        reaches += [(seq, f"kept checkpoint at {seq}") for seq in external]
        if head is not None and (self._key is None or head_signed):
            reaches.append((int(head.seq), "chain end"))
        reach, source = max(reaches, default=(0, ""))
        if reach > last:
            return bad(
                last + 1,
                f"records {last + 1}..{reach} missing (truncated): the {source} reaches {reach}",
                count,
            )
        if head is None:
            if count:
                return bad(last, "the tenant's chain end is missing", count)
        elif self._key is not None and not head_signed:
            why = (
                "is not signed (written without a checkpoint key, or its signature removed)"
                if head.mac is None
                else "signature does not match (rewritten)"
            )
            return bad(int(head.seq), f"the chain end {why}", count)
        elif int(head.seq) != last or head.hash != prev_hash:
            return bad(last, "the chain end does not match the last record", count)
        return VerifyResult(ok=True, records=count, checkpoints=len(checkpoints) + len(external))

    # -- plumbing --------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        if self._migrated:
            return
        with self._migrate_lock:
            if self._migrated:
                return
            try:
                migrate(self.engine)
            except sa.exc.DBAPIError as exc:
                raise self._unavailable("open", exc) from exc
            self._migrated = True

    def _read(self, work: Any) -> Any:
        self._ensure_schema()
        # An in-memory database is one connection shared by every thread: reads queue
        # behind writes there rather than end a transaction another thread began.
        lock = _local_writer_lock(self.engine) if _is_memory(self.engine) else None
        if lock is not None and not lock.acquire(timeout=self.timeout):
            raise self._unavailable(f"read still blocked after {self.timeout:g} s", None)
        try:
            with self.engine.connect() as connection:
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(
                        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"
                    )
                elif lock is None and connection.dialect.name == "sqlite":
                    # A read transaction: one consistent snapshot for the whole read.
                    connection.exec_driver_sql("BEGIN")
                try:
                    return work(connection)
                finally:
                    connection.rollback()
        except sa.exc.DBAPIError as exc:
            raise self._unavailable("read", exc) from exc
        finally:
            if lock is not None:
                lock.release()

    def _unavailable(self, what: str, exc: BaseException | None) -> AuditUnavailableError:
        cause = f": {type(exc).__name__}: {_first_line(exc)}" if exc is not None else ""
        return AuditUnavailableError(
            f"audit store {redact_url(self.engine.url)} unavailable ({what}){cause}"
        )


def _settle_erased(erased: dict[int, str], tombstone_detail: str) -> None:
    """Drop from ``erased`` the records a tombstone names with their content's digest (a
    record erased again later is settled by the later tombstone)."""
    try:
        named = json.loads(tombstone_detail).get("erased", {})
        pairs = [(int(seq), digest) for seq, digest in named.items()]
    except (ValueError, TypeError, AttributeError):
        return
    for seq, digest in pairs:
        if erased.get(seq) == digest:
            del erased[seq]


def _shortens_busy_timeout(connection: Connection, wait_ms: int) -> bool:
    """Whether the append's wait is shorter than the store's usual SQLite busy timeout
    (then ``_begin_write`` sets it for the append and ``_end_write`` sets it back).

    A longer wait keeps the usual timeout: a lock held longer fails the attempt as
    contention, and ``append_many`` tries again until its deadline.
    """
    return (
        connection.dialect.name == "sqlite"
        and not _is_memory(connection.engine)
        and wait_ms < SQLITE_BUSY_TIMEOUT_MS
    )


def _begin_write(connection: Connection, wait_ms: int, shortened: bool) -> None:
    """Start the append's transaction, waiting at most ``wait_ms`` for locks.

    SQLite: take the database's write lock first (``BEGIN IMMEDIATE``), so the head
    read next is the latest. PostgreSQL locks the head row itself (``FOR UPDATE``).
    """
    if connection.dialect.name == "sqlite":
        if _is_memory(connection.engine):
            return  # one shared connection: this process's writer lock is the lock
        if shortened:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms}")
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {wait_ms}")


def _end_write(connection: Connection) -> None:
    """Give a pooled SQLite connection back with the store's usual busy timeout."""
    try:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    except sa.exc.DBAPIError:
        connection.invalidate()


def _is_contention(exc: sa.exc.OperationalError) -> bool:
    text = str(exc.orig).lower()
    return any(
        marker in text
        for marker in (
            "database is locked",
            "deadlock",
            "could not serialize",
            "busy",
            "lock timeout",
        )
    )


def _same(mac: str | None, expected: str) -> bool:
    return mac is not None and hmac.compare_digest(mac, expected)


def _first_line(exc: BaseException | None) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:200] if text else ""


def _entry(row: Any) -> AuditEntry:
    try:
        rule_ids = tuple(json.loads(row.rule_ids))
        detail = json.loads(row.detail)
    except ValueError:
        rule_ids, detail = (), {"unreadable": True}
    return AuditEntry(
        seq=int(row.seq),
        record=AuditRecord(
            tenant_id=row.tenant_id,
            subject=row.subject,
            action=row.action,
            resource=row.resource,
            decision=row.decision,
            rule_ids=rule_ids,
            run_id=row.run_id,
            cached=bool(row.cached),
            at=row.at_us / 1_000_000,
            detail=detail,
        ),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
