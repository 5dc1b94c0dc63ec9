"""Audit records: the stored form and the hash stay what existing trails were written
with, whichever path (the usual shape or field-by-field checks) computes them."""

from __future__ import annotations

import hashlib
import json

import pytest

from kailash_nb.store.audit_records import (
    AuditRecord,
    AuditRecordError,
    chain_hash,
    content_commitment,
    record_hash,
    record_hash_v2,
    stored_form,
)

AWKWARD = ["plain", 'qu"ote', "back\\slash", "tab\tnew\nline\x01", "é ünïcödé ☃ 𝄞", "</script>", ""]


def reference_hash(*fields) -> str:
    """The record hash as the first trails were written: SHA-256 of a JSON array."""
    tenant, seq, at_us, subject, action, resource, decision, rules, run, cached, detail, prev = (
        fields
    )
    content = json.dumps(
        [1, tenant, seq, at_us, subject, action, resource, decision, rules, run, bool(cached),
         detail, prev],
        separators=(",", ":"),
        ensure_ascii=False,
    )  # fmt: skip
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


class Text(str):
    """A str subclass (as a database driver might return)."""


@pytest.mark.parametrize("text", AWKWARD)
@pytest.mark.parametrize("run_id", [None, "run-1"])
@pytest.mark.parametrize("cached", [True, False, 0, 1])
def test_record_hash_is_the_json_array_hash_for_any_text(text, run_id, cached):
    fields = (
        f"acme{text}", 7, 1_733_480_000_123_456, text or "alice", "execute",
        f"node:wf/{text}", "allow", json.dumps([text]), run_id, cached,
        json.dumps({"k": text}, ensure_ascii=False), "a" * 64,
    )  # fmt: skip
    assert record_hash(*fields) == reference_hash(*fields)
    as_subclass = tuple(Text(field) if isinstance(field, str) else field for field in fields)
    assert record_hash(*as_subclass) == reference_hash(*fields)


@pytest.mark.parametrize("text", AWKWARD)
@pytest.mark.parametrize("run_id", [None, "run-1"])
@pytest.mark.parametrize("cached", [True, False, 0, 1])
def test_record_hash_v2_is_the_json_array_hash_for_any_text(text, run_id, cached):
    commit = content_commitment("ab" * 16, text or "alice", f"node:wf/{text}", "{}")
    fields = (
        f"acme{text}", 7, 1_733_480_000_123_456, commit, "execute", "allow",
        json.dumps([text]), run_id, cached, "a" * 64,
    )  # fmt: skip
    reference = hashlib.sha256(
        json.dumps(
            [2, *fields[:8], bool(cached), fields[9]], separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    ).hexdigest()
    assert record_hash_v2(*fields) == reference
    as_subclass = tuple(Text(field) if isinstance(field, str) else field for field in fields)
    assert record_hash_v2(*as_subclass) == reference


def test_the_content_commitment_depends_on_salt_subject_resource_and_detail():
    base = content_commitment("00" * 16, "alice", "workflow:w", "{}")
    assert len(base) == 64
    assert base == content_commitment("00" * 16, "alice", "workflow:w", "{}")
    assert base != content_commitment("01" * 16, "alice", "workflow:w", "{}")
    assert base != content_commitment("00" * 16, "alicf", "workflow:w", "{}")
    assert base != content_commitment("00" * 16, "alice", "workflow:x", "{}")
    assert base != content_commitment("00" * 16, "alice", "workflow:w", '{"a":1}')
    # Fields are delimited: moving text between them changes the commitment.
    assert content_commitment("00" * 16, "a", "bc", "{}") != content_commitment(
        "00" * 16, "ab", "c", "{}"
    )


def test_the_stored_form_is_the_same_whichever_path_computes_it():
    usual = AuditRecord(
        "acme", "alice", "execute", "node:wf/n1", "deny", ("r2", "r1"), "run-1", True, 1.5,
        {"reason": 'denied by "r1"', "n": [1, 2]},
    )  # fmt: skip
    checked_field_by_field = [
        AuditRecord(**{**usual.__dict__, "rule_ids": ["r2", "r1"]}),
        AuditRecord(**{**usual.__dict__, "subject": Text("alice")}),
    ]
    expected = stored_form(usual, now=9.0)
    assert expected.rule_ids == '["r2","r1"]'
    assert expected.detail == '{"n":[1,2],"reason":"denied by \\"r1\\""}'
    assert expected.at_us == 1_500_000
    for record in checked_field_by_field:
        assert stored_form(record, now=9.0) == expected
    assert stored_form(AuditRecord("acme", "alice", "run", "workflow:wf", "allow"), 2.0) == (
        "acme", 2_000_000, "alice", "run", "workflow:wf", "allow", "[]", None, False, "{}"
    )  # fmt: skip
    assert chain_hash(expected, 3, "0" * 64) == reference_hash(
        "acme", 3, 1_500_000, "alice", "execute", "node:wf/n1", "deny", expected.rule_ids,
        "run-1", True, expected.detail, "0" * 64,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"detail": None}, "detail must be a dict"),
        ({"rule_ids": ("r1", ["r2"])}, "rule_ids must be a tuple of str"),
        ({"rule_ids": "r1"}, "rule_ids must be a tuple of str"),
        ({"at": float("inf")}, "at must be a finite number"),
        ({"at": True}, "at must be a finite number"),
        ({"action": "x" * 65}, "action is 65 characters"),
        ({"run_id": ""}, "run_id must be a non-empty str"),
        ({"decision": "permit"}, "decision must be one of"),
    ],
)
def test_a_record_of_an_unusual_shape_is_still_checked_field_by_field(changes, problem):
    record = AuditRecord(**{**AuditRecord("acme", "alice", "run", "workflow:wf", "allow").__dict__,
                            **changes})  # fmt: skip
    with pytest.raises(AuditRecordError, match=problem):
        stored_form(record, now=1.0)


def test_each_record_has_its_own_default_detail_and_stays_frozen():
    first = AuditRecord("acme", "alice", "run", "workflow:wf", "allow")
    second = AuditRecord("acme", "alice", "run", "workflow:wf", "allow")
    assert first.detail == {} and first.detail is not second.detail
    assert first == second
    with pytest.raises(AttributeError):
        first.subject = "mallory"  # type: ignore[misc]
