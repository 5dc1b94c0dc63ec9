"""Erasing a data subject from the audit trail without breaking its chain (GDPR article
17).

A record written at schema version 9 or later is hashed over a salted commitment to its
subject, resource and detail rather than over those fields (see
:mod:`kailash_nb.store.schema`, version 9). :func:`erase_identifiers` replaces each
identifier of the subject in them with a keyed pseudonym, drops the record's salt and
appends to each tenant's chain one erasure record (a tombstone, action
:data:`~kailash_nb.store.audit_trail.ERASURE_ACTION`, subject the pseudonym) naming every
rewritten record with the digest of its new content. The chain still verifies:
hashes and links are untouched, and :meth:`AuditTrail.verify` accepts an erased record
only as a later tombstone names it.

Records written before version 9 hash the raw fields: rewriting one would break the
chain, so an erasure that would have to is refused (:class:`AuditErasureError`) and
nothing is changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kailash_nb.store.audit_records import AuditRecord, AuditTrailError, erased_digest
from kailash_nb.store.audit_trail import ERASURE_ACTION, AuditTrail
from kailash_nb.store.schema import audit_records

__all__ = [
    "AuditErasure",
    "AuditErasureError",
    "erase_identifiers",
    "identifier_filter",
    "records_naming",
    "replace_identifiers",
]

# Where an identifier may start and end: not inside a longer word, address or number.
_BEFORE = r"(?<![\w.@+\-])"
_AFTER = r"(?![\w@\-])"


class AuditErasureError(AuditTrailError):
    """The subject cannot be erased from the audit trail without breaking its chain."""


@dataclass(frozen=True)
class AuditErasure:
    """What :func:`erase_identifiers` did: the records rewritten and the tombstone
    appended, per tenant (``{tenant: [seq, ...]}``, ``{tenant: seq}``)."""

    records: dict[str, list[int]]
    tombstones: dict[str, int]

    @property
    def count(self) -> int:
        """How many records were rewritten."""
        return sum(len(seqs) for seqs in self.records.values())


def identifier_filter(column: Any, identifiers: Sequence[str]) -> Any:
    """A SQL condition: ``column`` (text, or JSON cast to text) contains one of
    ``identifiers`` as written or as escaped in JSON text. A prefilter: the match is
    confirmed by :func:`replace_identifiers`."""
    needles = set()
    for identifier in identifiers:
        needles.add(identifier)
        needles.add(encode_basestring(identifier)[1:-1])
        needles.add(json.dumps(identifier)[1:-1])
    return sa.or_(*(column.contains(needle, autoescape=True) for needle in sorted(needles)))


def records_naming(identifiers: Sequence[str]) -> Any:
    """The audit records whose subject is one of ``identifiers`` or whose resource or
    detail names one (as a whole word), in chain order: what an erasure rewrites."""
    return (
        sa.select(audit_records)
        .where(
            sa.or_(
                audit_records.c.subject.in_(identifiers),
                identifier_filter(audit_records.c.resource, identifiers),
                identifier_filter(audit_records.c.detail, identifiers),
            )
        )
        .order_by(audit_records.c.tenant_id, audit_records.c.seq)
    )


def replace_identifiers(value: Any, identifiers: Sequence[str], pseudonym: str) -> Any:
    """``value`` (text, or JSON-like data: dict keys and strings in it too) with every
    whole occurrence of an identifier replaced by ``pseudonym``. An identifier inside a
    longer word, address or number (``al`` in ``alice``) is left alone."""
    pattern = re.compile(
        "|".join(
            f"{_BEFORE}{re.escape(identifier)}{_AFTER}"
            for identifier in sorted(set(identifiers), key=len, reverse=True)
        )
    )
    return _replace(value, pattern, pseudonym)


def _replace(value: Any, pattern: re.Pattern[str], pseudonym: str) -> Any:
    if isinstance(value, str):
        return pattern.sub(pseudonym, value)
    if isinstance(value, dict):
        return {
            _replace(key, pattern, pseudonym): _replace(item, pattern, pseudonym)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_replace(item, pattern, pseudonym) for item in value]
    return value


def erase_identifiers(
    trail: AuditTrail,
    connection: Connection,
    identifiers: Sequence[str],
    pseudonym: str,
) -> AuditErasure:
    """Replace ``identifiers`` with ``pseudonym`` in every audit record that holds one
    (as its subject, or in its resource or detail), and append each affected tenant's
    tombstone, in ``connection``'s transaction (from ``trail.write_transaction()``).

    Nothing matches once a subject is erased: a second erasure rewrites nothing and
    appends no tombstone.

    Raises:
        AuditErasureError: a matching record was written before schema version 9 (its
            hash covers the raw fields), or its chain end is signed with a key ``trail``
            does not have; the caller's transaction must roll back.
    """
    identifiers = [identifier for identifier in identifiers if identifier]
    if not identifiers:
        return AuditErasure({}, {})
    query = records_naming(identifiers)
    rewritten: dict[str, dict[int, dict[str, str]]] = {}
    legacy: list[tuple[str, int]] = []
    for row in connection.execute(query):
        subject = replace_identifiers(row.subject, identifiers, pseudonym)
        resource = replace_identifiers(row.resource, identifiers, pseudonym)
        detail = _replace_in_json(row.detail, identifiers, pseudonym)
        if (subject, resource, detail) == (row.subject, row.resource, row.detail):
            continue  # the prefilter's match was inside a longer word
        if row.content_commit is None:
            legacy.append((row.tenant_id, int(row.seq)))
            continue
        rewritten.setdefault(row.tenant_id, {})[int(row.seq)] = {
            "subject": subject,
            "resource": resource,
            "detail": detail,
        }
    if legacy:
        shown = ", ".join(f"{tenant}#{seq}" for tenant, seq in legacy[:5])
        raise AuditErasureError(
            f"{len(legacy)} audit record(s) about the subject ({shown}"
            f"{', ...' if len(legacy) > 5 else ''}) were written before schema version 9: "
            "their hash covers the raw identifier, so rewriting them would break the chain; "
            "nothing was erased"
        )
    for tenant_id in sorted(rewritten):
        # A tombstone appended without the key that signed the chain end would leave an
        # unsigned (or wrongly signed) end: verification with the key would then fail.
        if trail.head_signed_by_key(connection, tenant_id) is False:
            raise AuditErasureError(
                f"the audit chain of tenant {tenant_id!r} is signed and this erasure "
                f"{'has no checkpoint key' if not trail.signed else 'has another key'} "
                "(set KAILASH_NB_AUDIT_KEY to the trail's key); nothing was erased"
            )
    update = (
        audit_records.update()
        .where(
            (audit_records.c.tenant_id == sa.bindparam("b_tenant"))
            & (audit_records.c.seq == sa.bindparam("b_seq"))
        )
        .values(
            subject=sa.bindparam("b_subject"),
            resource=sa.bindparam("b_resource"),
            detail=sa.bindparam("b_detail"),
            content_salt=None,
        )
    )
    tombstones: list[AuditRecord] = []
    for tenant_id, records in sorted(rewritten.items()):
        connection.execute(
            update,
            [
                {
                    "b_tenant": tenant_id,
                    "b_seq": seq,
                    "b_subject": fields["subject"],
                    "b_resource": fields["resource"],
                    "b_detail": fields["detail"],
                }
                for seq, fields in records.items()
            ],
        )
        tombstones.append(
            AuditRecord(
                tenant_id,
                pseudonym,
                ERASURE_ACTION,
                f"subject:{pseudonym}",
                "allow",
                detail={
                    "pseudonym": pseudonym,
                    "erased": {
                        str(seq): erased_digest(
                            fields["subject"], fields["resource"], fields["detail"]
                        )
                        for seq, fields in records.items()
                    },
                },
            )
        )
    numbers = trail.append_in(connection, tombstones)
    return AuditErasure(
        records={tenant: sorted(records) for tenant, records in sorted(rewritten.items())},
        tombstones={record.tenant_id: seq for record, seq in zip(tombstones, numbers, strict=True)},
    )


def _replace_in_json(text: str, identifiers: Sequence[str], pseudonym: str) -> str:
    """A record's canonical JSON text with the identifiers replaced, canonical again."""
    try:
        data = json.loads(text)
    except ValueError:
        return replace_identifiers(text, identifiers, pseudonym)
    replaced = replace_identifiers(data, identifiers, pseudonym)
    if replaced == data:
        return text
    return json.dumps(replaced, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
