"""``GDPRComplianceNode``: the seed's Data Governance line, detect_pii, anonymize_data
(mask, keyed hash, generalize, keep; per field or category), check_compliance, and the
corpus figures."""

from __future__ import annotations

import json

import pytest
from _pii_corpus import generate_corpus, score_spans

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.nodes import NodeRegistry
from kailash_nb.nodes.security import GDPRComplianceNode
from kailash_nb.pii import PII_KEY_ENV, PIIKeyError, Pseudonymizer
from kailash_nb.sdk_exceptions import NodeValidationError

KEY = "k" * 32

CUSTOMERS = [
    {
        "name": "Jane Doe",
        "email": "jane@example.com",
        "ip": "203.0.113.9",
        "age": 34,
        "dob": "1990-04-01",
        "notes": "call +44 20 7946 0958 about ORD-2024-000123",
        "order_id": "ORD-2024-000123",
        "lawful_basis": "contract",
        "created_at": "2025-11-01T00:00:00Z",
    },
    {
        "contact": {"emails": ["bob@example.org"], "card": "4111 1111 1111 1111"},
        "lawful_basis": "consent",
        "consent_given_at": "2025-01-01",
        "created_at": "2019-01-01T00:00:00Z",
    },
]


def test_seed_data_governance_gdpr_line_runs_in_a_workflow():
    workflow = WorkflowBuilder()
    # GDPR compliance
    workflow.add_node("GDPRComplianceNode", "gdpr_compliance", {})
    results, _ = LocalRuntime().execute(
        workflow.build(), parameters={"gdpr_compliance": {"data": CUSTOMERS}}
    )
    assert results["gdpr_compliance"]["pii_found"] is True
    assert NodeRegistry.get("GDPRComplianceNode") is GDPRComplianceNode


def test_detect_pii_reports_fields_categories_and_confidence_without_the_values():
    result = GDPRComplianceNode().execute(action="detect_pii", data=CUSTOMERS)
    assert result["fields"] == {
        "name": ["person_name"],
        "email": ["email"],
        "ip": ["ip_address"],
        "age": ["age"],
        "dob": ["date_of_birth"],
        "notes": ["phone"],
        "contact.emails[0]": ["email"],
        "contact.card": ["credit_card"],
    }
    by_field = {(f["record"], f["field"]): f for f in result["findings"]}
    assert by_field[(0, "name")]["source"] == "field_name"
    assert by_field[(0, "email")]["confidence"] > by_field[(0, "name")]["confidence"]
    assert by_field[(0, "notes")]["start"] == 5
    shown = json.dumps(result)
    assert "jane@example.com" not in shown and "4111" not in shown


def test_detect_pii_only_the_categories_asked_for():
    result = GDPRComplianceNode(categories=["email"]).execute(data=CUSTOMERS)
    assert result["categories"] == {"email": 2}


def test_anonymize_masks_by_default_and_leaves_lookalikes():
    result = GDPRComplianceNode().execute(action="anonymize_data", data=CUSTOMERS)
    first, second = result["data"]
    assert first["name"] == "<redacted:person_name>"
    assert first["notes"] == "call <redacted:phone> about ORD-2024-000123"
    assert first["order_id"] == "ORD-2024-000123"
    assert second["contact"] == {
        "emails": ["<redacted:email>"],
        "card": "<redacted:credit_card>",
    }
    assert result["replaced"] == 8
    assert CUSTOMERS[0]["name"] == "Jane Doe"  # the input is not changed


def test_anonymize_per_field_and_category():
    result = GDPRComplianceNode().execute(
        action="anonymize_data",
        data=CUSTOMERS[0],
        methods={
            "email": "generalize",
            "ip_address": "generalize",
            "age": "generalize",
            "dob": "generalize",
            "phone": "keep",
            "name": "hash",
        },
        pii_key=KEY,
    )["data"]
    assert result["email"] == "*@example.com"
    assert result["ip"] == "203.0.113.0/24"
    assert result["age"] == "30-39"
    assert result["dob"] == "1990"
    assert result["notes"] == CUSTOMERS[0]["notes"]
    assert result["name"] == Pseudonymizer(KEY).pseudonym("Jane Doe", "person_name")


def test_hash_needs_a_managed_key(monkeypatch):
    monkeypatch.delenv(PII_KEY_ENV, raising=False)
    node = GDPRComplianceNode(action="anonymize_data", method="hash")
    with pytest.raises(PIIKeyError, match=PII_KEY_ENV):
        node.execute(data=CUSTOMERS)
    monkeypatch.setenv(PII_KEY_ENV, KEY)
    hashed = node.execute(data=CUSTOMERS)["data"][0]
    assert hashed["email"] == Pseudonymizer(KEY).pseudonym("jane@example.com", "email")


def test_check_compliance_retention_and_lawful_basis():
    records = [
        *CUSTOMERS,
        {"created_at": "2025-12-01"},
        {"lawful_basis": "because", "created_at": "yesterday"},
        {"lawful_basis": "consent", "created_at": 1_764_000_000},
    ]
    result = GDPRComplianceNode().execute(
        action="check_compliance", data=records, as_of="2026-01-01T00:00:00Z"
    )
    assert result["compliant"] is False and result["checked"] == 5
    assert [(v["record"], v["rule"]) for v in result["violations"]] == [
        (1, "retention_exceeded"),
        (2, "lawful_basis_missing"),
        (3, "lawful_basis_unknown"),
        (3, "timestamp_unreadable"),
        (4, "consent_not_recorded"),
    ]
    assert GDPRComplianceNode().execute(
        action="check_compliance", data=CUSTOMERS[0], as_of="2026-01-01"
    )["compliant"]


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({"action": "erase", "data": []}, "unknown action 'erase'"),
        ({"action": "detect_pii"}, "needs 'data'"),
        ({"action": "anonymize_data", "data": [], "method": "shuffle"}, "method 'shuffle'"),
        ({"action": "check_compliance", "data": ["x"]}, "list of records"),
        ({"action": "check_compliance", "data": [], "as_of": "soon"}, "as_of"),
    ],
)
def test_bad_inputs_are_refused(inputs, match):
    with pytest.raises(NodeValidationError, match=match):
        GDPRComplianceNode().execute(**inputs)


def test_gdpr_node_corpus_recall_and_precision():
    corpus = generate_corpus()
    found = GDPRComplianceNode().execute(data=[{"note": r.text} for r in corpus])["findings"]
    spans: dict[int, list] = {}
    for finding in found:
        spans.setdefault(finding["record"], []).append(
            (finding["category"], finding["start"], finding["end"])
        )
    index = iter(range(len(corpus)))
    score = score_spans(corpus, lambda _text: spans.get(next(index), []))
    assert score.recall >= 0.99 and score.precision >= 0.95, score
