"""The audit trail's records: what one record holds, how it is checked, and the hash that
chains it to its predecessor.

:class:`AuditRecord` is what callers append; :func:`stored_form` validates it and turns
it into the :class:`StoredRecord` the store writes (time in integer microseconds, the
rule ids and extras as canonical JSON text), and :func:`record_hash` is the SHA-256 over
that content and the previous record's hash. :class:`AuditEntry` is a record read back
with its place in the chain; :class:`VerifyResult` what a verification found.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from kailash_nb.sdk_exceptions import KailashException

__all__ = [
    "AUDIT_DECISIONS",
    "AUDIT_KEY_ENV",
    "GENESIS_HASH",
    "MIN_AUDIT_KEY_BYTES",
    "AuditEntry",
    "AuditRecord",
    "AuditRecordError",
    "AuditTrailError",
    "AuditUnavailableError",
    "Checkpoint",
    "StoredRecord",
    "VerifyResult",
    "chain_hash",
    "checkpoint_key_bytes",
    "content_commitment",
    "erased_digest",
    "record_hash",
    "record_hash_v2",
    "stored_form",
]

#: The decisions a record may carry.
AUDIT_DECISIONS = ("allow", "deny")
#: Environment variable the ``kailash-nb audit`` commands read the checkpoint key from.
AUDIT_KEY_ENV = "KAILASH_NB_AUDIT_KEY"
#: Shortest checkpoint key accepted (the same bar as an HS256 token secret).
MIN_AUDIT_KEY_BYTES = 32
#: The ``prev_hash`` of a tenant's first record.
GENESIS_HASH = "0" * 64

_HASH_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LIMITS = {"tenant_id": 256, "subject": 256, "action": 64, "run_id": 64}


class AuditTrailError(KailashException):
    """Base class of the audit trail's errors."""


class AuditRecordError(AuditTrailError, ValueError):
    """A record cannot be stored as given (a missing field, an unknown decision,
    extras that are not JSON)."""


class AuditUnavailableError(AuditTrailError):
    """The audit store cannot be written or read (down, locked, misconfigured): the
    caller must fail closed rather than act without its audit record."""


# ``AuditRecord``'s default extras: a new empty dict for each record.
_NO_DETAIL: Any = object()


@dataclass(frozen=True, init=False)
class AuditRecord:
    """One access decision or run: who (``tenant_id``, ``subject``) did what
    (``action``) to what (``resource``), and whether it was allowed.

    ``rule_ids`` are the policy rules that decided; ``cached`` marks a decision
    answered from the decision cache; ``at`` (seconds since the epoch, kept to the
    microsecond) is filled in on append when ``None``; ``detail`` holds JSON-safe extras.
    """

    tenant_id: str
    subject: str
    action: str
    resource: str
    decision: str
    rule_ids: tuple[str, ...] = ()
    run_id: str | None = None
    cached: bool = False
    at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        tenant_id: str,
        subject: str,
        action: str,
        resource: str,
        decision: str,
        rule_ids: tuple[str, ...] = (),
        run_id: str | None = None,
        cached: bool = False,
        at: float | None = None,
        detail: dict[str, Any] = _NO_DETAIL,
    ) -> None:
        # A runtime makes one record per decision: the fields are set in one step rather
        # than one frozen-dataclass ``object.__setattr__`` each (a third of the cost).
        object.__setattr__(
            self,
            "__dict__",
            {
                "tenant_id": tenant_id,
                "subject": subject,
                "action": action,
                "resource": resource,
                "decision": decision,
                "rule_ids": rule_ids,
                "run_id": run_id,
                "cached": cached,
                "at": at,
                "detail": {} if detail is _NO_DETAIL else detail,
            },
        )


@dataclass(frozen=True)
class AuditEntry:
    """A stored record with its place in its tenant's chain."""

    seq: int
    record: AuditRecord
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """The entry as JSON-safe plain data (what ``kailash-nb audit show --json`` prints)."""
        record = self.record
        return {
            "tenant_id": record.tenant_id,
            "seq": self.seq,
            "at": record.at,
            "subject": record.subject,
            "action": record.action,
            "resource": record.resource,
            "decision": record.decision,
            "rule_ids": list(record.rule_ids),
            "run_id": record.run_id,
            "cached": record.cached,
            "detail": record.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Checkpoint:
    """Where a tenant's chain ended at one moment: kept outside the database (a log, a
    ticket, another system), it lets :meth:`AuditTrail.verify` catch a chain that was
    later cut short, rolled back or wiped with its in-database checkpoints.

    ``mac`` is the HMAC of (tenant, seq, hash) under the trail's key (``None`` when the
    trail has none). :meth:`to_json` and :meth:`from_json` give it as one line of JSON.
    """

    tenant_id: str
    seq: int
    hash: str
    mac: str | None = None

    def to_json(self) -> str:
        """The checkpoint as one line of JSON."""
        return json.dumps(
            {"tenant_id": self.tenant_id, "seq": self.seq, "hash": self.hash, "mac": self.mac},
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """The checkpoint written by :meth:`to_json`.

        Raises:
            ValueError: ``text`` is not such a checkpoint (says what is wrong).
        """
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError(f"a checkpoint is one line of JSON, got {text[:60]!r}") from None
        if not isinstance(data, dict) or set(data) != {"tenant_id", "seq", "hash", "mac"}:
            raise ValueError("a checkpoint is a JSON object with tenant_id, seq, hash and mac")
        tenant_id, seq, digest, mac = data["tenant_id"], data["seq"], data["hash"], data["mac"]
        if not isinstance(tenant_id, str) or not tenant_id:
            raise ValueError("checkpoint tenant_id must be a non-empty string")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError(f"checkpoint seq must be an int >= 0, got {seq!r:.40}")
        for name, value in (("hash", digest), ("mac", mac)):
            if value is None and name == "mac":
                continue
            if not isinstance(value, str) or not _HEX64.fullmatch(value):
                raise ValueError(f"checkpoint {name} must be 64 hex digits, got {value!r:.70}")
        return cls(tenant_id, seq, digest, mac)


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :meth:`AuditTrail.verify`.

    ``ok`` is false when a chain is broken: ``tenant_id`` and ``first_bad_seq`` name
    the first bad record (for a lost tail, the first missing sequence number) and
    ``reason`` says what is wrong with it. ``records`` and ``checkpoints`` count what
    was checked; ``signed`` says whether signatures were checked (a key was given).
    """

    ok: bool
    tenant_id: str | None = None
    first_bad_seq: int | None = None
    reason: str | None = None
    tenants: int = 0
    records: int = 0
    checkpoints: int = 0
    signed: bool = False

    def __bool__(self) -> bool:
        return self.ok

    @property
    def message(self) -> str:
        """One line for people: what was checked, or the first bad record and why."""
        if self.ok:
            signed = "signatures checked" if self.signed else "signatures NOT checked (no key)"
            return (
                f"audit trail ok: {self.records} records in {self.tenants} tenant(s), "
                f"{self.checkpoints} checkpoint(s), {signed}"
            )
        return (
            f"audit trail broken: tenant {self.tenant_id!r} seq {self.first_bad_seq}: {self.reason}"
        )


# Built once: ``json.dumps`` with options builds an encoder per call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_HASHED = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _canonical_json(value: Any, what: str) -> str:
    try:
        return _CANONICAL.encode(value)
    except (TypeError, ValueError) as exc:
        raise AuditRecordError(f"audit record {what} is not JSON-safe: {exc}") from None


def record_hash(
    tenant_id: str,
    seq: int,
    at_us: int,
    subject: str,
    action: str,
    resource: str,
    decision: str,
    rule_ids_json: str,
    run_id: str | None,
    cached: bool,
    detail_json: str,
    prev_hash: str,
) -> str:
    """The SHA-256 (hex) of one record's canonical content and its predecessor's hash.

    Every field is length-delimited (a JSON array), so no two different records share
    the hashed text.
    """
    if (
        seq.__class__ is int
        and at_us.__class__ is int
        and (run_id is None or run_id.__class__ is str)
        and tenant_id.__class__ is str
        and subject.__class__ is str
        and action.__class__ is str
        and resource.__class__ is str
        and decision.__class__ is str
        and rule_ids_json.__class__ is str
        and detail_json.__class__ is str
        and prev_hash.__class__ is str
    ):
        # The same text as the JSON array below, written out for the field types a
        # record has (str, int, None, bool): a third of the encoder's cost.
        content = (
            f"[{_HASH_VERSION},{encode_basestring(tenant_id)},{seq},{at_us},"
            f"{encode_basestring(subject)},{encode_basestring(action)},"
            f"{encode_basestring(resource)},{encode_basestring(decision)},"
            f"{encode_basestring(rule_ids_json)},"
            f"{'null' if run_id is None else encode_basestring(run_id)},"
            f"{'true' if cached else 'false'},{encode_basestring(detail_json)},"
            f"{encode_basestring(prev_hash)}]"
        )
    else:
        content = _HASHED.encode(
            [
                _HASH_VERSION,
                tenant_id,
                seq,
                at_us,
                subject,
                action,
                resource,
                decision,
                rule_ids_json,
                run_id,
                bool(cached),
                detail_json,
                prev_hash,
            ]
        )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _check_text(record: AuditRecord, name: str, optional: bool = False) -> None:
    value = getattr(record, name)
    if optional and value is None:
        return
    if not isinstance(value, str) or not value:
        raise AuditRecordError(f"audit record {name} must be a non-empty str, got {value!r:.80}")
    limit = _LIMITS.get(name)
    if limit is not None and len(value) > limit:
        raise AuditRecordError(f"audit record {name} is {len(value)} characters; at most {limit}")


class StoredRecord(NamedTuple):
    """A validated record as stored: the time in integer microseconds, ``rule_ids``
    and ``detail`` as canonical JSON text (what the hash covers)."""

    tenant_id: str
    at_us: int
    subject: str
    action: str
    resource: str
    decision: str
    rule_ids: str
    run_id: str | None
    cached: bool
    detail: str


# The JSON text of rule id tuples already seen (a policy has few), bounded.
_RULE_IDS_TEXT: dict[tuple[str, ...], str] = {}
_RULE_IDS_MEMO = 4096


def stored_form(record: AuditRecord, now: float) -> StoredRecord:
    """``record`` validated and in its stored form (``at`` defaulting to ``now``).

    Raises:
        AuditRecordError: a field is missing, too long or of the wrong type, an unknown
            decision, or extras that are not JSON.
    """
    stored = _plain_form(record, now) if record.__class__ is AuditRecord else None
    if stored is not None:
        return stored
    if not isinstance(record, AuditRecord):
        raise AuditRecordError(f"expected an AuditRecord, got {type(record).__name__}")
    for name in ("tenant_id", "subject", "action", "resource", "decision"):
        _check_text(record, name)
    _check_text(record, "run_id", optional=True)
    if record.decision not in AUDIT_DECISIONS:
        raise AuditRecordError(
            f"audit record decision must be one of {AUDIT_DECISIONS}, got {record.decision!r:.40}"
        )
    rule_ids = record.rule_ids
    if isinstance(rule_ids, str) or not all(isinstance(rule, str) for rule in rule_ids):
        raise AuditRecordError(
            f"audit record rule_ids must be a tuple of str, got {rule_ids!r:.80}"
        )
    if not isinstance(record.detail, dict):
        raise AuditRecordError(
            f"audit record detail must be a dict, got {type(record.detail).__name__}"
        )
    at = now if record.at is None else record.at
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise AuditRecordError(f"audit record at must be a finite number, got {at!r:.40}")
    return StoredRecord(
        tenant_id=record.tenant_id,
        at_us=round(at * 1_000_000),
        subject=record.subject,
        action=record.action,
        resource=record.resource,
        decision=record.decision,
        rule_ids=_canonical_json(list(rule_ids), "rule_ids"),
        run_id=record.run_id,
        cached=bool(record.cached),
        detail=_canonical_json(record.detail, "detail"),
    )


def _plain_form(record: AuditRecord, now: float) -> StoredRecord | None:
    """The stored form of a record of the usual shape (plain str fields within their
    limits, a tuple of rule ids, a float time, a dict of extras), else ``None`` (then
    :func:`stored_form` checks field by field and says what is wrong)."""
    tenant_id, subject, action = record.tenant_id, record.subject, record.action
    resource, decision, run_id = record.resource, record.decision, record.run_id
    at, detail, rule_ids = record.at, record.detail, record.rule_ids
    if at is None:
        at = now
    if not (
        tenant_id.__class__ is str
        and 0 < len(tenant_id) <= 256
        and subject.__class__ is str
        and 0 < len(subject) <= 256
        and action.__class__ is str
        and 0 < len(action) <= 64
        and resource.__class__ is str
        and resource
        and (decision == "allow" or decision == "deny")
        and decision.__class__ is str
        and (run_id is None or (run_id.__class__ is str and 0 < len(run_id) <= 64))
        and detail.__class__ is dict
        and at.__class__ is float
        and math.isfinite(at)
        and rule_ids.__class__ is tuple
    ):
        return None
    try:
        rule_text = _RULE_IDS_TEXT.get(rule_ids)
    except TypeError:  # an unhashable item: not rule ids
        return None
    if rule_text is None:
        if not all(rule.__class__ is str for rule in rule_ids):
            return None
        rule_text = _canonical_json(list(rule_ids), "rule_ids")
        if len(_RULE_IDS_TEXT) >= _RULE_IDS_MEMO:
            _RULE_IDS_TEXT.clear()
        _RULE_IDS_TEXT[rule_ids] = rule_text
    return StoredRecord(
        tenant_id,
        round(at * 1_000_000),
        subject,
        action,
        resource,
        decision,
        rule_text,
        run_id,
        bool(record.cached),
        _canonical_json(detail, "detail") if detail else "{}",
    )


def content_commitment(salt: str, subject: str, resource: str, detail_json: str) -> str:
    """The HMAC-SHA256 (hex) of a record's subject, resource and detail keyed by its own
    random ``salt`` (hex): what hash version 2 covers in their place. Without the salt
    it says nothing about them, even of a low-entropy subject."""
    content = (
        f"[{encode_basestring(subject)},{encode_basestring(resource)},"
        f"{encode_basestring(detail_json)}]"
    )
    return hmac.digest(bytes.fromhex(salt), content.encode("utf-8"), "sha256").hex()


def erased_digest(subject: str, resource: str, detail_json: str) -> str:
    """The SHA-256 (hex) of an erased record's subject, resource and detail: what its
    tombstone names, so the erased content cannot be edited afterwards unnoticed."""
    content = _HASHED.encode([subject, resource, detail_json])
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def record_hash_v2(
    tenant_id: str,
    seq: int,
    at_us: int,
    content_commit: str,
    action: str,
    decision: str,
    rule_ids_json: str,
    run_id: str | None,
    cached: bool,
    prev_hash: str,
) -> str:
    """The SHA-256 (hex) of a version 2 record: :func:`record_hash`'s fields with the
    subject, resource and detail replaced by their :func:`content_commitment`."""
    if (
        seq.__class__ is int
        and at_us.__class__ is int
        and (run_id is None or run_id.__class__ is str)
        and tenant_id.__class__ is str
        and content_commit.__class__ is str
        and action.__class__ is str
        and decision.__class__ is str
        and rule_ids_json.__class__ is str
        and prev_hash.__class__ is str
    ):
        # The JSON array below, written out as record_hash does (the append's hot path).
        content = (
            f"[2,{encode_basestring(tenant_id)},{seq},{at_us},"
            f"{encode_basestring(content_commit)},{encode_basestring(action)},"
            f"{encode_basestring(decision)},{encode_basestring(rule_ids_json)},"
            f"{'null' if run_id is None else encode_basestring(run_id)},"
            f"{'true' if cached else 'false'},{encode_basestring(prev_hash)}]"
        )
        return hashlib.sha256(content.encode("utf-8")).hexdigest()
    content = _HASHED.encode(
        [
            2,
            tenant_id,
            seq,
            at_us,
            content_commit,
            action,
            decision,
            rule_ids_json,
            run_id,
            bool(cached),
            prev_hash,
        ]
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def chain_hash(row: Any, seq: int, prev_hash: str) -> str:
    """The hash of a :class:`StoredRecord` or a stored row at ``seq``: hash version 2
    (:func:`record_hash_v2`) when it has a ``content_commit``, else :func:`record_hash`."""
    commit = getattr(row, "content_commit", None)
    if commit is not None:
        return record_hash_v2(
            row.tenant_id,
            seq,
            row.at_us,
            commit,
            row.action,
            row.decision,
            row.rule_ids,
            row.run_id,
            bool(row.cached),
            prev_hash,
        )
    return record_hash(
        row.tenant_id,
        seq,
        row.at_us,
        row.subject,
        row.action,
        row.resource,
        row.decision,
        row.rule_ids,
        row.run_id,
        bool(row.cached),
        row.detail,
        prev_hash,
    )


def checkpoint_key_bytes(key: bytes | None) -> bytes | None:
    """``key`` checked as a checkpoint key (``None`` stays ``None``).

    Raises:
        TypeError: not bytes (or str).
        ValueError: shorter than :data:`MIN_AUDIT_KEY_BYTES`.
    """
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"checkpoint_key must be bytes, got {type(key).__name__}")
    if len(key) < MIN_AUDIT_KEY_BYTES:
        raise ValueError(
            f"checkpoint_key must be at least {MIN_AUDIT_KEY_BYTES} bytes, got {len(key)}"
        )
    return bytes(key)
