"""The PII engine: recognizers, look-alikes, nested data, keyed pseudonyms (PII-01..05),
and the corpus figures the benchmark prints."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging

import pytest
from _pii_corpus import generate_corpus, luhn_check_digit, score_redaction, score_spans
from hypothesis import given, settings
from hypothesis import strategies as st

from kailash_nb.logging import EnterpriseLogger
from kailash_nb.pii import (
    DEPTH_MARKER,
    PII_KEY_ENV,
    PIIDetector,
    PIIKeyError,
    PIIRedactor,
    Pseudonymizer,
)
from kailash_nb.pii._checksums import de_tax_id_valid, iban_valid, luhn_valid, nl_bsn_valid

KEY = b"k" * 32

PII_VALUES = {
    "email": "jane.doe@example.com",
    "credit_card": "4111 1111 1111 1111",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "us_ssn": "078-05-1120",
    "phone": "+44 20 7946 0958",
    "ipv4": "203.0.113.42",
    "ipv6": "2001:db8:85a3::8a2e:370:7334",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "api_key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
}

LOOKALIKES = [
    "4111 1111 1111 1112",  # Luhn-invalid
    "4539578763621487",  # Luhn-invalid 16 digits
    "550e8400-e29b-41d4-a716-446655440000",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "1733491200",
    "1733491200123",
    "2026-12-06T13:45:00.123Z",
    "ORD-2024-000123",
    "123456789",
]


def json_line(**options) -> tuple[EnterpriseLogger, io.StringIO]:
    stream = io.StringIO()
    return EnterpriseLogger(
        level=logging.DEBUG, pii_redaction=True, stream=stream, **options
    ), stream


def test_pii_01_every_category_masked_in_the_json_log_line():
    logger, stream = json_line()
    message = "; ".join(f"{name}={value}" for name, value in PII_VALUES.items())
    logger.info(message, contact=dict(PII_VALUES), tags=list(PII_VALUES.values()))
    line = stream.getvalue()
    record = json.loads(line)
    for value in PII_VALUES.values():
        assert value not in line
    assert record["message"].startswith(
        "email=<redacted:email>; credit_card=<redacted:credit_card>"
    )
    assert record["contact"]["iban"] == "<redacted:iban>"
    assert record["contact"]["ipv6"] == "<redacted:ip_address>"
    assert record["tags"][7] == "<redacted:jwt>"


def test_pii_02_lookalikes_are_not_masked():
    logger, stream = json_line()
    text = " | ".join(LOOKALIKES)
    logger.info(text, ids=LOOKALIKES)
    record = json.loads(stream.getvalue())
    assert record["message"] == text
    assert record["ids"] == LOOKALIKES
    assert PIIDetector().detect(text) == []


def test_pii_03_deep_nesting_and_huge_lists_are_masked_or_marked_never_raising():
    deep: dict = {"email": "deep@example.com"}
    for level in range(10):
        deep = {f"level{level}": deep, "note": "card 4111111111111111"}
    huge = [f"user{i}@example.com" for i in range(100_000)]
    cyclic: list = ["ssn 078-05-1120"]
    cyclic.append(cyclic)
    logger, stream = json_line()
    logger.info("payload", deep=deep, huge=huge, cyclic=cyclic)
    line = stream.getvalue()
    assert "@example.com" not in line and "4111111111111111" not in line
    assert "078-05-1120" not in line
    record = json.loads(line)
    inner = record["deep"]
    for level in reversed(range(10)):
        inner = inner[f"level{level}"]
    assert inner == {"email": "<redacted:email>"}
    assert record["huge"][0] == "<redacted:email>"
    assert record["huge"][-1].endswith("more items>")
    # Past the depth limit the value becomes a marker instead of being searched.
    shallow = PIIRedactor(max_depth=3).redact(deep)
    assert shallow["level9"]["level8"]["level7"] == DEPTH_MARKER


def test_pii_03_objects_whose_str_fails_or_leaks_are_logged():
    class Leaky:
        def __str__(self) -> str:
            return "customer jane@example.com"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    logger, stream = json_line()
    logger.info("objects", leaky=Leaky(), broken=Broken(), raw=b"mail bob@example.org")
    record = json.loads(stream.getvalue())
    assert record["leaky"] == "customer <redacted:email>"
    assert "str() failed" in record["broken"]
    assert "bob@example.org" not in stream.getvalue()


def test_pii_05_pseudonyms_are_keyed_hmac_not_bare_sha256():
    phone = "+44 20 7946 0958"
    pseudonyms = Pseudonymizer(KEY)
    digest = pseudonyms.digest(phone, "phone")
    assert digest != hashlib.sha256(phone.encode()).hexdigest()
    assert digest != hashlib.sha256(b"442079460958").hexdigest()
    assert digest == hmac.new(KEY, b"phone\x00442079460958", hashlib.sha256).hexdigest()
    # Normalised: the same number written differently shares its pseudonym.
    assert pseudonyms.pseudonym("+442079460958", "phone") == pseudonyms.pseudonym(phone, "phone")
    assert Pseudonymizer(b"x" * 32).pseudonym(phone, "phone") != pseudonyms.pseudonym(
        phone, "phone"
    )
    assert "k" * 32 not in repr(pseudonyms)


def test_pii_05_no_default_key():
    with pytest.raises(PIIKeyError, match=PII_KEY_ENV):
        Pseudonymizer.from_env({})
    with pytest.raises(PIIKeyError, match="at least 32 bytes"):
        Pseudonymizer(b"short")
    assert Pseudonymizer.from_env({PII_KEY_ENV: "s" * 40}).pseudonym("a@b.co", "email")


def test_pseudonymising_redactor_keeps_values_joinable():
    redactor = PIIRedactor(replace=Pseudonymizer(KEY).replace)
    first = redactor.redact_text("from jane@example.com")
    assert first.startswith("from email_") and first == redactor.redact_text(
        "from JANE@example.com"
    )


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("NINO AB 12 34 56 C", "uk_nino"),
        ("BSN 111222333", "nl_bsn"),
        ("Steuer-ID 86095742719", "de_tax_id"),
        ("SSN: 078051120", "us_ssn"),
        ("call (415) 555-0132", "phone"),
        ("call +91 98765 43210", "phone"),
        ("AKIAIOSFODNN7EXAMPLE", "api_key"),
        ("Dear Ms. Jane Doe,", "person_name"),
        ("Name: Jan Jansen", "person_name"),
        ("tel 07700 900123", "phone"),
        ("phone:+49 (0)30 1234567", "phone"),
        ("peer 10.0.0.1:8080 closed", "ip_address"),
        ("GET /pay?card=5555555555554444&x=1", "credit_card"),
        ("amex 3782 822463 10005", "credit_card"),
        ("IBAN: DE89370400440532013000.", "iban"),
        ("fe80::1%eth0", "ip_address"),
    ],
)
def test_recognizer_finds(text, category):
    assert [m.category for m in PIIDetector().detect(text)] == [category]


@pytest.mark.parametrize(
    "text",
    [
        "BSN 111222334",  # fails the 11-proof
        "Steuer-ID 86095742718",  # wrong check digit
        "customer 111222333",  # no cue: nine digits are not a BSN
        "IBAN GB83 WEST 1234 5698 7654 32",  # mod-97 fails
        "mac 00:1a:2b:3c:4d:5e at 10:30:00",
        "Dear customer, thanks",
        "version 1.2.3 build 20261206",
        "Dear Sir or Madam, Dear Valued Customer",
        "version 1.2.3.4",
        "at 2026-01-01 10:30:00+01:00 took 12:30:45.123",
        "uuid 550E8400-E29B-41D4-A716-446655440000",
        "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 pid 1234567 port 8080",
    ],
)
def test_recognizer_leaves(text):
    assert PIIDetector().detect(text) == []


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE89370400440532013001")
    assert nl_bsn_valid("111222333") and not nl_bsn_valid("111222334")
    assert de_tax_id_valid("86095742719") and not de_tax_id_valid("86095742718")


def test_detections_carry_span_and_confidence():
    text = "Dear Mr. John Smith, card 4111-1111-1111-1111"
    matches = PIIDetector().detect(text)
    assert [(m.category, text[m.start : m.end]) for m in matches] == [
        ("person_name", "John Smith"),
        ("credit_card", "4111-1111-1111-1111"),
    ]
    assert matches[0].confidence < matches[1].confidence


def test_corpus_recall_and_precision():
    corpus = generate_corpus()
    assert len(corpus) >= 2000
    detector = PIIDetector()
    spans = score_spans(
        corpus, lambda text: [(m.category, m.start, m.end) for m in detector.detect(text)]
    )
    redacted = score_redaction(corpus, PIIRedactor().redact_text)
    for score in (spans, redacted):
        assert score.recall >= 0.99, score
        assert score.precision >= 0.95, score


def test_logger_corpus_recall_and_precision():
    stream = io.StringIO()
    logger = EnterpriseLogger(pii_redaction=True, stream=stream)

    def through_logger(text: str) -> str:
        stream.seek(0)
        stream.truncate()
        logger.info(text)
        return json.loads(stream.getvalue())["message"]

    score = score_redaction(generate_corpus(), through_logger)
    assert score.recall >= 0.99 and score.precision >= 0.95, score


def _card_numbers():
    prefixes = st.sampled_from(["4", "51", "55", "2221", "6011", "37"])

    def build(prefix: str, body: str) -> str:
        length = 15 if prefix == "37" else 16
        partial = (prefix + body)[: length - 1]
        return partial + luhn_check_digit(partial)

    return st.builds(build, prefixes, st.text("0123456789", min_size=16, max_size=16))


@settings(max_examples=200, deadline=None)
@given(before=st.text(max_size=40), card=_card_numbers(), after=st.text(max_size=40))
def test_redaction_never_leaks_a_luhn_valid_card(before, card, after):
    redacted = PIIRedactor().redact_text(f"{before} {card} {after}")
    assert card not in redacted


@settings(max_examples=200, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=8), children, max_size=5)
        ),
        max_leaves=30,
    )
)
def test_redaction_never_raises(value):
    PIIRedactor().redact(value)
    logger, stream = json_line()
    logger.info("value", value=value)
    json.loads(stream.getvalue())


_lookalikes = st.one_of(
    st.uuids().map(str),
    st.binary(min_size=1, max_size=32).map(lambda data: hashlib.sha256(data).hexdigest()),
    st.integers(1_000_000_000, 2_000_000_000).map(str),
    st.datetimes().map(lambda moment: moment.isoformat() + "Z"),
    st.integers(2000, 2030).map(lambda year: f"ORD-{year}-000123"),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_lookalikes, min_size=1, max_size=4))
def test_generated_lookalikes_survive(values):
    text = "ids: " + ", ".join(values)
    assert PIIRedactor().redact_text(text) == text
