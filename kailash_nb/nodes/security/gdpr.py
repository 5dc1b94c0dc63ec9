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

Exporting and erasing one data subject's data (``export_user_data``,
``erase_user_data``) are not implemented yet.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping
from typing import Any

from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.nodes.security._gdpr_rules import check_record, field_category, generalize
from kailash_nb.pii import PIIDetector, PIIMatch, PIIRedactor, Pseudonymizer, marker
from kailash_nb.sdk_exceptions import NodeValidationError, close_matches

__all__ = ["ANONYMIZATION_METHODS", "GDPR_ACTIONS", "GDPRComplianceNode"]

#: What the node does.
GDPR_ACTIONS = ("detect_pii", "anonymize_data", "check_compliance")
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
    ``check_compliance`` over a string, a record or a list of records. See the module
    docstring for the outputs.

    Raises:
        NodeValidationError: an unknown action or method, or data of the wrong shape.
        PIIKeyError: ``hash`` asked for without ``pii_key`` or ``KAILASH_NB_PII_KEY``.
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
            "pii_key": _parameter("pii_key", str, "key of the hash method (>= 32 bytes)"),
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
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Do ``action`` on ``data``."""
        action = kwargs["action"]
        if action not in GDPR_ACTIONS:
            raise NodeValidationError(
                f"node {self.id!r}: unknown action {action!r}; use one of "
                f"{', '.join(GDPR_ACTIONS)}{close_matches(action, GDPR_ACTIONS)}"
            )
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
