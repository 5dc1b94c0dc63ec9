"""The recognizers: one regular expression per shape of PII, with the check that tells
a real value from a look-alike (a Luhn digit, a mod-97 remainder, an address parser).

A :class:`Recognizer` finds candidates with ``pattern``; the value is the named group
``value`` (or the whole match); ``check`` returns the confidence of one candidate, or
``None`` to drop it. ``DEFAULT_RECOGNIZERS`` is the set the engine uses; pass your own
list to :class:`~kailash_nb.pii.PIIDetector` to add or remove one.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from kailash_nb.pii._checksums import (
    de_tax_id_valid,
    iban_valid,
    luhn_valid,
    nl_bsn_valid,
    payment_card_prefix,
)

__all__ = ["CATEGORIES", "DEFAULT_RECOGNIZERS", "Recognizer"]

#: Every category the default recognizers report.
CATEGORIES = (
    "email",
    "phone",
    "credit_card",
    "iban",
    "us_ssn",
    "uk_nino",
    "nl_bsn",
    "de_tax_id",
    "ip_address",
    "jwt",
    "api_key",
    "person_name",
)


@dataclass(frozen=True)
class Recognizer:
    """One kind of PII: where it may be (``pattern``) and how sure a candidate is
    (``confidence``, or ``check(value)`` returning a confidence or ``None`` to drop it)."""

    category: str
    pattern: re.Pattern[str]
    confidence: float
    check: Callable[[str], float | None] | None = None

    def score(self, value: str) -> float | None:
        """The confidence that ``value`` (a candidate this recognizer found) is PII."""
        if self.check is None:
            return self.confidence
        found = self.check(value)
        return None if found is None else min(found, self.confidence)


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _card(value: str) -> float | None:
    digits = _digits(value)
    if 13 <= len(digits) <= 19 and payment_card_prefix(digits) and luhn_valid(digits):
        return 1.0
    return None


def _phone(value: str) -> float | None:
    digits = _digits(value)
    if not 8 <= len(digits) <= 15 or len(set(digits)) < 3:
        return None
    return 1.0


def _ipv4(value: str) -> float | None:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        return None
    # 0.0.0.0 and version-like 1.0.0.0 are not anyone's address.
    return None if address.is_unspecified else 1.0


def _ipv6(value: str) -> float | None:
    if value.count(":") < 2 or not any(char not in ":0" for char in value):
        return None
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return None
    return 1.0


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _high_entropy_token(value: str) -> float | None:
    # Hex digests and UUIDs are single-case: a key mixes upper, lower and digits.
    if not (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    ):
        return None
    return 1.0 if _entropy(value) >= 4.0 else None


def _check(function: Callable[[str], bool]) -> Callable[[str], float | None]:
    return lambda value: 1.0 if function(_digits(value)) else None


# Before and after a value: not inside a longer word, number or hyphenated id.
_B = r"(?<![\w@.+-])"
_E = r"(?![\w@-]|\.\w)"
_NAME_WORD = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
# Words after "Dear" that are not a name.
_NOT_NAMES = (
    r"(?:Mrs?|Ms|Miss|Dr|Prof|Sir|Madam|Customer|Client|Colleague|Colleagues|Team|All"
    r"|Friend|Friends|User|Member|Valued|Hiring|Support|Partner|Applicant)"
)

DEFAULT_RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(
        "email",
        re.compile(
            r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
        ),
        0.95,
    ),
    Recognizer(
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
        0.99,
    ),
    Recognizer(
        "api_key",
        re.compile(
            r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
            r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}"
            r"|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20}|hf_[A-Za-z0-9]{30,}"
            r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,})"
        ),
        0.95,
    ),
    Recognizer(
        "api_key",
        re.compile(r"(?<![A-Za-z0-9+/_-])(?P<value>[A-Za-z0-9_-]{32,128})(?![A-Za-z0-9+/_-])"),
        0.7,
        _high_entropy_token,
    ),
    Recognizer(
        "credit_card",
        re.compile(
            _B + r"(?:\d{13,19}|\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{4,5})" + _E
        ),
        0.95,
        _card,
    ),
    Recognizer(
        "iban",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        0.95,
        lambda value: 1.0 if iban_valid(value) else None,
    ),
    Recognizer(
        "us_ssn",
        re.compile(_B + r"(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}" + _E),
        0.85,
    ),
    Recognizer(
        "us_ssn",
        re.compile(r"(?i)\b(?:SSN|social security(?: number)?)\W{0,3}(?P<value>\d{9})\b"),
        0.85,
    ),
    Recognizer(
        "uk_nino",
        re.compile(
            r"\b(?!BG|GB|NK|KN|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
            r"(?P<s> ?)\d{2}(?P=s)\d{2}(?P=s)\d{2}(?P=s)[A-D]\b"
        ),
        0.85,
    ),
    # Nine or eleven digits are too common to call a national id without its name nearby.
    Recognizer(
        "nl_bsn",
        re.compile(r"(?i)\b(?:BSN|burgerservicenummer)\W{0,3}(?P<value>\d{4}\.?\d{2}\.?\d{3})\b"),
        0.9,
        _check(nl_bsn_valid),
    ),
    Recognizer(
        "de_tax_id",
        re.compile(
            r"(?i)\b(?:Steuer-?ID|Steuer-?IdNr\.?|Steueridentifikationsnummer|IdNr\.?)"
            r"\W{0,3}(?P<value>\d{2} ?\d{3} ?\d{3} ?\d{3})\b"
        ),
        0.9,
        _check(de_tax_id_valid),
    ),
    Recognizer(
        "phone",
        re.compile(
            # With a country code: "phone:+49 ..." may follow a colon.
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{2,8}){1,4}"
            r"|\+\d{8,14})(?![\w:-]|\.\d)"
            # National formats: not after a digit group (a longer digit run).
            r"|(?<![\w.+/:-])(?<!\d[ -])(?:\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}([.-])\d{3}\1\d{4}"
            r"|0\d{2,4} \d{3,4} \d{3,4}|07\d{3} \d{6})(?![\w:-]|\.\d)"
        ),
        0.8,
        _phone,
    ),
    Recognizer(
        "ip_address",
        re.compile(r"(?<![\w.:-])(?<![Vv]ersion )(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\d)"),
        0.9,
        _ipv4,
    ),
    Recognizer(
        "ip_address",
        re.compile(r"(?<![\w:.-])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)[0-9A-Fa-f:]{2,39}(?![\w:.-])"),
        0.9,
        _ipv6,
    ),
    Recognizer(
        "person_name",
        re.compile(
            r"\b(?:(?i:name|full name|customer|patient|contact|employee)\s*[:=]\s*"
            r"|(?:Dear|Mr\.?|Mrs\.?|Ms\.?|Miss|Dr\.?|Prof\.?) (?:(?:Mrs?|Ms|Miss|Dr|Prof)\.? )?)"
            rf"(?!{_NOT_NAMES}\b)(?P<value>{_NAME_WORD}(?: {_NAME_WORD}){{0,2}})"
        ),
        0.6,
    ),
)
