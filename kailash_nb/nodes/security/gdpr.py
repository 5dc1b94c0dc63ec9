"""``GDPRComplianceNode``: find, anonymise and check personal data inside a workflow.

It runs on the PII engine the logger uses (:mod:`kailash_nb.pii`). ``data`` is a string,
a record (a dict, nested at will) or a list of records; ``action`` says what to do::

    builder.add_node("GDPRComplianceNode", "gdpr", {})
    # {"gdpr": {"action": "detect_pii", "data": customers}}
    # -> {"pii_found": True, "findings": [{"record": 0, "field": "email",
    #      "category": "email", "start": 0, "end": 16, "confidence": 0.95,
    #      "source": "text"}, ...], "fields": {"email": ["email"]}, "categories": {...}}

- ``detect_pii``: where the PII is (record, field path, category, span, confidence),
  from the text of every string and from field names that always hold one category
  (``name``, ``email``, ``date_of_birth``, ...; ``source: "field_name"``). Findings
  never repeat the personal data itself.
- ``anonymize_data``: the data with PII replaced, per field or category (``methods``,
  e.g. ``{"email": "generalize", "ip_address": "keep", "notes": "mask"}``; the rest by
  ``method``): ``mask`` (``<redacted:category>``), ``hash`` (a keyed HMAC-SHA256
  pseudonym: ``pii_key`` or ``KAILASH_NB_PII_KEY``, never a default key),
  ``generalize`` (an email's domain, an IP's network, a birth year, an age band...) or
  ``keep``. Every method is irreversible: nothing maps a result back to its value.
- ``check_compliance``: each record's lawful basis (``lawful_basis_field``, one of
  article 6's bases; consent needs ``consent_field``) and retention
  (``timestamp_field`` older than ``retention_days``): ``compliant`` and the violations.

- ``export_user_data``: everything the store (``database_url``; default
  ``KAILASH_NB_DATABASE_URL``, as the gateway's) holds about the data subject
  ``subject`` (a user id, as the gateway's tokens carry it), as JSON-safe data: the
  account without its secrets (no password hash, TOTP secret or backup-code hash), the
  token sessions and agent-UI sessions, the authentication events, the gateway runs
  the subject started (parameters, results, errors) and the audit records about
  them (also other subjects' events and records that name this one, without the other
  subject's id: ``by_subject: false``); ``counts`` per section. Read in one
  transaction (one snapshot).

- ``erase_user_data``: removes or pseudonymises ``subject``'s data in every table of
  the store, in one transaction: the account, second factor, sessions and runs are
  deleted (open token sessions revoked first); authentication events and audit records
  are kept with the subject replaced by a keyed pseudonym (``subject_`` and 16 hex
  digits of an HMAC-SHA256 under ``pii_key`` or ``KAILASH_NB_PII_KEY``), and each
  tenant's audit chain gets a tombstone, so it still verifies. Answers
  ``{"success": True, "subject_pseudonym", "erased": {section: count}, "tombstones",
  "nothing_to_erase"}``; a second erasure erases nothing and says so. A failure rolls
  everything back and raises (the node fails; it never reports a partial erasure).
  See :mod:`kailash_nb.nodes.security._subject_erasure` for each table.

Erasure and audit chains. The audit trail is hash-chained and its hash covered the raw
subject, so a record could not be pseudonymised without breaking the chain. Since schema
version 9 a record's hash covers a commitment to its subject, resource and detail: an
HMAC keyed by a random salt of the record's own (:mod:`kailash_nb.store.audit_erasure`).
Erasure rewrites those fields with the pseudonym, drops the salt (the commitment alone
tells nothing about the old values) and appends a tombstone record (action
``gdpr_erasure``, subject the pseudonym) listing each rewritten record with the digest of
its new content; verification accepts an erased record only as a later tombstone names
it. Audit records written before schema version 9 hash the raw identifier: an erasure
that would have to rewrite one is refused with ``AuditErasureError`` and changes nothing.
A signed trail needs its key in ``KAILASH_NB_AUDIT_KEY``, so the tombstones advance
its signed chain end; without it (or with another key) the erasure is refused.
"""

from __future__ import annotations

import datetime
import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.nodes.security._gdpr_rules import check_record, field_category, generalize
from kailash_nb.nodes.security._shared import auth_state, optional_text
from kailash_nb.nodes.security._subject_data import export_subject
from kailash_nb.nodes.security._subject_erasure import SubjectErasureError, erase_subject
from kailash_nb.pii import PIIDetector, PIIMatch, PIIRedactor, Pseudonymizer, marker
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError, close_matches
from kailash_nb.store.audit_records import AUDIT_KEY_ENV, checkpoint_key_bytes

__all__ = ["ANONYMIZATION_METHODS", "GDPR_ACTIONS", "GDPRComplianceNode", "SubjectErasureError"]

#: What the node does.
GDPR_ACTIONS = (
    "detect_pii",
    "anonymize_data",
    "check_compliance",
    "export_user_data",
    "erase_user_data",
)
#: The actions over one data subject in the store (``subject``, not ``data``).
_SUBJECT_ACTIONS = ("export_user_data", "erase_user_data")
#: How ``anonymize_data`` replaces a value.
ANONYMIZATION_METHODS = ("mask", "hash", "generalize", "keep")
_FIELD_HINT_CONFIDENCE = 0.7
_MAX_DEPTH = 64


def _parameter(name: str, kind: Any, description: str, default: Any = None) -> NodeParameter:
    return NodeParameter(
        name=name, type=kind, required=False, default=default, description=description
    )


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


@register_node()
class GDPRComplianceNode(Node):
    """Personal data in a workflow: ``detect_pii``, ``anonymize_data`` and
    ``check_compliance`` over a string, a record or a list of records;
    ``export_user_data`` and ``erase_user_data`` over one data subject in the store. See
    the module docstring for the outputs.

    Raises:
        NodeValidationError: an unknown action or method, data of the wrong shape, or no
            ``subject`` for a subject action.
        NodeConfigurationError: an empty ``database_url`` or a bad ``KAILASH_NB_AUDIT_KEY``.
        StoreConfigurationError: a bad database URL or a store of a newer schema.
        PIIKeyError: ``hash`` or ``erase_user_data`` asked for without ``pii_key`` or
            ``KAILASH_NB_PII_KEY``.
        SubjectErasureError, AuditErasureError, AuditUnavailableError: the erasure could
            not be done; nothing was changed.
    """

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The action, the data, and each action's options."""
        return {
            "action": _parameter("action", str, f"one of {', '.join(GDPR_ACTIONS)}", "detect_pii"),
            "data": _parameter("data", None, "a string, a record or a list of records"),
            "categories": _parameter("categories", list, "only these PII categories"),
            "min_confidence": _parameter("min_confidence", float, "drop findings below", 0.5),
            "method": _parameter("method", str, "anonymize_data's default method", "mask"),
            "methods": _parameter("methods", dict, "method per field name or category", {}),
            "pii_key": _parameter(
                "pii_key", str, "key of the hash method and erasure's pseudonyms (>= 32 bytes)"
            ),
            "retention_days": _parameter("retention_days", int, "longest a record is kept", 365),
            "timestamp_field": _parameter(
                "timestamp_field", str, "when a record was collected", "created_at"
            ),
            "lawful_basis_field": _parameter(
                "lawful_basis_field", str, "the record's lawful basis", "lawful_basis"
            ),
            "consent_field": _parameter(
                "consent_field", str, "when consent was given", "consent_given_at"
            ),
            "as_of": _parameter("as_of", str, "check retention as of (ISO 8601; default now)"),
            "subject": _parameter("subject", str, "the data subject to export or erase (user id)"),
            "database_url": _parameter(
                "database_url", str, "the store to export from or erase in (default: gateway's)"
            ),
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Do ``action`` on ``data``."""
        action = kwargs["action"]
        if action not in GDPR_ACTIONS:
            raise NodeValidationError(
                f"node {self.id!r}: unknown action {action!r}; use one of "
                f"{', '.join(GDPR_ACTIONS)}{close_matches(action, GDPR_ACTIONS)}"
            )
        if action in _SUBJECT_ACTIONS:
            return self._subject_action(kwargs)
        if kwargs["data"] is None:
            raise NodeValidationError(f"node {self.id!r}: {action} needs 'data'")
        detector = PIIDetector(
            categories=kwargs["categories"], min_confidence=kwargs["min_confidence"]
        )
        if action == "detect_pii":
            return self._detect(kwargs["data"], detector, kwargs["categories"])
        if action == "anonymize_data":
            return self._anonymize(kwargs, detector)
        return self._check(kwargs)

    # -- detect_pii ------------------------------------------------------------------

    def _detect(self, data: Any, detector: PIIDetector, wanted: list | None) -> dict[str, Any]:
        findings: list[dict[str, Any]] = []
        for index, record in enumerate(data if isinstance(data, list) else [data]):
            self._find(record, "", None, 0, detector, wanted, findings, index)
        fields: dict[str, list[str]] = {}
        for finding in findings:
            seen = fields.setdefault(finding["field"], [])
            if finding["category"] not in seen:
                seen.append(finding["category"])
        return {
            "pii_found": bool(findings),
            "findings": findings,
            "fields": fields,
            "categories": dict(Counter(finding["category"] for finding in findings)),
        }

    def _find(self, value, path, hint, depth, detector, wanted, findings, index) -> None:
        if isinstance(value, Mapping):
            if depth < _MAX_DEPTH:
                for key, item in value.items():
                    category = field_category(key) if isinstance(key, str) else None
                    self._find(
                        item, _join(path, key), category, depth + 1, detector, wanted,
                        findings, index,
                    )  # fmt: skip
            return
        if isinstance(value, (list, tuple)):
            if depth < _MAX_DEPTH:
                for position, item in enumerate(value):
                    self._find(
                        item, f"{path}[{position}]", hint, depth + 1, detector, wanted,
                        findings, index,
                    )  # fmt: skip
            return
        if value is None or isinstance(value, bool) or (isinstance(value, str) and not value):
            return
        text = value if isinstance(value, str) else str(value)
        matches = detector.detect(text) if isinstance(value, str) else []
        for match in matches:
            findings.append(_finding(index, path, match, "text"))
        hinted = hint is not None and (wanted is None or hint in wanted)
        if hinted and not any(match.category == hint for match in matches):
            whole = PIIMatch(hint, 0, len(text), text, _FIELD_HINT_CONFIDENCE)
            findings.append(_finding(index, path, whole, "field_name"))

    # -- anonymize_data --------------------------------------------------------------

    def _anonymize(self, kwargs: dict[str, Any], detector: PIIDetector) -> dict[str, Any]:
        methods: dict[str, str] = dict(kwargs["methods"] or {})
        default = kwargs["method"]
        for name, method in [("method", default), *methods.items()]:
            if method not in ANONYMIZATION_METHODS:
                raise NodeValidationError(
                    f"node {self.id!r}: unknown anonymization method {method!r} for {name!r}; "
                    f"use one of {', '.join(ANONYMIZATION_METHODS)}"
                )
        key = kwargs["pii_key"]
        needs_key = "hash" in (default, *methods.values())
        pseudonyms = (
            (Pseudonymizer(key) if key else Pseudonymizer.from_env()) if needs_key else None
        )
        replaced: Counter[str] = Counter()

        def transform(category: str, method: str, value: Any) -> Any:
            if method == "keep":
                return value
            replaced[category] += 1
            if method == "hash":
                assert pseudonyms is not None
                return pseudonyms.pseudonym(str(value), category)
            if method == "generalize":
                return generalize(category, value)
            return marker(category)

        def on_match(match: PIIMatch) -> str:
            method = methods.get(match.category, default)
            return str(transform(match.category, method, match.text))

        redactor = PIIRedactor(detector, replace=on_match, max_items=2**62)

        def walk(value: Any, key: str | None, hint: str | None, depth: int) -> Any:
            if isinstance(value, Mapping):
                if depth >= _MAX_DEPTH:
                    return marker("depth limit")
                return {
                    name: walk(
                        item,
                        name if isinstance(name, str) else None,
                        field_category(name) if isinstance(name, str) else None,
                        depth + 1,
                    )
                    for name, item in value.items()
                }
            if isinstance(value, (list, tuple)):
                if depth >= _MAX_DEPTH:
                    return marker("depth limit")
                return [walk(item, key, hint, depth + 1) for item in value]
            if value is None or isinstance(value, bool) or (isinstance(value, str) and not value):
                return value
            if key is not None and key in methods:
                return transform(hint or key, methods[key], value)
            if hint is not None and not (isinstance(value, str) and detector.detect(value)):
                return transform(hint, methods.get(hint, default), value)
            return redactor.redact(value)

        return {
            "data": walk(kwargs["data"], None, None, 0),
            "replaced": sum(replaced.values()),
            "categories": dict(replaced),
        }

    # -- export_user_data, erase_user_data ------------------------------------------

    def _subject_action(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        subject = kwargs["subject"]
        if not isinstance(subject, str) or not subject:
            raise NodeValidationError(
                f"node {self.id!r}: {kwargs['action']} needs 'subject', the data subject's "
                f"user id (a non-empty string), got {subject!r:.60}"
            )
        database_url = optional_text(self.id, "database_url", kwargs["database_url"])
        if kwargs["action"] == "export_user_data":
            return export_subject(auth_state(database_url).engine, subject)
        # Keys first: a missing key fails before anything is read or locked.
        key = kwargs["pii_key"]
        pseudonyms = Pseudonymizer(key) if key else Pseudonymizer.from_env()
        audit_key = os.environ.get(AUDIT_KEY_ENV)
        try:
            checkpoint_key_bytes(audit_key)
        except ValueError as error:
            raise NodeConfigurationError(f"node {self.id!r}: {AUDIT_KEY_ENV}: {error}") from None
        result = erase_subject(
            auth_state(database_url).engine,
            subject,
            pseudonyms,
            audit_key=audit_key.encode() if audit_key else None,
        )
        return {"success": True, **result}

    # -- check_compliance ------------------------------------------------------------

    def _check(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        data = kwargs["data"]
        records = data if isinstance(data, list) else [data]
        if not all(isinstance(record, Mapping) for record in records):
            raise NodeValidationError(
                f"node {self.id!r}: check_compliance needs a record or a list of records (dicts)"
            )
        if kwargs["as_of"]:
            try:
                now = datetime.datetime.fromisoformat(kwargs["as_of"].replace("Z", "+00:00"))
            except ValueError:
                raise NodeValidationError(
                    f"node {self.id!r}: as_of {kwargs['as_of']!r} is not an ISO 8601 date"
                ) from None
            if now.tzinfo is None:
                now = now.replace(tzinfo=datetime.timezone.utc)
        else:
            now = datetime.datetime.now(datetime.timezone.utc)
        violations = []
        for index, record in enumerate(records):
            for violation in check_record(
                record,
                retention_days=kwargs["retention_days"],
                now=now,
                timestamp_field=kwargs["timestamp_field"],
                lawful_basis_field=kwargs["lawful_basis_field"],
                consent_field=kwargs["consent_field"],
            ):
                violations.append({"record": index, **violation})
        return {"compliant": not violations, "violations": violations, "checked": len(records)}


def _finding(index: int, path: str, match: PIIMatch, source: str) -> dict[str, Any]:
    return {
        "record": index,
        "field": path,
        "category": match.category,
        "start": match.start,
        "end": match.end,
        "confidence": match.confidence,
        "source": source,
    }
