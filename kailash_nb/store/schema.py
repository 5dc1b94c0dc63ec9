"""The store's tables and the migrations that create and upgrade them.

The schema is versioned in the ``kailash_nb_schema`` table. Opening a store applies
the migrations it is missing, in one transaction, under a lock so two processes
never migrate at once; a database written by a newer kailash_nb is refused.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kailash_nb.store.urls import StoreConfigurationError

__all__ = [
    "NODE_EVENT_FIELDS",
    "SCHEMA_VERSION",
    "TRANSACTIONS_TABLE",
    "metadata",
    "migrate",
    "runs",
    "transaction_tables",
]

metadata = sa.MetaData()

schema_table = sa.Table(
    "kailash_nb_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

runs = sa.Table(
    "kailash_nb_runs",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    # Start time in microseconds: a time-ordered key for listing recent runs.
    sa.Column("run_seq", sa.BigInteger, nullable=False),
    sa.Column("workflow_name", sa.String(256), nullable=False),
    sa.Column("workflow_id", sa.String(64)),
    sa.Column("parameters", sa.JSON),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("duration", sa.Float),
    sa.Column("error", sa.Text),
    # The node events of the run, in execution order: a JSON list of
    # [node_id, state, started_us, finished_us, error, iteration] (times in integer
    # microseconds since the epoch).
    # One row per run (rather than one per node event) is what keeps recording
    # cheap enough to leave on: see benchmarks/bench_engine.py --history.
    sa.Column("node_events", sa.JSON),
    sa.Column("owner_host", sa.String(256)),
    sa.Column("owner_process", sa.String(64)),
    sa.Index("ix_kailash_nb_runs_seq", "run_seq"),
)

#: Fields of one entry of ``runs.node_events``.
NODE_EVENT_FIELDS = ("node_id", "state", "started_us", "finished_us", "error", "iteration")


def _create_v1(connection: Connection) -> None:
    metadata.create_all(connection, tables=[runs])


# Version 2: the security layer's state (kailash_nb.security). Shared by every process
# that opens the store, so a used refresh token or a revoked session holds everywhere.

_AUTO_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

auth_users = sa.Table(
    "kailash_nb_auth_users",
    metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("username", sa.String(256), nullable=False),
    # NFKC + casefold of the username: "Alice" and "alice" are one account.
    sa.Column("username_key", sa.String(256), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(256), nullable=False),
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("password_hash", sa.String(512), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# One row per refresh token that has been exchanged: inserting it is the atomic
# "first use wins" step of rotation; a second insert of the same jti is a reuse.
auth_used_refresh_tokens = sa.Table(
    "kailash_nb_auth_used_refresh_tokens",
    metadata,
    sa.Column("jti", sa.String(128), primary_key=True),
    sa.Column("family", sa.String(128), nullable=False),
    sa.Column("used_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_kailash_nb_auth_used_refresh_tokens_expires", "expires_at"),
)

# A revoked session (refresh-token family): every token of the family is refused.
auth_revoked_sessions = sa.Table(
    "kailash_nb_auth_revoked_sessions",
    metadata,
    sa.Column("family", sa.String(128), primary_key=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_kailash_nb_auth_revoked_sessions_expires", "expires_at"),
)

auth_events = sa.Table(
    "kailash_nb_auth_events",
    metadata,
    sa.Column("seq", _AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(256)),
    sa.Column("tenant_id", sa.String(256)),
    sa.Column("family", sa.String(128)),
    sa.Column("detail", sa.JSON),
    sa.Index("ix_kailash_nb_auth_events_event", "event", "seq"),
)


def _create_v2(connection: Connection) -> None:
    metadata.create_all(
        connection,
        tables=[auth_users, auth_used_refresh_tokens, auth_revoked_sessions, auth_events],
    )


# Version 3: agent-UI sessions (kailash_nb.middleware.agent_ui). A session belongs to
# one (tenant_id, subject); closed sessions keep their row with ``closed_at`` set.
sessions = sa.Table(
    "kailash_nb_sessions",
    metadata,
    sa.Column("session_id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(256), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("max_concurrent_workflows", sa.Integer),
    sa.Column("max_memory_mb", sa.Integer),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("closed_at", sa.Float),
    sa.Index("ix_kailash_nb_sessions_owner", "tenant_id", "subject", "created_at"),
)


def _create_v3(connection: Connection) -> None:
    metadata.create_all(connection, tables=[sessions])


# Version 4: login throttling and second factors (kailash_nb.security.lockout and
# kailash_nb.security.totp). Counters live in the store, so every worker process sees
# the same failures and a restart does not reset them.

# One row per throttled key: ``scope`` is "account", "ip" or "totp"; ``key`` is a
# SHA-256 hex digest of the username key or address (neither is stored raw).
auth_login_throttle = sa.Table(
    "kailash_nb_auth_login_throttle",
    metadata,
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("window_started_at", sa.Float, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("locked_until", sa.Float, nullable=False),
    # Locks so far in a row: each one doubles the next lock's length.
    sa.Column("lockouts", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_kailash_nb_auth_login_throttle_updated", "updated_at"),
)

# A user's TOTP enrollment. The secret is stored as given (base32): whoever can read
# this table can mint codes, so protect the database like the password hashes.
auth_totp = sa.Table(
    "kailash_nb_auth_totp",
    metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
    # The last 30 s time step whose code was accepted: a code is usable once.
    sa.Column("last_step", sa.BigInteger),
    sa.Column("enrolled_at", sa.Float, nullable=False),
)

# One-time backup codes, stored hashed; ``used_at`` is set on the single use.
auth_backup_codes = sa.Table(
    "kailash_nb_auth_backup_codes",
    metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("code_hash", sa.String(128), primary_key=True),
    sa.Column("used_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
)


def _create_v4(connection: Connection) -> None:
    metadata.create_all(connection, tables=[auth_login_throttle, auth_totp, auth_backup_codes])


# Version 5: who started each gateway run and what it returned (kailash_nb.middleware),
# written by the run recorder in its batches, so any worker process, and the gateway
# after a restart, answers GET /runs/{id}. The node timeline stays in kailash_nb_runs.
gateway_runs = sa.Table(
    "kailash_nb_gateway_runs",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(256), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("workflow_name", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # JSON text of the results; NULL when above the recorder's cap, which
    # ``results_size`` (bytes of the JSON text) then shows.
    sa.Column("results", sa.Text),
    sa.Column("results_size", sa.Integer),
    # {"message", "node_id"} of a failed or timed-out run.
    sa.Column("error", sa.JSON),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Index("ix_kailash_nb_gateway_runs_owner", "tenant_id", "subject", "created_at"),
)


def _create_v5(connection: Connection) -> None:
    metadata.create_all(connection, tables=[gateway_runs])


# Version 6: the access-control audit trail (kailash_nb.store.audit_trail). Records
# are hash-chained per tenant: ``seq`` counts from 1 without gaps, ``hash`` covers the
# record's canonical content and ``prev_hash``. The (tenant_id, seq) key is what makes
# a fork impossible: two writers can never both store a record number n.
audit_records = sa.Table(
    "kailash_nb_audit_records",
    metadata,
    sa.Column("tenant_id", sa.String(256), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    # Microseconds since the epoch: an integer, so the hash never depends on float text.
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),
    # Canonical JSON text (what the hash covers), never re-encoded by the database.
    sa.Column("rule_ids", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("cached", sa.Boolean, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # Added by version 9 (see there): NULL in records written before it.
    sa.Column("content_salt", sa.String(32)),
    sa.Column("content_commit", sa.String(64)),
    sa.Index("ix_kailash_nb_audit_records_at", "at_us"),
    sa.Index("ix_kailash_nb_audit_records_tenant_at", "tenant_id", "at_us"),
)

# One row per tenant: the end of its chain. Every append locks and advances it in the
# record's transaction, so writers of one tenant (threads or processes) take turns.
# ``mac`` is the HMAC of (tenant, seq, hash) when the trail has a checkpoint key.
audit_heads = sa.Table(
    "kailash_nb_audit_heads",
    metadata,
    sa.Column("tenant_id", sa.String(256), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("mac", sa.String(64)),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# HMAC-signed (tenant, seq, hash) every ``checkpoint_every`` records of a tenant:
# a chain that ends before its last checkpoint has lost its tail.
audit_checkpoints = sa.Table(
    "kailash_nb_audit_checkpoints",
    metadata,
    sa.Column("tenant_id", sa.String(256), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("mac", sa.String(64), nullable=False),
)


def _create_v6(connection: Connection) -> None:
    metadata.create_all(connection, tables=[audit_records, audit_heads, audit_checkpoints])


# Version 7: the distributed-transaction log (kailash_nb.transactions). One row per
# transaction and one per (transaction, participant index, phase) step; the log is the
# single source of truth recovery reads after a crash. JSON is stored as text so one
# damaged row is detected (and quarantined) when it is read, never by the driver while
# listing the others. A log may live in tables of its own name (``storage_config``'s
# ``table_name``): ``transaction_tables(name)`` builds those, created when opened.

#: The default transactions table; its steps live in ``<name>_steps``.
TRANSACTIONS_TABLE = "kailash_nb_transactions"


def _transaction_tables(target: sa.MetaData, name: str) -> tuple[sa.Table, sa.Table]:
    transactions = sa.Table(
        name,
        target,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("tenant_id", sa.String(256), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        # "two_phase" or "saga"
        sa.Column("pattern", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        # NULL until decided; "commit" or "abort" (two-phase commit only).
        sa.Column("decision", sa.String(8)),
        sa.Column("requirements", sa.Text, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        # JSON list of ParticipantSpec.to_dict(), in execution order.
        sa.Column("participants", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.String(256)),
        sa.Column("body_digest", sa.String(64), nullable=False),
        sa.Column("deadline", sa.Float),
        # Who drives the transaction now, and until when (see transactions.log).
        sa.Column("lease_owner", sa.String(256)),
        sa.Column("lease_until", sa.Float),
        # Bumped by every write: the compare-and-set token of leases and edits.
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        # Two processes creating with one key race on this index: one row wins. Keys
        # are optional, and NULLs never collide (SQLite and PostgreSQL alike).
        sa.Index(f"uq_{name}_key", "tenant_id", "principal", "idempotency_key", unique=True),
        sa.Index(f"ix_{name}_status", "status", "updated_at"),
    )
    steps = sa.Table(
        f"{name}_steps",
        target,
        sa.Column("transaction_id", sa.String(36), primary_key=True),
        sa.Column("step_index", sa.Integer, primary_key=True, autoincrement=False),
        # prepare | commit | abort | execute | compensate
        sa.Column("phase", sa.String(16), primary_key=True),
        sa.Column("participant_id", sa.String(128), nullable=False),
        # sent (the participant may have been told) | done | failed
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    return transactions, steps


transactions, transaction_steps = _transaction_tables(metadata, TRANSACTIONS_TABLE)


def transaction_tables(name: str = TRANSACTIONS_TABLE) -> tuple[sa.Table, sa.Table]:
    """The (transactions, steps) tables of the transaction log named ``name``.

    The default name gives the tables of schema version 7; another name gives tables
    of the same shape in their own metadata, for the caller to create.
    """
    if name == TRANSACTIONS_TABLE:
        return transactions, transaction_steps
    return _transaction_tables(sa.MetaData(), name)


def _create_v7(connection: Connection) -> None:
    metadata.create_all(connection, tables=[transactions, transaction_steps])


# Version 8: the sessions each subject holds (kailash_nb.security), so every session of a
# user can be revoked at once (``TokenService.revoke_subject``). One row per session
# (refresh-token family), written when the session starts; ``expires_at`` is its end.
auth_token_sessions = sa.Table(
    "kailash_nb_auth_token_sessions",
    metadata,
    sa.Column("family", sa.String(128), primary_key=True),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("tenant_id", sa.String(256), nullable=False),
    sa.Column("issued_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_kailash_nb_auth_token_sessions_subject", "subject", "expires_at"),
    sa.Index("ix_kailash_nb_auth_token_sessions_expires", "expires_at"),
)


def _create_v8(connection: Connection) -> None:
    metadata.create_all(connection, tables=[auth_token_sessions])


# Version 9: audit records whose personal data can be erased (GDPR article 17) while
# their chain still verifies. A record's hash (hash version 2) covers ``content_commit``,
# an HMAC of its subject, resource and detail keyed by the record's own random
# ``content_salt``, instead of those fields. Erasure replaces the identifiers in them with
# a keyed pseudonym, drops the salt (the commitment then tells nothing about the old
# content) and appends an erasure record (a tombstone) to the tenant's chain naming each
# rewritten record and the digest of its new content. Records written before version 9
# keep hash version 1 (NULL salt and commitment). The columns are part of
# ``audit_records`` above, so a store created at version 6 or later already has them
# when it is new; an older store gets them here.
_V9_AUDIT_COLUMNS = (("content_salt", "VARCHAR(32)"), ("content_commit", "VARCHAR(64)"))


def _create_v9(connection: Connection) -> None:
    present = {column["name"] for column in sa.inspect(connection).get_columns(audit_records.name)}
    for name, kind in _V9_AUDIT_COLUMNS:
        if name not in present:
            connection.exec_driver_sql(f"ALTER TABLE {audit_records.name} ADD COLUMN {name} {kind}")


#: Ordered migrations: each brings the schema from ``version - 1`` to ``version``.
MIGRATIONS: tuple[tuple[int, Callable[[Connection], None]], ...] = (
    (1, _create_v1),
    (2, _create_v2),
    (3, _create_v3),
    (4, _create_v4),
    (5, _create_v5),
    (6, _create_v6),
    (7, _create_v7),
    (8, _create_v8),
    (9, _create_v9),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def migrate(engine: Engine) -> int:
    """Bring the database at ``engine`` to ``SCHEMA_VERSION``; return the version.

    Raises:
        StoreConfigurationError: the database holds a newer schema than this code knows.
    """
    try:
        return _migrate_once(engine)
    except sa.exc.IntegrityError:
        # Another process created the schema row first (SQLite has no advisory
        # lock); its migration is complete, so check again.
        return _migrate_once(engine)


def _migrate_once(engine: Engine) -> int:
    with engine.begin() as connection:
        _lock(connection)
        schema_table.create(connection, checkfirst=True)
        current = connection.execute(sa.select(schema_table.c.version)).scalar()
        current = current or 0
        if current > SCHEMA_VERSION:
            raise StoreConfigurationError(
                f"the store's schema is version {current} but this kailash_nb knows versions up "
                f"to {SCHEMA_VERSION}; upgrade kailash_nb (migration {current} is missing)"
            )
        for version, apply in MIGRATIONS:
            if version > current:
                apply(connection)
        if current == 0:
            connection.execute(schema_table.insert().values(id=1, version=SCHEMA_VERSION))
        elif current < SCHEMA_VERSION:
            connection.execute(schema_table.update().values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Held until the transaction ends, so concurrent openers migrate one at a time.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(4242604242)")
    elif connection.dialect.name == "sqlite" and connection.engine.url.database not in (
        None,
        "",
        ":memory:",
    ):
        # SQLite's write lock, taken before the first read: processes opening a new file
        # at once migrate one at a time (the DDL is then in this one transaction, too).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
